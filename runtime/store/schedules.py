"""The schedules repository: schedules and their fires, with the one-winner fire transitions.

A fire's row is unique per (schedule, scheduled time, profile), so however many schedulers add
the same fire, it exists once; a queued fire becomes ``running`` in one conditional ``UPDATE``
(inside a write transaction that also counts the limits), so exactly one server claims it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from runtime.schedules.records import Fire, FireStatus, Schedule
from runtime.store.db import Database
from runtime.store.rows import Table

__all__ = ["FIRES", "SCHEDULES", "ClaimLimits", "ScheduleRepository"]

SCHEDULES = Table("schedules", Schedule, frozenset({"profiles", "vars", "timing", "policy"}))
FIRES = Table("fires", Fire)


class ClaimLimits:
    """What a claim checks in its transaction: runs at once per schedule and per origin."""

    def __init__(self, schedule: int | None = None, origin: int | None = None) -> None:
        self.schedule = schedule
        self.origin = origin


def _at(value: datetime) -> str:
    return value.isoformat()


class ScheduleRepository:
    """Schedules and fires."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        """The store's write transaction (see :meth:`Database.tx`)."""
        return self.db.tx()

    # --- schedules -------------------------------------------------------------------------

    async def add(self, schedule: Schedule) -> bool:
        """Insert a schedule; False if one of that name exists."""
        sql, row = SCHEDULES.insert(schedule, ignore=True)
        async with self.db.tx() as conn:
            cursor = await conn.execute(sql, row)
            return cursor.rowcount == 1

    async def replace(self, schedule: Schedule) -> None:
        """Write every field of an existing schedule."""
        row = SCHEDULES.row(schedule)
        sets = ", ".join(f"{name} = :{name}" for name in row if name != "name")
        async with self.db.tx() as conn:
            await conn.execute(f"UPDATE schedules SET {sets} WHERE name = :name", row)

    async def get(self, name: str) -> Schedule | None:
        row = await self.db.fetch_one("SELECT * FROM schedules WHERE name = ?", (name,))
        return SCHEDULES.record(row) if row else None

    async def all(self) -> list[Schedule]:
        rows = await self.db.fetch_all("SELECT * FROM schedules ORDER BY name")
        return [SCHEDULES.record(r) for r in rows]

    async def remove(self, name: str) -> bool:
        """Delete a schedule; its queued fires are skipped, its past fires stay on record."""
        async with self.db.tx() as conn:
            await conn.execute(
                "UPDATE fires SET status = 'skipped', note = 'the schedule was removed' "
                "WHERE schedule = ? AND status = 'queued'",
                (name,),
            )
            cursor = await conn.execute("DELETE FROM schedules WHERE name = ?", (name,))
            return cursor.rowcount == 1

    async def set_paused(self, name: str, paused: bool, reason: str | None, at: datetime) -> bool:
        """Pause or resume; resuming clears the failure count. False if it was already so."""
        async with self.db.tx() as conn:
            cursor = await conn.execute(
                "UPDATE schedules SET paused = ?, paused_reason = ?, updated_at = ?, "
                "consecutive_failures = CASE WHEN ? = 1 THEN consecutive_failures ELSE 0 END "
                "WHERE name = ? AND paused = ?",
                (int(paused), reason, _at(at), int(paused), name, int(not paused)),
            )
            return cursor.rowcount == 1

    async def advance_cursor(self, name: str, old: datetime, new: datetime) -> bool:
        """Move the cursor from ``old`` to ``new``; False if another scheduler moved it first."""
        async with self.db.tx() as conn:
            cursor = await conn.execute(
                "UPDATE schedules SET cursor = ? WHERE name = ? AND cursor = ?",
                (_at(new), name, _at(old)),
            )
            return cursor.rowcount == 1

    async def count_outcome(self, name: str, failed: bool) -> int:
        """Count a fire's final outcome: failures in a row, or reset by a success."""
        async with self.db.tx() as conn:
            await conn.execute(
                "UPDATE schedules SET consecutive_failures = "
                "CASE WHEN ? = 1 THEN consecutive_failures + 1 ELSE 0 END WHERE name = ?",
                (int(failed), name),
            )
            row = await (
                await conn.execute(
                    "SELECT consecutive_failures FROM schedules WHERE name = ?", (name,)
                )
            ).fetchone()
        return int(row[0]) if row else 0

    # --- fires -----------------------------------------------------------------------------

    async def add_fires(self, fires: Sequence[Fire]) -> list[Fire]:
        """Insert fires that do not exist yet (by id and by identity); returns the new ones."""
        added = []
        async with self.db.tx() as conn:
            for fire in fires:
                sql, row = FIRES.insert(fire, ignore=True)
                cursor = await conn.execute(sql, row)
                if cursor.rowcount == 1:
                    added.append(fire)
        return added

    async def get_fire(self, fire_id: str) -> Fire | None:
        row = await self.db.fetch_one("SELECT * FROM fires WHERE id = ?", (fire_id,))
        return FIRES.record(row) if row else None

    async def list_fires(
        self,
        schedule: str | None = None,
        statuses: Sequence[FireStatus] = (),
        limit: int = 50,
    ) -> list[Fire]:
        """Fires, latest scheduled first."""
        where, args = self._where(schedule, statuses)
        rows = await self.db.fetch_all(
            f"SELECT * FROM fires{where} ORDER BY scheduled_at DESC, profile LIMIT ?",
            (*args, limit),
        )
        return [FIRES.record(r) for r in rows]

    async def due_fires(self, now: datetime, limit: int = 100) -> list[Fire]:
        """Queued fires whose time has come, oldest due first."""
        rows = await self.db.fetch_all(
            "SELECT * FROM fires WHERE status = 'queued' AND due_at <= ? "
            "ORDER BY due_at, scheduled_at, profile LIMIT ?",
            (_at(now), limit),
        )
        return [FIRES.record(r) for r in rows]

    async def active_fires(self) -> list[Fire]:
        """Fires running, or queued again to be retried (a retry holds its place)."""
        rows = await self.db.fetch_all(
            "SELECT * FROM fires WHERE status = 'running' OR (status = 'queued' AND attempt > 0)"
        )
        return [FIRES.record(r) for r in rows]

    async def claim(self, fire_id: str, owner: str, at: datetime, limits: ClaimLimits) -> bool:
        """queued -> running for ``owner`` if still queued and within the limits (one winner)."""
        async with self.db.tx() as conn:
            row = await (
                await conn.execute(
                    "SELECT schedule, origin FROM fires WHERE id = ? AND status = 'queued'",
                    (fire_id,),
                )
            ).fetchone()
            if row is None:
                return False
            checks: list[tuple[str, Any, int | None]] = [
                ("schedule", row[0], limits.schedule),
                ("origin", row[1], limits.origin),
            ]
            for column, value, limit in checks:
                if limit is None or value is None:
                    continue
                count = await (
                    await conn.execute(
                        f"SELECT COUNT(*) FROM fires WHERE status = 'running' AND {column} = ?",
                        (value,),
                    )
                ).fetchone()
                if count is not None and count[0] >= limit:
                    return False
            cursor = await conn.execute(
                # A new attempt: no run yet (the last attempt's run is on record in runs).
                "UPDATE fires SET status = 'running', attempt = attempt + 1, run_id = NULL, "
                "claimed_by = ?, claimed_at = ?, note = NULL WHERE id = ? AND status = 'queued'",
                (owner, _at(at), fire_id),
            )
            return cursor.rowcount == 1

    async def take_over(self, fire_id: str, attempt: int, claimant: str, owner: str) -> Fire | None:
        """The worker ``owner`` takes a fire's attempt that ``claimant`` (the job queue) holds:
        the fire, or None when that attempt is no longer waiting (settled, retried, or taken)."""
        async with self.db.tx() as conn:
            cursor = await conn.execute(
                "UPDATE fires SET claimed_by = ? WHERE id = ? AND attempt = ? "
                "AND status = 'running' AND claimed_by = ?",
                (owner, fire_id, attempt, claimant),
            )
            if cursor.rowcount != 1:
                return None
            return await self.get_fire(fire_id)

    async def set_run(self, fire_id: str, run_id: str) -> None:
        """Record the run an attempt of a fire started."""
        async with self.db.tx() as conn:
            await conn.execute("UPDATE fires SET run_id = ? WHERE id = ?", (run_id, fire_id))

    async def settle(
        self,
        fire_id: str,
        status: FireStatus,
        note: str | None,
        at: datetime,
        *,
        from_status: FireStatus,
        due_at: datetime | None = None,
        interrupted: bool = False,
    ) -> bool:
        """Move a fire from ``from_status`` (only): to a final status, or back to ``queued``
        with a later ``due_at`` (a retry; ``interrupted``: one a server stop cut short). False
        if it was not in ``from_status``."""
        final = status != "queued"
        async with self.db.tx() as conn:
            cursor = await conn.execute(
                "UPDATE fires SET status = ?, note = ?, interruptions = interruptions + ?, "
                "finished_at = CASE WHEN ? = 1 THEN ? ELSE finished_at END, "
                "due_at = COALESCE(?, due_at), "
                "claimed_by = CASE WHEN ? = 1 THEN claimed_by ELSE NULL END "
                "WHERE id = ? AND status = ?",
                (
                    status,
                    note,
                    int(interrupted),
                    int(final),
                    _at(at),
                    _at(due_at) if due_at else None,
                    int(final),
                    fire_id,
                    from_status,
                ),
            )
            return cursor.rowcount == 1

    @staticmethod
    def _where(schedule: str | None, statuses: Sequence[str]) -> tuple[str, list[Any]]:
        parts, args = [], []
        if schedule is not None:
            parts.append("schedule = ?")
            args.append(schedule)
        if statuses:
            parts.append(f"status IN ({', '.join('?' for _ in statuses)})")
            args.extend(statuses)
        return (" WHERE " + " AND ".join(parts) if parts else ""), args
