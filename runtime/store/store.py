"""The facade: :class:`Store` is the database plus one repository per aggregate.

``store.profiles`` (profiles, profile leases), ``store.runs`` (runs, steps, artifacts, model calls)
and ``store.vault`` (secrets, credential leases, secret-use audit) share the store's connection and
its ``tx()``; the operations that span several of them (key rotation's :meth:`Store.reseal_all`,
:meth:`Store.mark_orphaned_runs` at start-up) live here and run in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import aiosqlite

from runtime.store.db import DEFAULT_BUSY_TIMEOUT_S, Database, Reseal
from runtime.store.profiles import ProfileRepository
from runtime.store.runs import RunRepository
from runtime.store.vault import VaultRepository

if TYPE_CHECKING:  # runtime.approvals imports this package: for the type checker only
    from runtime.approvals import ApprovalStatus

__all__ = ["Store"]

# A dead run's approval requests close with it, following the life drawn in runtime/approvals.py:
# one not acted on yet is cancelled; one being acted on may have happened, so a person decides.
_NOT_ACTED: tuple[ApprovalStatus, ...] = ("pending", "approved")
_CANCELLED: ApprovalStatus = "cancelled"
_ACTING: ApprovalStatus = "executing"
_UNCONFIRMED: ApprovalStatus = "unconfirmed"


class Store(Database):
    """Async access to corral's SQLite file, with its repositories."""

    def __init__(
        self, conn: aiosqlite.Connection, path: Path, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
    ) -> None:
        super().__init__(conn, path, busy_timeout_s)
        self.profiles = ProfileRepository(self)
        """Profiles and their leases (a :class:`profiles.ProfileStore`)."""
        self.runs = RunRepository(self)
        """Runs, steps, artifacts and model calls."""
        self.vault = VaultRepository(self)
        """Secrets, credential leases and secret-use audit (a :class:`profiles.VaultStore`)."""

    async def mark_orphaned_runs(self, is_alive: Callable[[int], bool]) -> int:
        """Mark live runs whose process is gone as ``interrupted``; returns how many.

        In one transaction with them, their approval requests close and their credential
        leases are revoked.
        """
        dead = await self.runs.orphaned(is_alive)
        if dead:
            async with self.tx() as conn:
                await _close_approvals(conn, dead)
                # A credential lease is dead once its run is.
                await self.vault.revoke_credential_leases(dead)
                await self.runs.interrupt(dead)
        return len(dead)

    async def reseal_all(self, reseal: Reseal) -> int:
        """Re-encrypt every sealed row in ONE transaction: ``reseal(blob, context, what)``.

        All or nothing: an error (or a crash) leaves every row as it was.
        """
        async with self.tx():
            count = await self.vault.reseal(reseal)
            count += await self.profiles.reseal(reseal)
        return count


async def _close_approvals(conn: aiosqlite.Connection, run_ids: Sequence[str]) -> None:
    """Close the approval requests of runs that died: nothing will act on them."""
    marks = ", ".join("?" for _ in _NOT_ACTED)
    await conn.executemany(
        f"UPDATE approvals SET status = ?, outcome = 'the run was interrupted before acting' "
        f"WHERE run_id = ? AND status IN ({marks})",
        [(_CANCELLED, run_id, *_NOT_ACTED) for run_id in run_ids],
    )
    await conn.executemany(
        "UPDATE approvals SET status = ?, outcome = 'the run was interrupted while acting; "
        "the action may have happened' WHERE run_id = ? AND status = ?",
        [(_UNCONFIRMED, run_id, _ACTING) for run_id in run_ids],
    )
