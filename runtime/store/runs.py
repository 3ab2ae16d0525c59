"""The runs repository: runs, their steps, the files they produced and their model calls.

:class:`RunRepository` keeps the records of :mod:`runtime.records` in the ``runs``, ``steps``,
``artifacts`` and ``model_calls`` tables; one :class:`~runtime.store.rows.Table` per record type
maps each to its columns and back.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

from runtime.records import (
    ArtifactRecord,
    ModelCallRecord,
    RunRecord,
    RunStatus,
    StepRecord,
    UsageRow,
)
from runtime.store.db import Database
from runtime.store.rows import Table, now

__all__ = ["RunRepository"]

RUNS = Table("runs", RunRecord, frozenset({"result", "evidence", "expired"}))
STEPS = Table("steps", StepRecord, frozenset({"action", "detail"}))
ARTIFACTS = Table("artifacts", ArtifactRecord)
MODEL_CALLS = Table("model_calls", ModelCallRecord)

_LIVE: tuple[RunStatus, ...] = ("queued", "running", "waiting_approval")
_HOLDING: tuple[RunStatus, ...] = ("running", "waiting_approval")
_INTERRUPTED: RunStatus = "interrupted"


def _one_of(column: str, values: Collection[str]) -> str:
    """``column IN (?, ...)`` for ``values`` (false for none); the caller passes the values."""
    return f"{column} IN ({', '.join('?' for _ in values)})" if values else "0"


class RunRepository:
    """Runs and what they recorded."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_run(self, run: RunRecord) -> None:
        """Insert a new run row."""
        sql, row = RUNS.insert(run)
        async with self.db.tx() as conn:
            await conn.execute(sql, row)

    async def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        error: str | None,
        result: Any = None,
        evidence: list[dict[str, Any]] | None = None,
        models_config: str | None = None,
    ) -> None:
        """Record a run's final status, error, result, the result's evidence and the model
        config it used."""
        async with self.db.tx() as conn:
            await conn.execute(
                "UPDATE runs SET status = ?, finished_at = ?, error = ?, result = ?, evidence = ?,"
                " models_config = ? WHERE id = ?",
                (
                    status,
                    now(),
                    error,
                    RUNS.stored("result", result),
                    RUNS.stored("evidence", evidence),
                    models_config,
                    run_id,
                ),
            )

    async def set_run_status(self, run_id: str, status: RunStatus) -> None:
        """Change a live run's status (running <-> waiting_approval)."""
        async with self.db.tx() as conn:
            await conn.execute("UPDATE runs SET status = ? WHERE id = ?", (status, run_id))

    async def orphaned(self, is_alive: Callable[[int], bool], host: str) -> list[str]:
        """The ids of live (queued, running, waiting) runs whose process is gone, judged by pid:
        only runs of this ``host`` (or older runs, from before runs named their host) that hold
        no lease on another host. Pids of other hosts mean nothing here; their heartbeat judges
        them, see :meth:`stale`."""
        marks = ", ".join("?" for _ in _LIVE)
        rows = await self.db.fetch_all(
            f"SELECT id, pid FROM runs WHERE status IN ({marks}) AND (host IS NULL OR host = ?) "
            "AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.run_id = runs.id AND l.host != ?)",
            (*_LIVE, host, host),
        )
        return [r["id"] for r in rows if not is_alive(r["pid"])]

    async def stale(self, clock: float) -> list[str]:
        """The ids of running or waiting runs whose profile lease they hold has a heartbeat
        older than its TTL at ``clock`` (the store's time): their worker stopped renewing it.
        A run waiting for a person keeps renewing, so only a dead or cut-off worker counts."""
        marks = ", ".join("?" for _ in _HOLDING)
        rows = await self.db.fetch_all(
            f"SELECT r.id FROM runs r JOIN leases l ON l.run_id = r.id AND l.profile = r.profile "
            f"WHERE r.status IN ({marks}) AND l.heartbeat_at + l.ttl_s < ?",
            (*_HOLDING, clock),
        )
        return [r["id"] for r in rows]

    async def live(self, run_ids: Sequence[str]) -> list[str]:
        """Those of ``run_ids`` that are still live (queued, running or waiting)."""
        if not run_ids:
            return []
        rows = await self.db.fetch_all(
            f"SELECT id FROM runs WHERE {_one_of('id', run_ids)} AND {_one_of('status', _LIVE)}",
            (*run_ids, *_LIVE),
        )
        return [r["id"] for r in rows]

    async def interrupt(
        self, run_ids: Sequence[str], why: str = "the process running it ended unexpectedly"
    ) -> None:
        """Mark runs that ended unexpectedly (and are still live) as interrupted, with ``why``."""
        marks = ", ".join("?" for _ in _LIVE)
        async with self.db.tx() as conn:
            await conn.executemany(
                "UPDATE runs SET status = ?, finished_at = ?, error = COALESCE(error, ?) "
                f"WHERE id = ? AND status IN ({marks})",
                [(_INTERRUPTED, now(), why, run_id, *_LIVE) for run_id in run_ids],
            )

    async def get_run(self, run_id: str) -> RunRecord | None:
        """A run by id or by a unique id prefix."""
        row = await self.db.fetch_one("SELECT * FROM runs WHERE id = ?", (run_id,))
        if row is None:
            rows = await self.db.fetch_all(
                "SELECT * FROM runs WHERE id LIKE ? ESCAPE '\\' LIMIT 2",
                (run_id.replace("%", "\\%").replace("_", "\\_") + "%",),
            )
            row = rows[0] if len(rows) == 1 else None
        return RUNS.record(row) if row else None

    async def list_runs(
        self,
        limit: int = 20,
        profile: str | None = None,
        *,
        schedule: str | None = None,
        profiles: Collection[str] | None = None,
        task: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        """The latest runs, newest first; only on ``profile``, of ``schedule``, of ``task``,
        with ``status``, started in [``since``, ``until``), and (when ``profiles`` is given)
        on one of those profiles; ``offset`` skips the newest ones (the next page)."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("profile", profile),
            ("schedule", schedule),
            ("task_name", task),
            ("status", status),
        ):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("started_at >= ?")
            params.append(since.isoformat())
        if until is not None:
            where.append("started_at < ?")
            params.append(until.isoformat())
        if profiles is not None:
            where.append(_one_of("profile", profiles))
            params.extend(profiles)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = await self.db.fetch_all(
            f"SELECT * FROM runs {clause}ORDER BY started_at DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [RUNS.record(r) for r in rows]

    async def usage(
        self, since: datetime, profiles: Collection[str] | None = None
    ) -> list[UsageRow]:
        """Model calls since ``since`` summed per day (UTC), task, role and model; only runs on
        ``profiles`` when given."""
        only = "" if profiles is None else f"AND {_one_of('r.profile', profiles)}"
        params = [since.isoformat(), *(profiles or ())]
        rows = await self.db.fetch_all(
            "SELECT substr(c.at, 1, 10) AS day, r.task_name AS task, c.role AS role, "
            "c.provider || ':' || c.model AS model, count(*) AS calls, "
            "sum(c.outcome = 'error') AS failed, sum(c.input_tokens) AS input_tokens, "
            "sum(c.output_tokens) AS output_tokens, sum(c.cached_tokens) AS cached_tokens, "
            "sum(c.cost_usd) AS cost_usd "
            "FROM model_calls c JOIN runs r ON r.id = c.run_id "
            f"WHERE c.at >= ? {only} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
            params,
        )
        return [UsageRow.model_validate(dict(r)) for r in rows]

    async def capped_runs(
        self, since: datetime, profiles: Collection[str] | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """Runs since ``since`` that a budget cap (max_usd / max_tokens) stopped, newest first."""
        only = "" if profiles is None else f"AND {_one_of('profile', profiles)}"
        params = [since.isoformat(), *(profiles or ())]
        rows = await self.db.fetch_all(
            "SELECT * FROM runs WHERE started_at >= ? AND error LIKE '%budget:%' "
            f"{only} ORDER BY started_at DESC LIMIT ?",
            (*params, limit),
        )
        return [RUNS.record(r) for r in rows]

    async def add_step(self, step: StepRecord) -> None:
        """Insert one step row."""
        sql, row = STEPS.insert(step)
        async with self.db.tx() as conn:
            await conn.execute(sql, row)

    async def list_steps(self, run_id: str) -> list[StepRecord]:
        """A run's steps in order."""
        rows = await self.db.fetch_all(
            "SELECT * FROM steps WHERE run_id = ? ORDER BY idx", (run_id,)
        )
        return [STEPS.record(r) for r in rows]

    async def add_artifact(self, artifact: ArtifactRecord) -> None:
        """Register a file a run produced."""
        sql, row = ARTIFACTS.insert(artifact)
        async with self.db.tx() as conn:
            await conn.execute(sql, row)

    async def list_artifacts(self, run_id: str) -> list[ArtifactRecord]:
        """Files a run produced."""
        rows = await self.db.fetch_all(
            "SELECT * FROM artifacts WHERE run_id = ? ORDER BY id", (run_id,)
        )
        return [ARTIFACTS.record(r) for r in rows]

    async def add_model_call(self, call: ModelCallRecord) -> None:
        """Record one model attempt (answered, failed or skipped) with its tokens and cost."""
        sql, row = MODEL_CALLS.insert(call)
        async with self.db.tx() as conn:
            await conn.execute(sql, row)

    async def list_model_calls(self, run_id: str) -> list[ModelCallRecord]:
        """A run's model attempts in order."""
        rows = await self.db.fetch_all(
            "SELECT * FROM model_calls WHERE run_id = ? ORDER BY id", (run_id,)
        )
        return [MODEL_CALLS.record(r) for r in rows]
