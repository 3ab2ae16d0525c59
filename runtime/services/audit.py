"""The audit log: list it and verify its hash chain (admin+)."""

from __future__ import annotations

from runtime.auth import Actor, AuditEntry
from runtime.services.base import Service

__all__ = ["AuditService"]


class AuditService(Service):
    """Reading the append-only audit log."""

    async def list(
        self, actor: Actor, limit: int = 100, action: str | None = None
    ) -> list[AuditEntry]:
        """Rows, newest first; ``action`` matches exactly or as a prefix (``token``)."""
        self._authz.require(actor, "admin", "read the audit log")
        return await self._store.audit.list(limit, action)

    async def verify(self, actor: Actor) -> int:
        """Check the whole hash chain; the rows checked, or AuditTamperedError."""
        self._authz.require(actor, "admin", "read the audit log")
        return await self._store.audit.verify()
