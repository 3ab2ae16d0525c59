"""Submissions of schedule fires by idempotency key: the SQL (the keys and what a run does with
them are :mod:`runtime.run.effects`).

A row is one submission of a fire: its key, which occurrence of that key in the run (``n``), the
run and attempt that did it, and how far it got: ``started`` (the action began), ``sent`` (a
state-changing request of it left the browser: it reached, or may have reached, the server) or
``unsent`` (the action ended and nothing state-changing left). Each write is its own committed
transaction, so a crash right after a request went out leaves ``sent`` behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from runtime.store import Store

__all__ = ["EffectRepository", "EffectRow", "EffectState"]

EffectState = Literal["started", "sent", "unsent"]


@dataclass(frozen=True)
class EffectRow:
    """A submission an attempt of a fire made."""

    fire_id: str
    key: str
    n: int
    run_id: str
    attempt: int
    step: int
    target: str | None
    state: EffectState
    started_at: datetime
    sent_at: datetime | None


def _row(row: Any) -> EffectRow:
    sent = row["sent_at"]
    return EffectRow(
        fire_id=row["fire_id"],
        key=row["key"],
        n=int(row["n"]),
        run_id=row["run_id"],
        attempt=int(row["attempt"]),
        step=int(row["step"]),
        target=row["target"],
        state=row["state"],
        started_at=datetime.fromisoformat(row["started_at"]),
        sent_at=datetime.fromisoformat(sent) if sent else None,
    )


class EffectRepository:
    """The ``effects`` table."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def begin(
        self,
        fire_id: str,
        key: str,
        n: int,
        *,
        run_id: str,
        attempt: int,
        step: int,
        target: str | None,
    ) -> EffectRow | None:
        """Take the submission for ``run_id``, unless an earlier run of the fire sent it: then
        that run's row (and nothing is written). A row of an attempt that never sent it (it
        crashed before, or sent nothing) is taken over."""
        async with self._store.tx() as db:
            cur = await db.execute(
                "SELECT * FROM effects WHERE fire_id = ? AND key = ? AND n = ?",
                (fire_id, key, n),
            )
            found = await cur.fetchone()
            if found is not None and found["state"] == "sent" and found["run_id"] != run_id:
                return _row(found)
            values = {
                "fire": fire_id,
                "key": key,
                "n": n,
                "run": run_id,
                "attempt": attempt,
                "step": step,
                "target": target,
                "at": datetime.now(UTC).isoformat(),
            }
            if found is None:
                await db.execute(
                    "INSERT INTO effects (fire_id, key, n, run_id, attempt, step, target, state,"
                    " started_at) VALUES (:fire, :key, :n, :run, :attempt, :step, :target,"
                    " 'started', :at)",
                    values,
                )
            else:
                await db.execute(
                    "UPDATE effects SET run_id = :run, attempt = :attempt, step = :step,"
                    " target = :target, state = 'started', started_at = :at, sent_at = NULL"
                    " WHERE fire_id = :fire AND key = :key AND n = :n",
                    values,
                )
        return None

    async def sent(self, fire_id: str, key: str, n: int, run_id: str) -> bool:
        """Record that a state-changing request of the submission is leaving the browser;
        False if the row is no longer this run's (then the request must not go)."""
        async with self._store.tx() as db:
            cur = await db.execute(
                "UPDATE effects SET state = 'sent', sent_at = COALESCE(sent_at, ?)"
                " WHERE fire_id = ? AND key = ? AND n = ? AND run_id = ?",
                (datetime.now(UTC).isoformat(), fire_id, key, n, run_id),
            )
            return bool(cur.rowcount)

    async def unsent(self, fire_id: str, key: str, n: int, run_id: str) -> None:
        """The action ended without sending anything state-changing: a retry may do it."""
        async with self._store.tx() as db:
            await db.execute(
                "UPDATE effects SET state = 'unsent' WHERE fire_id = ? AND key = ? AND n = ?"
                " AND run_id = ? AND state = 'started'",
                (fire_id, key, n, run_id),
            )

    async def of_fire(self, fire_id: str) -> list[EffectRow]:
        """The fire's submissions, oldest first."""
        rows = await self._store.fetch_all(
            "SELECT * FROM effects WHERE fire_id = ? ORDER BY started_at, key, n", (fire_id,)
        )
        return [_row(r) for r in rows]
