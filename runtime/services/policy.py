"""The global policy file: set (super_admin, audited) and show; who may run a policy check."""

from __future__ import annotations

import hashlib
from pathlib import Path

from profiles import UserError, atomic_write
from runtime.auth import Actor
from runtime.policyfile import load_policy
from runtime.services.base import Service

__all__ = ["PolicyService", "PolicyText"]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class PolicyText:
    """The active global policy file: where it is and its bytes (None: built-in defaults)."""

    def __init__(self, path: Path, data: bytes | None) -> None:
        self.path = path
        self.data = data

    @property
    def sha256(self) -> str | None:
        """The file's SHA-256, hex."""
        return _sha256(self.data) if self.data is not None else None


class PolicyService(Service):
    """The global policy as an actor manages it."""

    async def set(self, actor: Actor, file: Path) -> str:
        """Validate ``file`` and make it the global policy; returns its SHA-256 (hex)."""
        self._authz.require(actor, "super_admin", "set the global policy")
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            data = b""  # load_policy reports it, naming the file
        except OSError as exc:
            raise UserError(f"{file}: cannot read the policy file: {exc.strerror}") from exc
        load_policy(file)  # a malformed file stops here, naming file and field; nothing changed
        if file.read_bytes() != data:
            raise UserError(f"{file}: changed while it was being read; try again")
        path = self._rt.settings.policy_path
        old = path.read_bytes() if path.exists() else None
        async with self._store.tx() as db:
            await self._audit(
                db,
                actor,
                "policy.set",
                "global",
                {
                    "sha256": _sha256(data),
                    "previous_sha256": _sha256(old) if old is not None else None,
                    "source": str(file.resolve()),
                },
            )
            # Inside the transaction: if the write fails the audit row is rolled back, and the row
            # commits only once the new file is in place (atomic: old or new, never half).
            atomic_write(path, data)
        return _sha256(data)

    async def show(self, actor: Actor) -> PolicyText:
        """The active global policy file (any authenticated actor)."""
        del actor
        path = self._rt.settings.policy_path
        return PolicyText(path, path.read_bytes() if path.exists() else None)

    async def authorize_check(self, actor: Actor, profile: str | None) -> None:
        """May ``actor`` look at pages as ``profile`` in a policy check (a dry run)?"""
        if profile is not None:
            await self._authz.require_profile(
                actor, profile, f"look at pages as profile '{profile}'"
            )
