"""Secrets in the vault: set, list, remove, and the audit of every use of one."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from profiles import SecretRecord, SecretUseRecord
from runtime.auth import Actor
from runtime.services.base import Service, Supplier, supply

__all__ = ["SecretService"]


class SecretService(Service):
    """The credential vault as an actor manages it (admin+ for changes and the use audit)."""

    async def set(
        self,
        actor: Actor,
        name: str,
        value: str | Supplier,
        domains: Sequence[str],
        profiles: Sequence[str] = (),
        totp: bool = False,
        fields: Sequence[str] = (),
    ) -> SecretRecord:
        """Store a secret (replacing one of the same name). ``value`` may be a supplier, called
        only once the actor may set it and its profiles exist. The value is never audited."""
        self._authz.require(actor, "admin", "set secrets")
        for profile in profiles:
            await self._rt.profiles.get(profile)
        plain = supply(value) or ""
        async with self._store.tx() as db:
            record = await self._rt.vault.set(name, plain, domains, profiles, totp, fields)
            await self._audit(
                db,
                actor,
                "secret.set",
                record.name,
                {
                    "kind": record.kind,
                    "domains": record.domains,
                    "profiles": record.profiles,
                    "fields": record.fields,
                },
            )
        return record

    async def list(self, actor: Actor) -> list[SecretRecord]:
        """Every secret's name, kind and scope (values stay sealed)."""
        del actor  # any authenticated actor may see which secrets exist
        return await self._rt.vault.list()

    async def remove(self, actor: Actor, name: str) -> None:
        """Delete a secret."""
        self._authz.require(actor, "admin", "delete secrets")
        async with self._store.tx() as db:
            await self._rt.vault.remove(name)
            await self._audit(db, actor, "secret.rm", name)

    async def list_uses(
        self, actor: Actor, run_id: str | None = None, limit: int = 50, *, secret: str | None = None
    ) -> builtins.list[SecretUseRecord]:
        """Every use of a secret (of ``secret`` only, if given), allowed or refused, newest
        first."""
        self._authz.require(actor, "admin", "read the secret-use audit")
        return await self._store.vault.list_uses(run_id, limit, secret)
