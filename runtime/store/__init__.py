"""The store: one SQLite file (WAL) holding profiles, leases, runs, steps and artifacts.

One ``Store`` (one aiosqlite connection) is shared by every session of a process; multi-statement
writes take ``self._lock`` so concurrent sessions never interleave inside a transaction. Other
processes are handled by SQLite itself (WAL, ``busy_timeout``, ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import aiosqlite

from profiles import (
    PRIVATE_FILE,
    SEALED_PREFIX,
    AuditRecord,
    CredentialLeaseRecord,
    LeaseHolder,
    ProfileRecord,
    ProfileSettings,
    SecretRecord,
    holder_is_gone,
    private_dir,
    proxy_context,
    secret_context,
    tighten,
)
from runtime.errors import StoreBusyError, StoreError
from runtime.records import ArtifactRecord, ModelCallRecord, RunRecord, RunStatus, StepRecord

__all__ = ["DEFAULT_BUSY_TIMEOUT_S", "Store"]

DEFAULT_BUSY_TIMEOUT_S = 10.0
"""How long a write waits for another process's transaction before giving up."""

log = logging.getLogger(__name__)

# Append only: a released migration never changes; PRAGMA user_version counts applied ones.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE profiles (
        name TEXT PRIMARY KEY,
        settings TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        state BLOB,
        state_saved_at TEXT
    );
    CREATE TABLE leases (
        profile TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        pid_started REAL NOT NULL,
        acquired_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL
    );
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        task_name TEXT NOT NULL,
        task_path TEXT,
        profile TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        error TEXT,
        result TEXT,
        run_dir TEXT NOT NULL,
        pid INTEGER NOT NULL
    );
    CREATE INDEX runs_started ON runs (started_at);
    CREATE TABLE steps (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        kind TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        side_effect TEXT NOT NULL,
        status TEXT NOT NULL,
        url_before TEXT,
        url_after TEXT,
        started_at TEXT NOT NULL,
        duration_ms REAL NOT NULL,
        error TEXT,
        screenshot TEXT,
        detail TEXT,
        PRIMARY KEY (run_id, idx)
    );
    CREATE TABLE artifacts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step_idx INTEGER,
        kind TEXT NOT NULL,
        path TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX artifacts_run ON artifacts (run_id);
    """,
    """
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        domains TEXT NOT NULL,
        profiles TEXT NOT NULL,
        ciphertext BLOB NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        last_used_at TEXT
    );
    CREATE TABLE credential_leases (
        run_id TEXT PRIMARY KEY,
        profile TEXT NOT NULL,
        secrets TEXT NOT NULL,
        origins TEXT NOT NULL,
        pid INTEGER NOT NULL,
        granted_at TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE TABLE secret_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        step_idx INTEGER,
        secret TEXT NOT NULL,
        origin TEXT NOT NULL,
        at TEXT NOT NULL,
        allowed INTEGER NOT NULL,
        reason TEXT
    );
    CREATE INDEX secret_audit_run ON secret_audit (run_id);
    """,
    """
    CREATE TABLE model_calls (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        step_idx INTEGER,
        role TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        outcome TEXT NOT NULL,
        reason TEXT,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL,
        reasoning_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        latency_ms REAL NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX model_calls_run ON model_calls (run_id);
    """,
    """
    CREATE TABLE approvals (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        step_idx INTEGER NOT NULL,
        task_name TEXT NOT NULL,
        profile TEXT NOT NULL,
        action TEXT NOT NULL,
        summary TEXT NOT NULL,
        reasons TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        page_url TEXT,
        screenshot TEXT,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        decided_at TEXT,
        decided_by TEXT,
        comment TEXT,
        executed_at TEXT,
        outcome TEXT
    );
    CREATE INDEX approvals_status ON approvals (status);
    CREATE INDEX approvals_key ON approvals (idempotency_key);
    CREATE INDEX approvals_run ON approvals (run_id);
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        created_at TEXT NOT NULL,
        disabled_at TEXT
    );
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        user_name TEXT NOT NULL REFERENCES users (name),
        hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        revoked_at TEXT,
        last_used_at TEXT
    );
    CREATE TABLE grants (
        user_name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        profile TEXT NOT NULL,
        granted_at TEXT NOT NULL,
        granted_by TEXT NOT NULL,
        PRIMARY KEY (user_name, profile)
    );
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        role TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    """,
    # The fields a value secret may be typed into (JSON list; empty: a password secret).
    """
    ALTER TABLE secrets ADD COLUMN fields TEXT NOT NULL DEFAULT '[]';
    """,
]


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


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _is_busy(exc: BaseException) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED: another connection holds a lock we waited for in vain."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        # Extended codes (SQLITE_BUSY_SNAPSHOT, ...) keep the primary code in the low byte.
        return (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc)


def _busy_error(path: Path, busy_timeout_s: float) -> StoreBusyError:
    return StoreBusyError(
        f"the store is busy (database locked by another process for more than "
        f"{busy_timeout_s:g} s); try again ({path})"
    )


class Store:
    """Async access to corral's SQLite file."""

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
    async def open(cls, path: Path, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> Store:
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
            store = cls(conn, path, busy_timeout_s)
            await store._migrate()
        except BaseException as exc:
            await conn.close()
            if _is_busy(exc):
                raise _busy_error(path, busy_timeout_s) from exc
            if isinstance(exc, sqlite3.DatabaseError):
                raise StoreError(f"{path}: cannot open the store: {exc}") from exc
            raise
        return store

    async def close(self) -> None:
        """Close the connection."""
        await self._conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        # A transaction opened by this task already: join it, so a service can make a change and
        # write its audit row in one transaction while each part keeps using ``tx()``. The outer
        # block commits or rolls back the whole.
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

    async def _migrate(self) -> None:
        async with self._conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path}: schema version {version} is newer than this corral "
                f"({len(MIGRATIONS)}); upgrade corral"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript commits implicitly, so the script and its version bump share one.
            await self._conn.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;"
            )

    async def schema_version(self) -> int:
        """The number of migrations applied."""
        async with self._conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    def tx(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``) for modules that keep their own tables."""
        return self._tx()

    async def fetch_one(self, sql: str, args: tuple[Any, ...] = ()) -> aiosqlite.Row | None:
        """One row of a read query."""
        return await self._one(sql, args)

    async def fetch_all(self, sql: str, args: tuple[Any, ...] = ()) -> list[aiosqlite.Row]:
        """All rows of a read query."""
        return await self._all(sql, args)

    async def _one(self, sql: str, args: tuple[Any, ...] = ()) -> aiosqlite.Row | None:
        try:
            async with self._conn.execute(sql, args) as cur:
                return await cur.fetchone()
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise _busy_error(self.path, self.busy_timeout_s) from exc
            raise

    async def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[aiosqlite.Row]:
        try:
            async with self._conn.execute(sql, args) as cur:
                return list(await cur.fetchall())
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise _busy_error(self.path, self.busy_timeout_s) from exc
            raise

    # --- profiles -------------------------------------------------------------------------

    @staticmethod
    def _profile(row: aiosqlite.Row) -> ProfileRecord:
        return ProfileRecord(
            name=row["name"],
            settings=ProfileSettings.model_validate_json(row["settings"]),
            created_at=datetime.fromisoformat(row["created_at"]),
            updated_at=datetime.fromisoformat(row["updated_at"]),
            state=row["state"],
            state_saved_at=_dt(row["state_saved_at"]),
        )

    async def insert_profile(self, record: ProfileRecord) -> bool:
        """Insert a profile; False if the name is taken."""
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT OR IGNORE INTO profiles VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record.name,
                    record.settings.model_dump_json(),
                    record.created_at.isoformat(),
                    record.updated_at.isoformat(),
                    record.state,
                    record.state_saved_at.isoformat() if record.state_saved_at else None,
                ),
            )
            return cur.rowcount == 1

    async def get_profile(self, name: str) -> ProfileRecord | None:
        """One profile, or None."""
        row = await self._one("SELECT * FROM profiles WHERE name = ?", (name,))
        return self._profile(row) if row else None

    async def list_profiles(self) -> list[ProfileRecord]:
        """All profiles by name."""
        return [self._profile(r) for r in await self._all("SELECT * FROM profiles ORDER BY name")]

    async def update_profile_settings(self, name: str, settings: ProfileSettings) -> bool:
        """Replace a profile's settings; False if it does not exist."""
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE profiles SET settings = ?, updated_at = ? WHERE name = ?",
                (settings.model_dump_json(), _now(), name),
            )
            return cur.rowcount == 1

    async def save_profile_state(self, name: str, sealed: bytes | None) -> None:
        """Replace a profile's sealed state in one transaction (the old one stays on failure)."""
        async with self._tx() as db:
            await db.execute(
                "UPDATE profiles SET state = ?, state_saved_at = ?, updated_at = ? WHERE name = ?",
                (sealed, _now() if sealed else None, _now(), name),
            )

    async def delete_profile(self, name: str) -> bool:
        """Delete a profile, its lease and the grants on it; False if it did not exist."""
        async with self._tx() as db:
            await db.execute("DELETE FROM leases WHERE profile = ?", (name,))
            # A profile created later under the same name must not inherit old grants.
            await db.execute("DELETE FROM grants WHERE profile = ?", (name,))
            cur = await db.execute("DELETE FROM profiles WHERE name = ?", (name,))
            return cur.rowcount == 1

    # --- leases (profiles.LeaseStore) -------------------------------------------------------

    @staticmethod
    def _holder(row: aiosqlite.Row) -> LeaseHolder:
        return LeaseHolder(
            run_id=row["run_id"],
            host=row["host"],
            pid=row["pid"],
            pid_started=row["pid_started"],
            acquired_at=row["acquired_at"],
            heartbeat_at=row["heartbeat_at"],
        )

    async def take_lease(
        self, profile: str, holder: LeaseHolder, ttl_s: float
    ) -> LeaseHolder | None:
        """Take the lease unless a live holder has it; return that holder if so."""
        async with self._tx() as db:
            async with db.execute("SELECT * FROM leases WHERE profile = ?", (profile,)) as cur:
                row = await cur.fetchone()
            if row is not None:
                current = self._holder(row)
                if current.run_id != holder.run_id and not holder_is_gone(current, ttl_s):
                    return current
            await db.execute(
                "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    profile,
                    holder.run_id,
                    holder.host,
                    holder.pid,
                    holder.pid_started,
                    holder.acquired_at,
                    holder.heartbeat_at,
                ),
            )
            return None

    async def renew_lease(self, profile: str, run_id: str, at: float) -> None:
        """Refresh a held lease's heartbeat."""
        async with self._tx() as db:
            await db.execute(
                "UPDATE leases SET heartbeat_at = ? WHERE profile = ? AND run_id = ?",
                (at, profile, run_id),
            )

    async def release_lease(self, profile: str, run_id: str) -> None:
        """Drop the lease if ``run_id`` still holds it."""
        async with self._tx() as db:
            await db.execute(
                "DELETE FROM leases WHERE profile = ? AND run_id = ?", (profile, run_id)
            )

    async def get_lease(self, profile: str) -> LeaseHolder | None:
        """The current lease row for a profile, live or not."""
        row = await self._one("SELECT * FROM leases WHERE profile = ?", (profile,))
        return self._holder(row) if row else None

    # --- runs, steps, artifacts -------------------------------------------------------------

    async def create_run(self, run: RunRecord) -> None:
        """Insert a new run row."""
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.id,
                    run.task_name,
                    run.task_path,
                    run.profile,
                    run.status,
                    run.started_at.isoformat(),
                    None,
                    None,
                    None,
                    run.run_dir,
                    run.pid,
                ),
            )

    async def finish_run(
        self, run_id: str, status: RunStatus, error: str | None, result: Any = None
    ) -> None:
        """Record a run's final status, error and result."""
        async with self._tx() as db:
            await db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, error = ?, result = ? WHERE id = ?",
                (status, _now(), error, json.dumps(result) if result is not None else None, run_id),
            )

    async def set_run_status(self, run_id: str, status: RunStatus) -> None:
        """Change a live run's status (running <-> waiting_approval)."""
        async with self._tx() as db:
            await db.execute("UPDATE runs SET status = ? WHERE id = ?", (status, run_id))

    async def mark_orphaned_runs(self, is_alive: Any) -> int:
        """Mark ``running`` runs whose process is gone as ``interrupted``; returns how many."""
        rows = await self._all(
            "SELECT id, pid FROM runs WHERE status IN ('queued', 'running', 'waiting_approval')"
        )
        dead = [r["id"] for r in rows if not is_alive(r["pid"])]
        if dead:
            async with self._tx() as db:
                # Its approval requests close with it: nothing will act on them. One that was
                # being acted on may have happened, so it is marked for a person, never re-run.
                await db.executemany(
                    "UPDATE approvals SET status = 'cancelled', outcome = 'the run was "
                    "interrupted before acting' WHERE run_id = ? AND status IN "
                    "('pending', 'approved')",
                    [(run_id,) for run_id in dead],
                )
                await db.executemany(
                    "UPDATE approvals SET status = 'unconfirmed', outcome = 'the run was "
                    "interrupted while acting; the action may have happened' "
                    "WHERE run_id = ? AND status = 'executing'",
                    [(run_id,) for run_id in dead],
                )
                # A credential lease is dead once its run is.
                await db.executemany(
                    "UPDATE credential_leases SET revoked_at = ? "
                    "WHERE run_id = ? AND revoked_at IS NULL",
                    [(_now(), run_id) for run_id in dead],
                )
                await db.executemany(
                    "UPDATE runs SET status = 'interrupted', finished_at = ?, "
                    "error = COALESCE(error, 'the process running it ended unexpectedly') "
                    "WHERE id = ?",
                    [(_now(), run_id) for run_id in dead],
                )
        return len(dead)

    @staticmethod
    def _run(row: aiosqlite.Row) -> RunRecord:
        return RunRecord(
            id=row["id"],
            task_name=row["task_name"],
            task_path=row["task_path"],
            profile=row["profile"],
            status=row["status"],
            started_at=datetime.fromisoformat(row["started_at"]),
            finished_at=_dt(row["finished_at"]),
            error=row["error"],
            result=json.loads(row["result"]) if row["result"] is not None else None,
            run_dir=row["run_dir"],
            pid=row["pid"],
        )

    async def get_run(self, run_id: str) -> RunRecord | None:
        """A run by id or by a unique id prefix."""
        row = await self._one("SELECT * FROM runs WHERE id = ?", (run_id,))
        if row is None:
            rows = await self._all(
                "SELECT * FROM runs WHERE id LIKE ? ESCAPE '\\' LIMIT 2",
                (run_id.replace("%", "\\%").replace("_", "\\_") + "%",),
            )
            row = rows[0] if len(rows) == 1 else None
        return self._run(row) if row else None

    async def list_runs(self, limit: int = 20, profile: str | None = None) -> list[RunRecord]:
        """The latest runs, newest first."""
        if profile:
            rows = await self._all(
                "SELECT * FROM runs WHERE profile = ? ORDER BY started_at DESC LIMIT ?",
                (profile, limit),
            )
        else:
            rows = await self._all("SELECT * FROM runs ORDER BY started_at DESC LIMIT ?", (limit,))
        return [self._run(r) for r in rows]

    async def add_step(self, step: StepRecord) -> None:
        """Insert one step row."""
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO steps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    step.run_id,
                    step.idx,
                    step.kind,
                    json.dumps(step.action),
                    step.target,
                    step.side_effect,
                    step.status,
                    step.url_before,
                    step.url_after,
                    step.started_at.isoformat(),
                    step.duration_ms,
                    step.error,
                    step.screenshot,
                    json.dumps(step.detail) if step.detail is not None else None,
                ),
            )

    async def list_steps(self, run_id: str) -> list[StepRecord]:
        """A run's steps in order."""
        rows = await self._all("SELECT * FROM steps WHERE run_id = ? ORDER BY idx", (run_id,))
        return [
            StepRecord(
                run_id=r["run_id"],
                idx=r["idx"],
                kind=r["kind"],
                action=json.loads(r["action"]),
                target=r["target"],
                side_effect=r["side_effect"],
                status=r["status"],
                url_before=r["url_before"],
                url_after=r["url_after"],
                started_at=datetime.fromisoformat(r["started_at"]),
                duration_ms=r["duration_ms"],
                error=r["error"],
                screenshot=r["screenshot"],
                detail=json.loads(r["detail"]) if r["detail"] is not None else None,
            )
            for r in rows
        ]

    async def add_artifact(self, artifact: ArtifactRecord) -> None:
        """Register a file a run produced."""
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO artifacts (run_id, step_idx, kind, path, bytes, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    artifact.run_id,
                    artifact.step_idx,
                    artifact.kind,
                    artifact.path,
                    artifact.bytes,
                    artifact.created_at.isoformat(),
                ),
            )

    async def list_artifacts(self, run_id: str) -> list[ArtifactRecord]:
        """Files a run produced."""
        rows = await self._all("SELECT * FROM artifacts WHERE run_id = ? ORDER BY id", (run_id,))
        return [
            ArtifactRecord(
                run_id=r["run_id"],
                step_idx=r["step_idx"],
                kind=r["kind"],
                path=r["path"],
                bytes=r["bytes"],
                created_at=datetime.fromisoformat(r["created_at"]),
            )
            for r in rows
        ]

    # --- secrets (profiles.VaultStore) ------------------------------------------------------

    @staticmethod
    def _secret(row: aiosqlite.Row) -> SecretRecord:
        return SecretRecord(
            name=row["name"],
            kind=row["kind"],
            domains=json.loads(row["domains"]),
            profiles=json.loads(row["profiles"]),
            fields=json.loads(row["fields"]),
            ciphertext=row["ciphertext"],
            created_at=datetime.fromisoformat(row["created_at"]),
            updated_at=datetime.fromisoformat(row["updated_at"]),
            last_used_at=_dt(row["last_used_at"]),
        )

    async def put_secret(self, record: SecretRecord) -> None:
        """Insert or replace a secret (keeping its creation time)."""
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO secrets (name, kind, domains, profiles, fields, ciphertext, "
                "created_at, updated_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL) "
                "ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, "
                "domains = excluded.domains, profiles = excluded.profiles, "
                "fields = excluded.fields, ciphertext = excluded.ciphertext, "
                "updated_at = excluded.updated_at",
                (
                    record.name,
                    record.kind,
                    json.dumps(record.domains),
                    json.dumps(record.profiles),
                    json.dumps(record.fields),
                    record.ciphertext,
                    record.created_at.isoformat(),
                    record.updated_at.isoformat(),
                ),
            )

    async def get_secret(self, name: str) -> SecretRecord | None:
        """One secret (sealed), or None."""
        row = await self._one("SELECT * FROM secrets WHERE name = ?", (name,))
        return self._secret(row) if row else None

    async def list_secrets(self) -> list[SecretRecord]:
        """All secrets (sealed), by name."""
        return [self._secret(r) for r in await self._all("SELECT * FROM secrets ORDER BY name")]

    async def delete_secret(self, name: str) -> bool:
        """Delete a secret; False if it did not exist."""
        async with self._tx() as db:
            cur = await db.execute("DELETE FROM secrets WHERE name = ?", (name,))
            return cur.rowcount == 1

    async def touch_secret(self, name: str) -> None:
        """Record that a secret was just used."""
        async with self._tx() as db:
            await db.execute("UPDATE secrets SET last_used_at = ? WHERE name = ?", (_now(), name))

    async def grant_credential_lease(self, lease: CredentialLeaseRecord) -> None:
        """Record a run's credential lease."""
        async with self._tx() as db:
            await db.execute(
                "INSERT OR REPLACE INTO credential_leases VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (
                    lease.run_id,
                    lease.profile,
                    json.dumps(lease.secrets),
                    json.dumps(lease.origins),
                    lease.pid,
                    lease.granted_at.isoformat(),
                ),
            )

    async def revoke_credential_lease(self, run_id: str) -> None:
        """Revoke a run's credential lease."""
        async with self._tx() as db:
            await db.execute(
                "UPDATE credential_leases SET revoked_at = ? "
                "WHERE run_id = ? AND revoked_at IS NULL",
                (_now(), run_id),
            )

    async def get_credential_lease(self, run_id: str) -> CredentialLeaseRecord | None:
        """A run's credential lease."""
        row = await self._one("SELECT * FROM credential_leases WHERE run_id = ?", (run_id,))
        if row is None:
            return None
        return CredentialLeaseRecord(
            run_id=row["run_id"],
            profile=row["profile"],
            secrets=json.loads(row["secrets"]),
            origins=json.loads(row["origins"]),
            pid=row["pid"],
            granted_at=datetime.fromisoformat(row["granted_at"]),
            revoked_at=_dt(row["revoked_at"]),
        )

    async def add_audit(self, entry: AuditRecord) -> None:
        """Append one secret-use audit entry."""
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO secret_audit (run_id, step_idx, secret, origin, at, allowed, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.run_id,
                    entry.step_idx,
                    entry.secret,
                    entry.origin,
                    entry.at.isoformat(),
                    int(entry.allowed),
                    entry.reason,
                ),
            )

    async def list_audit(self, run_id: str | None = None, limit: int = 100) -> list[AuditRecord]:
        """Secret-use audit entries, newest first."""
        sql = "SELECT * FROM secret_audit"
        args: tuple[Any, ...] = ()
        if run_id:
            sql, args = sql + " WHERE run_id = ?", (run_id,)
        rows = await self._all(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))
        return [
            AuditRecord(
                run_id=r["run_id"],
                step_idx=r["step_idx"],
                secret=r["secret"],
                origin=r["origin"],
                at=datetime.fromisoformat(r["at"]),
                allowed=bool(r["allowed"]),
                reason=r["reason"],
            )
            for r in rows
        ]

    async def reseal_all(self, reseal: Any) -> int:
        """Re-encrypt every sealed row in ONE transaction: ``reseal(blob, context, what)``.

        All or nothing: an error (or a crash) leaves every row as it was.
        """
        count = 0
        async with self._tx() as db:
            async with db.execute("SELECT * FROM secrets") as cur:
                secret_rows = list(await cur.fetchall())
            for row in secret_rows:
                name = row["name"]
                context = secret_context(self._secret(row))
                blob = reseal(row["ciphertext"], context, f"secret '{name}'")
                if blob != row["ciphertext"]:
                    await db.execute(
                        "UPDATE secrets SET ciphertext = ? WHERE name = ?", (blob, name)
                    )
                    count += 1
            async with db.execute(
                "SELECT name, state FROM profiles WHERE state IS NOT NULL"
            ) as cur:
                profile_rows = list(await cur.fetchall())
            for row in profile_rows:
                name = row["name"]
                blob = reseal(
                    row["state"], f"profile-state:{name}", f"profile '{name}' saved state"
                )
                if blob != row["state"]:
                    await db.execute("UPDATE profiles SET state = ? WHERE name = ?", (blob, name))
                    count += 1
            async with db.execute("SELECT name, settings FROM profiles") as cur:
                settings_rows = list(await cur.fetchall())
            for row in settings_rows:
                settings = json.loads(row["settings"])
                password = (settings.get("proxy") or {}).get("password") or ""
                if not password.startswith(SEALED_PREFIX):
                    continue
                name = row["name"]
                old = base64.b64decode(password.removeprefix(SEALED_PREFIX))
                new = reseal(old, proxy_context(name), f"profile '{name}' proxy password")
                if new != old:
                    settings["proxy"]["password"] = SEALED_PREFIX + base64.b64encode(new).decode()
                    await db.execute(
                        "UPDATE profiles SET settings = ? WHERE name = ?",
                        (json.dumps(settings), name),
                    )
                    count += 1
        return count

    # --- model calls --------------------------------------------------------------------------

    async def add_model_call(self, call: ModelCallRecord) -> None:
        """Record one model attempt (answered, failed or skipped) with its tokens and cost."""
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO model_calls (run_id, step_idx, role, provider, model, outcome, "
                "reason, input_tokens, output_tokens, cached_tokens, reasoning_tokens, cost_usd, "
                "latency_ms, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    call.run_id,
                    call.step_idx,
                    call.role,
                    call.provider,
                    call.model,
                    call.outcome,
                    call.reason,
                    call.input_tokens,
                    call.output_tokens,
                    call.cached_tokens,
                    call.reasoning_tokens,
                    call.cost_usd,
                    call.latency_ms,
                    call.at.isoformat(),
                ),
            )

    async def list_model_calls(self, run_id: str) -> list[ModelCallRecord]:
        """A run's model attempts in order."""
        rows = await self._all("SELECT * FROM model_calls WHERE run_id = ? ORDER BY id", (run_id,))
        return [
            ModelCallRecord(
                run_id=r["run_id"],
                step_idx=r["step_idx"],
                role=r["role"],
                provider=r["provider"],
                model=r["model"],
                outcome=r["outcome"],
                reason=r["reason"],
                input_tokens=r["input_tokens"],
                output_tokens=r["output_tokens"],
                cached_tokens=r["cached_tokens"],
                reasoning_tokens=r["reasoning_tokens"],
                cost_usd=r["cost_usd"],
                latency_ms=r["latency_ms"],
                at=datetime.fromisoformat(r["at"]),
            )
            for r in rows
        ]


# Repositories over the Store (imported last: they take the Store object). The approvals
# repository is imported from runtime.store.approvals directly (it maps rows to
# runtime.approvals' requests, which themselves use this package).
from runtime.store.audit import AuditLog, write_audit  # noqa: E402
from runtime.store.users import UserRepo  # noqa: E402

__all__ += ["AuditLog", "UserRepo", "write_audit"]
