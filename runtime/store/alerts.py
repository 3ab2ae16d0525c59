"""Alerts: the SQL (what an alert is and what follows it is :mod:`runtime.alerts`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runtime.alerts import Alert, AlertState

if TYPE_CHECKING:
    from runtime.store import Store

__all__ = ["AlertRepository"]

_COLUMNS = (
    "id, run_id, task, profile, kind, message, detail, then_do, state, created_at, "
    "resolved_by, resolved_at, approval_id"
)


def _alert(row: Any) -> Alert:
    data = {k: row[k] for k in _COLUMNS.split(", ")}
    data["then"] = data.pop("then_do")
    data["detail"] = json.loads(data["detail"]) if data["detail"] else {}
    return Alert.model_validate(data)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


class AlertRepository:
    """The ``alerts`` table."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, alert: Alert) -> None:
        """Keep a raised alert."""
        async with self._store.tx() as db:
            await db.execute(
                f"INSERT INTO alerts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    alert.id,
                    alert.run_id,
                    alert.task,
                    alert.profile,
                    alert.kind,
                    alert.message,
                    json.dumps(alert.detail),
                    alert.then,
                    alert.state,
                    _iso(alert.created_at),
                    alert.resolved_by,
                    _iso(alert.resolved_at),
                    alert.approval_id,
                ),
            )

    async def get(self, alert_id: str) -> Alert | None:
        """One alert, or None."""
        row = await self._store.fetch_one(
            f"SELECT {_COLUMNS} FROM alerts WHERE id = ?", (alert_id,)
        )
        return _alert(row) if row is not None else None

    async def find(
        self, *, run_id: str | None = None, state: AlertState | None = None, limit: int = 100
    ) -> list[Alert]:
        """Alerts, newest first (of a run, in a state)."""
        where: list[str] = []
        args: list[str | int] = []
        if run_id is not None:
            where.append("run_id = ?")
            args.append(run_id)
        if state is not None:
            where.append("state = ?")
            args.append(state)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = await self._store.fetch_all(
            f"SELECT {_COLUMNS} FROM alerts {clause}ORDER BY created_at DESC, id LIMIT ?",
            (*args, limit),
        )
        return [_alert(r) for r in rows]

    async def freeze_of(self, task: str) -> Alert | None:
        """The open freeze on ``task``'s risky tools, if any (the oldest)."""
        row = await self._store.fetch_one(
            f"SELECT {_COLUMNS} FROM alerts WHERE task = ? AND then_do = 'freeze' "
            "AND state = 'open' ORDER BY created_at LIMIT 1",
            (task,),
        )
        return _alert(row) if row is not None else None

    async def set_approval(self, alert_id: str, approval_id: str) -> None:
        """The resume request a paused run waits on."""
        async with self._store.tx() as db:
            await db.execute(
                "UPDATE alerts SET approval_id = ? WHERE id = ?", (approval_id, alert_id)
            )

    async def resolve(
        self, alert_id: str, state: AlertState, by: str, at: datetime, *, only_open: bool = True
    ) -> bool:
        """Move an alert out of ``open`` (or, with ``only_open=False``, from any state); False
        if it was not open."""
        guard = " AND state = 'open'" if only_open else ""
        async with self._store.tx() as db:
            cur = await db.execute(
                "UPDATE alerts SET state = ?, resolved_by = ?, resolved_at = ? "
                f"WHERE id = ?{guard}",
                (state, by, _iso(at), alert_id),
            )
            return bool(cur.rowcount)

    async def provider_errors(self, provider: str, since: datetime) -> int:
        """Failed calls to ``provider`` since ``since``, by every run."""
        row = await self._store.fetch_one(
            "SELECT COUNT(*) FROM model_calls WHERE provider = ? AND outcome = 'error' AND at >= ?",
            (provider, _iso(since)),
        )
        return int(row[0]) if row else 0
