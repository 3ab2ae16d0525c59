"""The store behind corral's back, on either backend: what a write that breaks a constraint or
the database's own refusal raises, and a plain connection for tests that edit rows as someone
holding the database's credentials could; a run row as a finished run leaves it."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors

from runtime import Runtime
from runtime.records import RunRecord, RunStatus
from runtime.store.postgres import pg_sql

__all__ = ["DATABASE_ERRORS", "INTEGRITY_ERRORS", "NOW", "add_run", "raw_connect"]

NOW = datetime.now(UTC).replace(microsecond=0)
"""When the test session started: runs added without a start time began five minutes before."""

DATABASE_ERRORS: tuple[type[Exception], ...] = (sqlite3.DatabaseError, psycopg.Error)
"""What the database refusing a statement raises, on either backend."""

INTEGRITY_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.IntegrityError,
    psycopg.errors.IntegrityError,
)
"""What a write that breaks a constraint raises, on either backend."""


class _RawPg:
    """A psycopg connection with sqlite3's calls and ``?`` parameters (for tests that edit the
    store behind corral's back, as someone holding the database's credentials could)."""

    def __init__(self, url: str) -> None:
        self._conn = psycopg.connect(url)

    def execute(self, sql: str, args: Any = ()) -> Any:
        return self._conn.execute(pg_sql(sql), args or None)

    def executescript(self, script: str) -> None:
        self._conn.execute(script)

    def commit(self) -> None:
        self._conn.commit()

    def close(self) -> None:
        self._conn.close()

    def __del__(self) -> None:
        # Like sqlite3's, a connection a test drops is closed with it.
        self._conn.close()


def raw_connect(where: Path | str) -> Any:
    """A plain connection to a store (sqlite3's for a file, psycopg's for a URL), outside
    corral; ``execute(sql, args)``, ``commit()`` and ``close()`` work the same on both."""
    if isinstance(where, str) and where.startswith("postgresql://"):
        return _RawPg(where)
    return sqlite3.connect(where)


async def add_run(
    rt: Runtime,
    run_id: str,
    profile: str,
    *,
    task: str = "check",
    status: RunStatus = "succeeded",
    started: datetime | None = None,
    seconds: float | None = 12.5,
    error: str | None = None,
    result: Any = None,
    schedule: str | None = None,
) -> RunRecord:
    at = started or NOW - timedelta(minutes=5)
    run = RunRecord(
        id=run_id,
        task_name=task,
        task_path=None,
        profile=profile,
        status=status,
        started_at=at,
        finished_at=at + timedelta(seconds=seconds) if seconds is not None else None,
        error=error,
        result=result,
        run_dir=f"/tmp/{run_id}",
        pid=1,
        schedule=schedule,
    )
    await rt.store.runs.create_run(run)
    return run
