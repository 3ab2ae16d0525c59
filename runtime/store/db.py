"""The connection: one aiosqlite connection to the store file, its transactions and reads.

One :class:`Database` (one connection) is shared by every session of a process; a transaction
takes ``self._lock`` so concurrent sessions never interleave inside one. Other processes are
handled by SQLite itself (WAL, ``busy_timeout``, ``BEGIN IMMEDIATE``). A lock held elsewhere past
the busy timeout becomes :class:`~runtime.errors.StoreBusyError`.

``tx()`` called from a task that already holds a transaction JOINS it, so a service can make a
change and write its audit row in one transaction while each part keeps calling ``tx()``; any other
task waits for the lock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Self

import aiosqlite

from profiles import PRIVATE_FILE, private_dir, tighten
from runtime.errors import StoreBusyError, StoreError
from runtime.store.migrations import MIGRATIONS, migrate

__all__ = ["DEFAULT_BUSY_TIMEOUT_S", "Database", "Params", "Reseal"]

Params = Sequence[Any] | Mapping[str, Any]
"""Query parameters: positional (``?``) or named (``:name``)."""

Reseal = Callable[[bytes, str, str], bytes]
"""Key rotation's re-encryption: ``reseal(blob, context, what)`` returns the blob sealed anew."""

DEFAULT_BUSY_TIMEOUT_S = 10.0
"""How long a write waits for another process's transaction before giving up."""

log = logging.getLogger(__name__)


def _create_private(path: Path) -> None:
    """The store file (and its -wal/-shm) 0600 before SQLite opens it.

    SQLite gives the -wal and -shm files the database file's mode when it creates them, so a db
    created 0600 here keeps them private too; files left looser by an older corral are tightened.
    """
    if not path.parent.exists():
        private_dir(path.parent)
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if tighten(file, PRIVATE_FILE):
            log.warning("%s: other users had access; tightened to owner-only", file)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        # Exactly 0600: the umask may have taken the owner's own bits away too.
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)


def _is_busy(exc: BaseException) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED: another connection holds a lock we waited for in vain."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        # Extended codes (SQLITE_BUSY_SNAPSHOT, ...) keep the primary code in the low byte.
        return (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc)


class Database:
    """Async access to corral's SQLite file: ``open``, ``tx()``, ``fetch_one``/``fetch_all``."""

    def __init__(
        self, conn: aiosqlite.Connection, path: Path, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
    ) -> None:
        self._conn = conn
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self._lock = asyncio.Lock()
        # The task whose transaction is open (``tx()`` calls from it join that transaction).
        self._owner: ContextVar[asyncio.Task[Any] | None] = ContextVar(
            f"corral_store_tx_{id(self)}", default=None
        )

    @classmethod
    async def open(
        cls,
        path: Path,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        migrations: Sequence[str] = MIGRATIONS,
    ) -> Self:
        """Open (creating and migrating as needed) the store at ``path``; a write waits up to
        ``busy_timeout_s`` for another process's transaction, then raises StoreBusyError."""
        _create_private(path)
        conn = await aiosqlite.connect(path, timeout=busy_timeout_s, isolation_level=None)
        try:
            conn.row_factory = aiosqlite.Row
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            db = cls(conn, path, busy_timeout_s)
            await migrate(db, migrations)
        except BaseException as exc:
            await conn.close()
            if _is_busy(exc):
                raise _busy_error(path, busy_timeout_s) from exc
            if isinstance(exc, sqlite3.DatabaseError):
                raise StoreError(f"{path}: cannot open the store: {exc}") from exc
            raise
        return db

    async def close(self) -> None:
        """Close the connection."""
        await self._conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def tx(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), joined if this task already holds one.

        The outermost block commits or rolls back the whole; a write in a joined block that raises
        rolls back everything the outer block did, and another task's ``tx()`` waits meanwhile.
        """
        return self._tx()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        if self._owner.get() is asyncio.current_task():
            yield self._conn
            return
        # IMMEDIATE takes the write lock up front, so check-then-write is atomic across processes.
        # A lock held elsewhere past the busy timeout fails here, before anything was written.
        async with self._lock:
            owner = self._owner.set(asyncio.current_task())
            try:
                async with self._immediate() as conn:
                    yield conn
            finally:
                self._owner.reset(owner)

    @asynccontextmanager
    async def _immediate(self) -> AsyncIterator[aiosqlite.Connection]:
        try:
            await self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise _busy_error(self.path, self.busy_timeout_s) from exc
            raise
        try:
            yield self._conn
        except BaseException as exc:
            await self._conn.rollback()
            if _is_busy(exc):
                raise _busy_error(self.path, self.busy_timeout_s) from exc
            raise
        try:
            await self._conn.commit()
        except sqlite3.OperationalError as exc:
            # The transaction did not commit: roll it back so the connection stays usable.
            if self._conn.in_transaction:
                await self._conn.rollback()
            if _is_busy(exc):
                raise _busy_error(self.path, self.busy_timeout_s) from exc
            raise

    async def execute_script(self, script: str) -> None:
        """Run a multi-statement script as it is (it commits implicitly; for migrations)."""
        await self._conn.executescript(script)

    async def clock(self) -> float:
        """The store's time, in seconds since the epoch: what leases and heartbeats are measured
        by, so hosts sharing a store never decide who owns what by their own clocks. (SQLite is
        on this host: its time is this host's.)"""
        return time.time()

    async def schema_version(self) -> int:
        """The number of migrations applied."""
        row = await self.fetch_one("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def fetch_one(self, sql: str, args: Params = ()) -> aiosqlite.Row | None:
        """One row of a read query."""
        try:
            async with self._conn.execute(sql, args) as cur:
                return await cur.fetchone()
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise _busy_error(self.path, self.busy_timeout_s) from exc
            raise

    async def fetch_all(self, sql: str, args: Params = ()) -> list[aiosqlite.Row]:
        """All rows of a read query."""
        try:
            async with self._conn.execute(sql, args) as cur:
                return list(await cur.fetchall())
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise _busy_error(self.path, self.busy_timeout_s) from exc
            raise


def _busy_error(path: Path, busy_timeout_s: float) -> StoreBusyError:
    return StoreBusyError(
        f"the store is busy (database locked by another process for more than "
        f"{busy_timeout_s:g} s); try again ({path})"
    )
