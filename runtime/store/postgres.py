"""The store on PostgreSQL (``CORRAL_DATABASE_URL=postgresql://...``), for many hosts at once.

:class:`PostgresDriver` runs the repositories' statements as written (``?`` and ``:name``
parameters, SQL that SQLite runs too) through psycopg, translating the parameters once per
statement. What SQLite's ``BEGIN IMMEDIATE`` guarantees, one writer at a time, a write transaction
here gets from a transaction-level advisory lock taken first: every check-then-write of the
repositories (a lease taken over, an approval's one-winner move, a fire's claim under its limits,
the audit chain's next link) stays atomic across processes and hosts, and the lock is released by
the database when the transaction ends or its connection dies, never by a host's clock or pid.
A writer that waits longer than the busy timeout gets ``lock_timeout``'s error, which
:class:`~runtime.store.db.Database` turns into StoreBusyError, as on SQLite.

psycopg is imported only here, so only a PostgreSQL store needs it (``pip install
corral[postgres]``).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from runtime.errors import StoreError
from runtime.store.migrations import postgres_ddl

try:
    import psycopg
    import psycopg.errors
    from psycopg_pool import AsyncConnectionPool
except ImportError as exc:  # pragma: no cover - depends on the install
    raise StoreError(
        "a postgresql:// store needs psycopg and psycopg-pool: pip install 'corral[postgres]'"
    ) from exc

__all__ = ["WRITE_LOCK", "PostgresDriver", "Row", "pg_sql", "safe_url"]

WRITE_LOCK = 0x636F7272616C  # "corral": the advisory lock every write transaction takes
_MIGRATE_LOCK = WRITE_LOCK + 1

POOL_MAX = 10
"""Connections one process keeps at most (reads run beside the one write transaction)."""


def safe_url(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


@functools.lru_cache(maxsize=2048)
def pg_sql(sql: str) -> str:
    """``sql`` with ``?`` as ``%s``, ``:name`` as ``%(name)s`` and ``%`` as ``%%``; quoted
    literals and identifiers and ``::`` casts are left as they are."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in ("'", '"'):
            end = i + 1
            while end < n:
                if sql[end] == c:
                    if end + 1 < n and sql[end + 1] == c:  # an escaped quote
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i : end + 1].replace("%", "%%"))
            i = end + 1
        elif c == "?":
            out.append("%s")
            i += 1
        elif c == "%":
            out.append("%%")
            i += 1
        elif c == ":" and i + 1 < n and sql[i + 1] == ":":
            out.append("::")
            i += 2
        elif c == ":" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_"):
            end = i + 1
            while end < n and (sql[end].isalnum() or sql[end] == "_"):
                end += 1
            out.append(f"%({sql[i + 1 : end]})s")
            i = end
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _args(args: Sequence[Any] | Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
    # SQLite keeps booleans as 0/1 in INTEGER columns; so do the BIGINT columns here.
    if isinstance(args, Mapping):
        return {k: int(v) if isinstance(v, bool) else v for k, v in args.items()}
    return [int(v) if isinstance(v, bool) else v for v in args]


class Row:
    """A result row that reads by column name and by index, like ``sqlite3.Row``."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: Mapping[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._index[key] if isinstance(key, str) else key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Any:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values, strict=True))!r})"


def _rows(cursor: Any) -> Any:
    index = {col.name: i for i, col in enumerate(cursor.description or ())}
    return lambda values: Row(values, index)


class _Executed:
    """What ``conn.execute`` returns: awaited, the cursor; or ``async with`` it."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], sql: str, args: Any) -> None:
        self._run = conn.execute(pg_sql(sql), _args(args) if args else None)

    def __await__(self) -> Any:
        return self._run.__await__()

    async def __aenter__(self) -> Any:
        return await self._run

    async def __aexit__(self, *exc: object) -> None:
        return None


class Connection:
    """A transaction's connection as the repositories use it (aiosqlite's calls)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.raw = conn
        """The psycopg connection (a queue library may add its jobs in this transaction)."""

    def execute(self, sql: str, args: Sequence[Any] | Mapping[str, Any] = ()) -> _Executed:
        return _Executed(self.raw, sql, args)

    async def executemany(self, sql: str, rows: Sequence[Any]) -> None:
        async with self.raw.cursor() as cur:
            await cur.executemany(pg_sql(sql), [_args(r) for r in rows])


class PostgresDriver:
    """The store's driver for PostgreSQL: a pool of autocommit connections; see the module."""

    def __init__(self, pool: AsyncConnectionPool[Any], url: str, busy_timeout_s: float) -> None:
        self.pool = pool
        self.url = url
        self.where = safe_url(url)
        self._lock_timeout_ms = max(1, int(busy_timeout_s * 1000))

    @classmethod
    async def connect(cls, url: str, busy_timeout_s: float) -> PostgresDriver:
        idle_ms = int(max(5.0, 2 * busy_timeout_s) * 1000)
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=POOL_MAX,
            open=False,
            kwargs={
                "autocommit": True,
                "row_factory": _rows,
                # A client cut off inside a write transaction holds the write lock: the server
                # ends such a transaction after this long, so the other hosts can go on.
                "options": f"-c idle_in_transaction_session_timeout={idle_ms}",
            },
            name="corral-store",
        )
        try:
            await pool.open(wait=True, timeout=max(5.0, busy_timeout_s))
        except Exception as exc:
            await pool.close()
            raise StoreError(f"{safe_url(url)}: cannot reach the store: {_reason(exc)}") from exc
        return cls(pool, url, busy_timeout_s)

    async def begin(self) -> Connection:
        conn = await self.pool.getconn()
        try:
            await conn.execute("BEGIN")
            await conn.execute(f"SET LOCAL lock_timeout = {self._lock_timeout_ms}")
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        except BaseException:
            await self._give_back(conn, rollback=True)
            raise
        return Connection(conn)

    async def end(self, conn: Any, commit: bool) -> None:
        raw = conn.raw
        try:
            await raw.execute("COMMIT" if commit else "ROLLBACK")
        except BaseException:
            await self._give_back(raw, rollback=True)
            raise
        await self.pool.putconn(raw)

    async def _give_back(self, conn: psycopg.AsyncConnection[Any], rollback: bool) -> None:
        if rollback and not conn.closed:
            try:
                await conn.execute("ROLLBACK")
            except psycopg.Error:
                await conn.close()  # the pool replaces a closed connection
        await self.pool.putconn(conn)

    async def fetch(self, conn: Any | None, sql: str, args: Any, one: bool) -> Any:
        if conn is not None:
            cur = await conn.execute(sql, args)
            return await (cur.fetchone() if one else cur.fetchall())
        async with self.pool.connection() as raw:
            cur = await raw.execute(pg_sql(sql), _args(args) if args else None)
            return await (cur.fetchone() if one else cur.fetchall())

    def is_busy(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.errors.LockNotAvailable)

    async def schema_version(self) -> int:
        async with self.pool.connection() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS corral_schema (one INTEGER PRIMARY KEY DEFAULT 1 "
                "CHECK (one = 1), version INTEGER NOT NULL)"
            )
            cur = await conn.execute("SELECT version FROM corral_schema")
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    @asynccontextmanager
    async def migrating(self) -> AsyncIterator[None]:
        # Hosts starting at once: one migrates, the others wait and then find nothing to do.
        async with self.pool.connection() as conn:
            await conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATE_LOCK,))
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATE_LOCK,))

    async def apply_migration(self, number: int, script: str) -> None:
        ddl = postgres_ddl(script)
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(ddl)
            await conn.execute(
                "INSERT INTO corral_schema (one, version) VALUES (1, %s) "
                "ON CONFLICT (one) DO UPDATE SET version = excluded.version",
                (number,),
            )

    async def clock(self) -> float:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8")
            row = await cur.fetchone()
        assert row is not None
        return float(row[0])

    async def close(self) -> None:
        await self.pool.close()


def _reason(exc: BaseException) -> str:
    # psycopg's connection errors name host and port, never the password.
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
