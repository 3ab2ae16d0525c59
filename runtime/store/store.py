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
        # Shortcuts to the repositories' methods, for callers written before they existed.
        self.insert_profile = self.profiles.insert_profile
        self.get_profile = self.profiles.get_profile
        self.list_profiles = self.profiles.list_profiles
        self.update_profile_settings = self.profiles.update_profile_settings
        self.save_profile_state = self.profiles.save_profile_state
        self.delete_profile = self.profiles.delete_profile
        self.take_lease = self.profiles.take_lease
        self.renew_lease = self.profiles.renew_lease
        self.release_lease = self.profiles.release_lease
        self.get_lease = self.profiles.get_lease
        self.create_run = self.runs.create_run
        self.finish_run = self.runs.finish_run
        self.set_run_status = self.runs.set_run_status
        self.get_run = self.runs.get_run
        self.list_runs = self.runs.list_runs
        self.add_step = self.runs.add_step
        self.list_steps = self.runs.list_steps
        self.add_artifact = self.runs.add_artifact
        self.list_artifacts = self.runs.list_artifacts
        self.add_model_call = self.runs.add_model_call
        self.list_model_calls = self.runs.list_model_calls
        self.put_secret = self.vault.put_secret
        self.get_secret = self.vault.get_secret
        self.list_secrets = self.vault.list_secrets
        self.delete_secret = self.vault.delete_secret
        self.touch_secret = self.vault.touch_secret
        self.grant_credential_lease = self.vault.grant_credential_lease
        self.revoke_credential_lease = self.vault.revoke_credential_lease
        self.get_credential_lease = self.vault.get_credential_lease
        self.add_audit = self.vault.add_audit
        self.list_audit = self.vault.list_audit

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
