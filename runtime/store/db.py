"""The connection: the store's transactions and reads, on SQLite or PostgreSQL.

One :class:`Database` is shared by every session of a process; a transaction takes ``self._lock``
so concurrent sessions never interleave inside one. Under it a :class:`Driver` speaks to the
database: :class:`SqliteDriver` (one aiosqlite connection to the store file; other processes are
handled by SQLite itself: WAL, ``busy_timeout``, ``BEGIN IMMEDIATE``) or
:class:`runtime.store.postgres.PostgresDriver` (a connection pool; writers on every host take one
transaction-level advisory lock). A lock held elsewhere past the busy timeout becomes
:class:`~runtime.errors.StoreBusyError`.

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
from typing import Any, Protocol, Self

import aiosqlite

from profiles import PRIVATE_FILE, private_dir, tighten
from runtime.errors import StoreBusyError, StoreError
from runtime.store.migrations import MIGRATIONS, migrate

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_S",
    "Database",
    "Driver",
    "Params",
    "Reseal",
    "SqliteDriver",
    "is_database_url",
]

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


class Driver(Protocol):
    """One kind of database under :class:`Database`: SQLite here, PostgreSQL in
    :mod:`runtime.store.postgres`. Statements reach it as repositories write them (``?`` and
    ``:name`` parameters, SQL both dialects run); a driver adapts them to its client."""

    where: str
    """What the store is, for messages (a path, or a URL without its password)."""

    async def begin(self) -> Any:
        """Start a write transaction that excludes every other writer (any process, any host)
        until it ends; returns the connection that repositories ``execute`` on."""
        ...

    async def end(self, conn: Any, commit: bool) -> None:
        """Commit (or roll back) what :meth:`begin` started, and give the connection back."""
        ...

    async def fetch(self, conn: Any | None, sql: str, args: Params, one: bool) -> Any:
        """A read: on ``conn`` (the caller's open transaction) or on a connection of its own."""
        ...

    def is_busy(self, exc: BaseException) -> bool:
        """``exc`` means another writer held the store past the busy timeout."""
        ...

    async def schema_version(self) -> int: ...

    def migrating(self) -> AbstractAsyncContextManager[None]:
        """Held while migrations are checked and applied: one process migrates at a time."""
        ...

    async def apply_migration(self, number: int, script: str) -> None:
        """Run ``script`` and record ``number`` as the schema version, in one transaction."""
        ...

    async def clock(self) -> float: ...

    async def close(self) -> None: ...


class Database:
    """Async access to corral's store: ``open``, ``tx()``, ``fetch_one``/``fetch_all``.

    The store is a SQLite file (the embedded default) or, for many hosts, a PostgreSQL database
    (``open`` with a ``postgresql://`` URL); the repositories are the same on both.
    """

    def __init__(self, driver: Driver, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        self._driver = driver
        self.where = driver.where
        """The store's file, or its URL without the password (for messages)."""
        self.busy_timeout_s = busy_timeout_s
        self._lock = asyncio.Lock()
        # The task whose transaction is open (``tx()`` calls from it join that transaction),
        # and that transaction's connection (reads from that task see its writes).
        self._owner: ContextVar[asyncio.Task[Any] | None] = ContextVar(
            f"corral_store_tx_{id(self)}", default=None
        )
        self._open_conn: Any = None

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return "sqlite" if isinstance(self._driver, SqliteDriver) else "postgresql"

    @classmethod
    async def open(
        cls,
        where: Path | str,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        migrations: Sequence[str] = MIGRATIONS,
    ) -> Self:
        """Open (creating and migrating as needed) the store: a SQLite file at ``where``, or
        the PostgreSQL database a ``postgresql://`` URL names. A write waits up to
        ``busy_timeout_s`` for another writer, then raises StoreBusyError."""
        driver: Driver
        if is_database_url(where):
            from runtime.store.postgres import PostgresDriver

            driver = await PostgresDriver.connect(str(where), busy_timeout_s)
        else:
            driver = await SqliteDriver.connect(Path(where), busy_timeout_s)
        try:
            db = cls(driver, busy_timeout_s)
            await migrate(db, migrations)
        except BaseException as exc:
            await driver.close()
            if driver.is_busy(exc):
                raise _busy_error(driver.where, busy_timeout_s) from exc
            if isinstance(exc, sqlite3.DatabaseError):
                raise StoreError(f"{driver.where}: cannot open the store: {exc}") from exc
            raise
        return db

    async def close(self) -> None:
        """Close the connection(s)."""
        await self._driver.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def tx(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        """A write transaction that no other writer interleaves with (SQLite's ``BEGIN
        IMMEDIATE``; PostgreSQL's transaction-level advisory lock), joined if this task already
        holds one.

        The outermost block commits or rolls back the whole; a write in a joined block that raises
        rolls back everything the outer block did, and another task's ``tx()`` waits meanwhile.
        Repositories are written to aiosqlite's calls (``execute``, ``executemany``, cursors'
        ``fetchone``/``fetchall``/``rowcount``); on PostgreSQL a connection with the same calls.
        """
        return self._tx()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Any]:
        if self._owner.get() is asyncio.current_task():
            yield self._open_conn
            return
        # Taking the write lock up front makes check-then-write atomic across processes and
        # hosts. A lock held elsewhere past the busy timeout fails here, before anything was
        # written.
        async with self._lock:
            owner = self._owner.set(asyncio.current_task())
            try:
                try:
                    conn = await self._driver.begin()
                except Exception as exc:
                    if self._driver.is_busy(exc):
                        raise self._busy() from exc
                    raise
                self._open_conn = conn
                try:
                    yield conn
                except BaseException as exc:
                    await self._driver.end(conn, commit=False)
                    if self._driver.is_busy(exc):
                        raise self._busy() from exc
                    raise
                try:
                    await self._driver.end(conn, commit=True)
                except Exception as exc:
                    if self._driver.is_busy(exc):
                        raise self._busy() from exc
                    raise
            finally:
                self._open_conn = None
                self._owner.reset(owner)

    def migrating(self) -> AbstractAsyncContextManager[None]:
        """Held while migrations are applied (one process at a time)."""
        return self._driver.migrating()

    async def apply_migration(self, number: int, script: str) -> None:
        """Run one migration and record its number, in one commit."""
        await self._driver.apply_migration(number, script)

    async def clock(self) -> float:
        """The store's time, in seconds since the epoch: what leases and heartbeats are measured
        by, so hosts sharing a store never decide who owns what by their own clocks (SQLite is
        on this host: its time is this host's; PostgreSQL's is the server's)."""
        return await self._driver.clock()

    async def schema_version(self) -> int:
        """The number of migrations applied."""
        return await self._driver.schema_version()

    async def fetch_one(self, sql: str, args: Params = ()) -> aiosqlite.Row | None:
        """One row of a read query (a row reads by column name and by index), or None."""
        row: aiosqlite.Row | None = await self._fetch(sql, args, one=True)
        return row

    async def fetch_all(self, sql: str, args: Params = ()) -> list[aiosqlite.Row]:
        """All rows of a read query."""
        return list(await self._fetch(sql, args, one=False))

    async def _fetch(self, sql: str, args: Params, one: bool) -> Any:
        mine = self._owner.get() is asyncio.current_task()
        try:
            return await self._driver.fetch(self._open_conn if mine else None, sql, args, one)
        except Exception as exc:
            if self._driver.is_busy(exc):
                raise self._busy() from exc
            raise

    def _busy(self) -> StoreBusyError:
        return _busy_error(self.where, self.busy_timeout_s)


class SqliteDriver:
    """The embedded store: one aiosqlite connection to the file, shared by the process's tasks.

    Other processes are handled by SQLite itself (WAL, ``busy_timeout``, ``BEGIN IMMEDIATE``).
    """

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self.where = str(path)

    @classmethod
    async def connect(cls, path: Path, busy_timeout_s: float) -> SqliteDriver:
        _create_private(path)
        conn = await aiosqlite.connect(path, timeout=busy_timeout_s, isolation_level=None)
        try:
            conn.row_factory = aiosqlite.Row
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        except BaseException as exc:
            await conn.close()
            if _is_busy(exc):
                raise _busy_error(str(path), busy_timeout_s) from exc
            if isinstance(exc, sqlite3.DatabaseError):
                raise StoreError(f"{path}: cannot open the store: {exc}") from exc
            raise
        return cls(conn, path)

    async def begin(self) -> aiosqlite.Connection:
        # IMMEDIATE takes the write lock up front.
        await self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    async def end(self, conn: Any, commit: bool) -> None:
        if not commit:
            await self._conn.rollback()
            return
        try:
            await self._conn.commit()
        except sqlite3.OperationalError:
            # The transaction did not commit: roll it back so the connection stays usable.
            if self._conn.in_transaction:
                await self._conn.rollback()
            raise

    async def fetch(self, conn: Any | None, sql: str, args: Params, one: bool) -> Any:
        async with self._conn.execute(sql, args) as cur:
            return await (cur.fetchone() if one else cur.fetchall())

    def is_busy(self, exc: BaseException) -> bool:
        return _is_busy(exc)

    async def schema_version(self) -> int:
        async with self._conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    @asynccontextmanager
    async def migrating(self) -> AsyncIterator[None]:
        # Each migration takes the write lock; one already applied by another process is seen
        # by the version check (migrate re-reads the version under BEGIN IMMEDIATE).
        yield

    async def apply_migration(self, number: int, script: str) -> None:
        # executescript commits implicitly, so the script and its version bump share one commit.
        await self._conn.executescript(
            f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;"
        )

    async def clock(self) -> float:
        return time.time()

    async def close(self) -> None:
        await self._conn.close()


def is_database_url(where: Path | str) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL rather than a file path."""
    return isinstance(where, str) and where.split("://", 1)[0] in ("postgresql", "postgres")


def _busy_error(where: str, busy_timeout_s: float) -> StoreBusyError:
    return StoreBusyError(
        f"the store is busy (database locked by another process for more than "
        f"{busy_timeout_s:g} s); try again ({where})"
    )
