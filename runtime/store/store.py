"""The facade: :class:`Store` is the database plus one repository per aggregate.

``store.profiles`` (profiles, profile leases), ``store.runs`` (runs, steps, artifacts, model calls),
``store.vault`` (secrets, credential leases, secret uses), ``store.users`` (users, tokens, grants),
``store.audit`` (the hash-chained audit log) and ``store.approvals`` (approval requests) share
the store's connection and its ``tx()``; the operations that span several of them (key
rotation's :meth:`Store.reseal_all`, :meth:`Store.mark_orphaned_runs` at start-up,
:meth:`Store.interrupt_stale_runs` for runs of dead or cut-off hosts) live here and run in one
transaction.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from runtime.store.alerts import AlertRepository
from runtime.store.audit import AuditRepository
from runtime.store.db import DEFAULT_BUSY_TIMEOUT_S, Database, Driver, Reseal
from runtime.store.effects import EffectRepository
from runtime.store.notes import NoteRepository
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
        self.profiles = ProfileRepository(self, on_displaced=self.interrupt_runs)
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
        self.effects = EffectRepository(self)
        """Submissions of schedule fires by idempotency key (:mod:`runtime.run.effects`)."""
        self.notes = NoteRepository(self)
        """Notes of long-term memory (:mod:`runtime.memory`)."""
        self.alerts = AlertRepository(self)
        """Alerts raised by runs, and their runbook's state (:mod:`runtime.alerts`)."""

    async def mark_orphaned_runs(
        self, is_alive: Callable[[int], bool], host: str | None = None
    ) -> int:
        """Mark live runs whose process is gone (``is_alive(pid)`` False) as ``interrupted``;
        returns how many. Only runs of this ``host`` can be judged by pid: a run holding a lease
        on another host is left to :meth:`interrupt_stale_runs`."""
        # Read first: a write transaction only when there is something to mark.
        dead = await self.runs.orphaned(is_alive, host or socket.gethostname())
        return len(await self.interrupt_runs(dead, "the process running it ended unexpectedly"))

    async def interrupt_stale_runs(self) -> list[str]:
        """Mark running and waiting runs whose profile lease's heartbeat is older than its TTL
        by the store's clock as ``interrupted`` (their worker died or was cut off, on any host);
        returns their ids. A run waiting for a person keeps its heartbeat, so it stays."""
        if not await self.runs.stale(await self.clock()):
            return []  # the usual answer, without taking the write lock
        async with self.tx():
            # Again inside the transaction: a heartbeat may have come in meanwhile.
            stale = await self.runs.stale(await self.clock())
            return await self.interrupt_runs(
                stale,
                "its worker stopped renewing the profile lease (the process or its host ended, "
                "or it was cut off from the store)",
            )

    async def interrupted_fire_runs(self) -> set[str]:
        """Runs marked interrupted while their fire is still running: their worker may be gone
        for good, so :meth:`runtime.schedules.Scheduler.recover` settles those fires (on any
        host); a late report from a worker that was only cut off then settles nothing."""
        rows = await self.fetch_all(
            "SELECT r.id FROM fires f JOIN runs r ON r.id = f.run_id "
            "WHERE f.status = 'running' AND r.status = 'interrupted'"
        )
        return {r["id"] for r in rows}

    async def interrupt_runs(self, run_ids: list[str], why: str) -> list[str]:
        """The one home of "this run died": those of ``run_ids`` still live become interrupted,
        and in the same transaction their approval requests close and their credential leases
        are revoked. Returns the ids marked."""
        if not run_ids:
            return []
        async with self.tx() as conn:
            live = await self.runs.live(run_ids)
            if live:
                await self.approvals.close_for_runs(conn, live)
                # A credential lease is dead once its run is.
                await self.vault.revoke_credential_leases(live)
                await self.runs.interrupt(live, why)
        return live

    async def reseal_all(self, reseal: Reseal) -> int:
        """Re-encrypt every sealed row in ONE transaction: ``reseal(blob, context, what)``.

        All or nothing: an error (or a crash) leaves every row as it was.
        """
        async with self.tx():
            count = await self.vault.reseal(reseal)
            count += await self.profiles.reseal(reseal)
        return count
