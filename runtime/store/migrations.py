"""The schema: the append-only list of migrations and :func:`migrate`, which applies them.

One list serves both databases: migrations are written in SQLite's dialect, and
:func:`postgres_ddl` turns each into PostgreSQL's (column types; the audit log's refusing
triggers). SQLite counts the migrations applied in ``PRAGMA user_version``, PostgreSQL in the
``corral_schema`` table; a store from a newer corral (a higher version than this list knows) is
refused rather than written to.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from runtime.errors import StoreError

if TYPE_CHECKING:
    from runtime.store.db import Database

__all__ = ["MIGRATIONS", "migrate", "postgres_ddl"]

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
    # Schedules, their fires (one row per schedule, scheduled time and profile), and which
    # schedule, fire and attempt made each run.
    """
    CREATE TABLE schedules (
        name TEXT PRIMARY KEY,
        task_yaml TEXT NOT NULL,
        task_source TEXT NOT NULL,
        task_name TEXT NOT NULL,
        origin TEXT,
        profiles TEXT NOT NULL,
        vars TEXT NOT NULL,
        timing TEXT NOT NULL,
        policy TEXT NOT NULL,
        owner TEXT NOT NULL,
        paused INTEGER NOT NULL DEFAULT 0,
        paused_reason TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        cursor TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE fires (
        id TEXT PRIMARY KEY,
        schedule TEXT NOT NULL,
        scheduled_at TEXT NOT NULL,
        profile TEXT NOT NULL,
        kind TEXT NOT NULL,
        origin TEXT,
        due_at TEXT NOT NULL,
        status TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 0,
        interruptions INTEGER NOT NULL DEFAULT 0,
        run_id TEXT,
        claimed_by TEXT,
        claimed_at TEXT,
        finished_at TEXT,
        note TEXT,
        UNIQUE (schedule, scheduled_at, profile)
    );
    CREATE INDEX fires_due ON fires (status, due_at);
    CREATE INDEX fires_schedule ON fires (schedule, scheduled_at);
    ALTER TABLE runs ADD COLUMN schedule TEXT;
    ALTER TABLE runs ADD COLUMN fire_id TEXT;
    ALTER TABLE runs ADD COLUMN attempt INTEGER;
    CREATE INDEX runs_fire ON runs (fire_id);
    """,
    # The console: what an approval request will send and to which element; browser sessions
    # made from API tokens; indexes for the runs list's filters and the usage page.
    """
    ALTER TABLE approvals ADD COLUMN fields TEXT;
    ALTER TABLE approvals ADD COLUMN target TEXT;
    CREATE TABLE console_sessions (
        id_hash TEXT PRIMARY KEY,
        token_id TEXT NOT NULL,
        csrf TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    CREATE INDEX console_sessions_token ON console_sessions (token_id);
    CREATE INDEX runs_task ON runs (task_name, started_at);
    CREATE INDEX runs_profile ON runs (profile, started_at);
    CREATE INDEX runs_status ON runs (status, started_at);
    CREATE INDEX runs_schedule ON runs (schedule, started_at);
    CREATE INDEX model_calls_at ON model_calls (at);
    """,
    # Leases across hosts: a fencing token that grows on every take-over, and the holder's TTL
    # (who may take over, and when a run counts as gone, go by the holder's own TTL).
    """
    ALTER TABLE leases ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE leases ADD COLUMN ttl_s REAL NOT NULL DEFAULT 60;
    """,
    # The host each run's process is on (its pid means something there only).
    """
    ALTER TABLE runs ADD COLUMN host TEXT;
    """,
    # Submissions of schedule fires, by idempotency key: a retry of the fire does not repeat
    # one that reached the server (runtime.run.effects).
    """
    CREATE TABLE effects (
        fire_id TEXT NOT NULL,
        key TEXT NOT NULL,
        n INTEGER NOT NULL,
        run_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        step INTEGER NOT NULL,
        target TEXT,
        state TEXT NOT NULL,
        started_at TEXT NOT NULL,
        sent_at TEXT,
        PRIMARY KEY (fire_id, key, n)
    );
    """,
    # Where each field of a goal's result came from (runtime.agent.evidence).
    """
    ALTER TABLE runs ADD COLUMN evidence TEXT;
    """,
    # Long-term memory: notes the planner reads, per task and per profile (runtime.memory).
    """
    CREATE TABLE notes (
        id TEXT PRIMARY KEY,
        scope TEXT NOT NULL,
        name TEXT NOT NULL,
        text TEXT NOT NULL,
        source TEXT NOT NULL,
        author TEXT,
        run_id TEXT,
        step INTEGER,
        created_at TEXT NOT NULL
    );
    CREATE INDEX notes_scope ON notes (scope, name, created_at);
    """,
    # Retention: the rules set per task (as its last run had them) and per profile, and which
    # kinds of each run's data were deleted when (JSON: kind -> time).
    """
    CREATE TABLE retention_rules (
        scope TEXT NOT NULL,
        name TEXT NOT NULL,
        rules TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (scope, name)
    );
    ALTER TABLE runs ADD COLUMN expired TEXT;
    CREATE INDEX runs_finished ON runs (finished_at);
    """,
    # Alerts and their runbook (runtime.alerts); the model calls' provider errors by time.
    """
    CREATE TABLE alerts (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        task TEXT NOT NULL,
        profile TEXT NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        detail TEXT,
        then_do TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at TEXT NOT NULL,
        resolved_by TEXT,
        resolved_at TEXT,
        approval_id TEXT
    );
    CREATE INDEX alerts_state ON alerts (state, then_do, task);
    CREATE INDEX alerts_at ON alerts (created_at);
    CREATE INDEX model_calls_provider ON model_calls (provider, outcome, at);
    """,
    # The model config each goal run used (a canary's live comparison reads it).
    """
    ALTER TABLE runs ADD COLUMN models_config TEXT;
    """,
]


async def migrate(db: Database, migrations: Sequence[str] = MIGRATIONS) -> None:
    """Apply the migrations ``db`` has not seen yet, each with its version bump in one commit."""
    async with db.migrating():
        version = await db.schema_version()
        if version > len(migrations):
            raise StoreError(
                f"{db.where}: schema version {version} is newer than this corral "
                f"({len(migrations)}); upgrade corral"
            )
        for number, script in enumerate(migrations[version:], start=version + 1):
            await db.apply_migration(number, script)


# --- PostgreSQL ------------------------------------------------------------------------------

_TYPES = [
    # SQLite's REAL is 8 bytes; PostgreSQL's REAL is 4 (lease heartbeats would lose seconds).
    (
        re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b"),
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    ),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    # SQLite compares text byte by byte; so does PostgreSQL's "C" collation, whatever the
    # database's locale (stored times are ISO strings compared as text).
    (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'),
]
_REFUSE_TRIGGER = re.compile(
    r"CREATE TRIGGER (\w+) BEFORE (UPDATE|DELETE) ON (\w+)\s+"
    r"BEGIN SELECT RAISE\(ABORT, '([^']*)'\); END;"
)
_REFUSE_FUNCTION = """
CREATE OR REPLACE FUNCTION corral_refuse() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN RAISE EXCEPTION '%', TG_ARGV[0]; END
$fn$;
"""


def postgres_ddl(script: str) -> str:
    """A migration written for SQLite, as PostgreSQL runs it: its column types, and its
    refusing triggers as a trigger function. Anything else SQLite-only is refused here rather
    than half-applied there."""
    out = script
    for pattern, replacement in _TYPES:
        out = pattern.sub(replacement, out)
    if _REFUSE_TRIGGER.search(out):
        out = _REFUSE_FUNCTION + _REFUSE_TRIGGER.sub(
            r"CREATE TRIGGER \1 BEFORE \2 ON \3 FOR EACH ROW EXECUTE FUNCTION corral_refuse('\4');",
            out,
        )
    for sqlite_only in ("PRAGMA", "RAISE(", "AUTOINCREMENT", "WITHOUT ROWID", "INSERT OR"):
        if sqlite_only in out:
            raise StoreError(
                f"migration has SQLite-only SQL ({sqlite_only}): {script.strip()[:80]}"
            )
    return out
