"""The master key: rotation (admin+; the mechanism is :mod:`runtime.rotate`)."""

from __future__ import annotations

from collections.abc import Callable

import aiosqlite

from profiles import MasterKey, UserError
from runtime.auth import Actor
from runtime.rotate import RotationReport, rotate_key
from runtime.services.base import Service, Supplier, supply

__all__ = ["KeyService"]


class KeyService(Service):
    """Key management as an actor does it."""

    async def rotate(
        self,
        actor: Actor,
        new_key: MasterKey | Supplier | None = None,
        checkpoint: Callable[[str], None] = lambda _stage: None,
    ) -> RotationReport:
        """Re-encrypt everything under a new master key (crash-safe, see :mod:`runtime.rotate`).

        With ``CORRAL_MASTER_KEY`` set the new key must be given (or supplied: asked for only
        once the actor may rotate). The audit row commits with the resealed store.
        """
        self._authz.require(actor, "admin", "rotate the master key")
        key = new_key if isinstance(new_key, MasterKey) else None
        if key is None and self._rt.settings.master_key is not None:
            text = supply(new_key) if not isinstance(new_key, MasterKey) else None
            if not text:
                raise UserError("CORRAL_MASTER_KEY is set: give the new key on stdin")
            key = MasterKey.from_text(text, "new master key")

        async def audit(db: aiosqlite.Connection, rows: int, fingerprint: str) -> None:
            await self._audit(
                db,
                actor,
                "vault.rotate_key",
                "master key",
                {"fingerprint": fingerprint, "resealed": rows},
            )

        return await rotate_key(self._rt, key, checkpoint, on_resealed=audit)
