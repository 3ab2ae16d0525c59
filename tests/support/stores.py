"""The store behind corral's back, on either backend: what a write that breaks a constraint or
the database's own refusal raises, and a plain connection for tests that edit rows as someone
holding the database's credentials could."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors

from runtime.store.postgres import pg_sql

__all__ = ["DATABASE_ERRORS", "INTEGRITY_ERRORS", "raw_connect"]

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
