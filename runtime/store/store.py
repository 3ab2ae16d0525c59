"""The facade: :class:`Store` is the database plus one repository per aggregate.

``store.profiles`` (profiles, profile leases), ``store.runs`` (runs, steps, artifacts, model calls),
``store.vault`` (secrets, credential leases, secret uses), ``store.users`` (users, tokens, grants),
``store.audit`` (the hash-chained audit log) and ``store.approvals`` (approval requests) share
the store's connection and its ``tx()``; the operations that span several of them (key
rotation's :meth:`Store.reseal_all`, :meth:`Store.mark_orphaned_runs` at start-up) live here and
run in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from runtime.store.audit import AuditRepository
from runtime.store.db import DEFAULT_BUSY_TIMEOUT_S, Database, Driver, Reseal
from runtime.store.profiles import ProfileRepository
from runtime.store.runs import RunRepository
from runtime.store.schedules import ScheduleRepository
from runtime.store.users import UserRepository
from runtime.store.vault import VaultRepository

if TYPE_CHECKING:
    from runtime.store.approvals import ApprovalRepository

__all__ = ["Store"]


class Store(Database):
    """Async access to corral's store (SQLite or PostgreSQL), with its repositories."""

    def __init__(self, driver: Driver, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        super().__init__(driver, busy_timeout_s)
        self.profiles = ProfileRepository(self)
        """Profiles and their leases (a :class:`profiles.ProfileStore`)."""
        self.runs = RunRepository(self)
        """Runs, steps, artifacts and model calls."""
        self.vault = VaultRepository(self)
        """Secrets, credential leases and secret-use audit (a :class:`profiles.VaultStore`)."""
        self.users = UserRepository(self)
        """Users, API tokens and profile grants."""
        self.audit = AuditRepository(self)
        """The hash-chained audit log."""
        # Imported here, not at the top: the approvals repository maps rows to
        # runtime.approvals' records, and runtime.approvals imports this package. By the time a
        # Store is built both modules are loaded.
        from runtime.store.approvals import ApprovalRepository

        self.approvals: ApprovalRepository = ApprovalRepository(self)
        """Approval requests and their one-winner transitions."""
        self.schedules = ScheduleRepository(self)
        """Schedules and their fires (the embedded fire queue)."""

    async def mark_orphaned_runs(self, is_alive: Callable[[int], bool]) -> int:
        """Mark live runs whose process is gone as ``interrupted``; returns how many.

        In one transaction with them, their approval requests close and their credential
        leases are revoked.
        """
        dead = await self.runs.orphaned(is_alive)
        await self.interrupt_runs(dead)
        return len(dead)

    async def interrupt_runs(self, run_ids: list[str]) -> None:
        """Mark runs whose process or host is gone as ``interrupted``, in one transaction with
        closing their approval requests and revoking their credential leases."""
        if not run_ids:
            return
        async with self.tx() as conn:
            await self.approvals.close_for_runs(conn, run_ids)
            # A credential lease is dead once its run is.
            await self.vault.revoke_credential_leases(run_ids)
            await self.runs.interrupt(run_ids)

    async def reseal_all(self, reseal: Reseal) -> int:
        """Re-encrypt every sealed row in ONE transaction: ``reseal(blob, context, what)``.

        All or nothing: an error (or a crash) leaves every row as it was.
        """
        async with self.tx():
            count = await self.vault.reseal(reseal)
            count += await self.profiles.reseal(reseal)
        return count
