"""What every service holds: the runtime's parts, the authorizer and the clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiosqlite

from runtime.auth import Actor, Authorizer
from runtime.store.audit import write_audit

if TYPE_CHECKING:
    from runtime.app import Runtime

__all__ = ["Service", "Supplier", "supply"]

Supplier = Callable[[], str]
"""Asked for a value (a passphrase, a secret, a key) only once the actor may use it, so nobody
types a secret just to be refused."""


def supply(value: str | Supplier | None) -> str | None:
    """The value itself, or what the supplier gives."""
    return value() if callable(value) else value


class Service:
    """Base of the services: each operation takes the acting :class:`Actor`, asks the
    authorizer, makes the change and writes its audit row in one transaction."""

    def __init__(self, rt: Runtime, authorizer: Authorizer, now: Callable[[], datetime]) -> None:
        self._rt = rt
        self._store = rt.store
        self._authz = authorizer
        self._now = now

    async def _audit(
        self,
        db: aiosqlite.Connection,
        actor: Actor,
        action: str,
        subject: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append the audit row of a change in the caller's open transaction."""
        await write_audit(db, actor, action, subject, detail, at=self._now())
