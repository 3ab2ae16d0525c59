"""Server-side state: sessions, payments, uploads and account flags, kept in SQLite."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Stage = Literal["pending", "active"]

# A half-finished two-factor login should not linger; full sessions last a week so a
# saved browser profile still works when the demo is restarted later.
PENDING_TTL = 10 * 60
ACTIVE_TTL = 7 * 24 * 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    sid_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    stage TEXT NOT NULL,
    next_path TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS payments (
    username TEXT NOT NULL,
    number TEXT NOT NULL,
    paid_at REAL NOT NULL,
    PRIMARY KEY (username, number)
);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    uploaded REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS profiles (
    username TEXT PRIMARY KEY,
    display_name TEXT,
    deleted INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True)
class Session:
    """A session row: who it belongs to and whether two-factor is still pending."""

    username: str
    stage: Stage
    next_path: str


@dataclass(frozen=True)
class Document:
    """An uploaded file's metadata (the content itself is discarded)."""

    name: str
    size: int


def _hash_sid(sid: str) -> str:
    # Only a digest is stored, so a leaked database file does not leak live cookies.
    return hashlib.sha256(sid.encode("ascii", "replace")).hexdigest()


class Store:
    """SQLite-backed state; a file path is shared across processes, None stays in memory."""

    def __init__(self, db_path: str | Path | None = None) -> None:
        self._path = None if db_path is None else Path(db_path)
        self._lock = threading.Lock()
        self._shared: sqlite3.Connection | None = None
        if self._path is None:
            # One connection is the whole in-memory database; the lock serialises it.
            self._shared = sqlite3.connect(":memory:", check_same_thread=False)
        else:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._tx() as conn:
            conn.executescript(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """Yield a connection inside a transaction that commits on success."""
        if self._shared is not None:
            with self._lock, self._shared:
                yield self._shared
            return
        assert self._path is not None
        conn = sqlite3.connect(self._path, timeout=10)
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def close(self) -> None:
        """Release the in-memory database, if any."""
        if self._shared is not None:
            self._shared.close()
            self._shared = None

    # Sessions

    def create_session(self, username: str, stage: Stage, next_path: str = "/dashboard") -> str:
        """Create a session and return the raw id for the cookie."""
        sid = secrets.token_urlsafe(32)
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                (_hash_sid(sid), username, stage, next_path, time.time()),
            )
        return sid

    def get_session(self, sid: str) -> Session | None:
        """Return the live session for a cookie value, dropping it if it has expired."""
        key = _hash_sid(sid)
        with self._tx() as conn:
            row = conn.execute(
                "SELECT username, stage, next_path, created FROM sessions WHERE sid_hash = ?",
                (key,),
            ).fetchone()
            if row is None:
                return None
            username, stage, next_path, created = row
            ttl = PENDING_TTL if stage == "pending" else ACTIVE_TTL
            if time.time() - created > ttl:
                conn.execute("DELETE FROM sessions WHERE sid_hash = ?", (key,))
                return None
        return Session(username, "pending" if stage == "pending" else "active", next_path)

    def delete_session(self, sid: str) -> None:
        """Forget one session."""
        with self._tx() as conn:
            conn.execute("DELETE FROM sessions WHERE sid_hash = ?", (_hash_sid(sid),))

    # Payments

    def record_payment(self, username: str, number: str) -> bool:
        """Mark an invoice paid; False if it was already recorded as paid."""
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO payments VALUES (?, ?, ?)", (username, number, time.time())
            )
            return cur.rowcount == 1

    def paid_numbers(self, username: str) -> frozenset[str]:
        """Invoice numbers this user has paid through the portal."""
        with self._tx() as conn:
            rows = conn.execute("SELECT number FROM payments WHERE username = ?", (username,))
            return frozenset(number for (number,) in rows)

    # Documents

    def add_document(self, username: str, name: str, size: int) -> None:
        """Record an upload's name and size."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO documents (username, name, size, uploaded) VALUES (?, ?, ?, ?)",
                (username, name, size, time.time()),
            )

    def documents(self, username: str) -> list[Document]:
        """Uploads of this user, oldest first."""
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT name, size FROM documents WHERE username = ? ORDER BY id", (username,)
            )
            return [Document(name, size) for name, size in rows]

    # Profile

    def display_name(self, username: str) -> str | None:
        """The saved display name, if the user set one."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT display_name FROM profiles WHERE username = ?", (username,)
            ).fetchone()
        return None if row is None else row[0]

    def set_display_name(self, username: str, name: str) -> None:
        """Save the display name."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO profiles (username, display_name) VALUES (?, ?) "
                "ON CONFLICT(username) DO UPDATE SET display_name = excluded.display_name",
                (username, name),
            )

    def mark_deleted(self, username: str) -> None:
        """Flag the account as deleted and end all its sessions."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO profiles (username, deleted) VALUES (?, 1) "
                "ON CONFLICT(username) DO UPDATE SET deleted = 1",
                (username,),
            )
            conn.execute("DELETE FROM sessions WHERE username = ?", (username,))

    def is_deleted(self, username: str) -> bool:
        """Whether the account has been deleted."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT deleted FROM profiles WHERE username = ?", (username,)
            ).fetchone()
        return row is not None and bool(row[0])
