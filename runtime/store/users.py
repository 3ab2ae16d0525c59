"""Users, their API tokens and profile grants: the SQL (who may do what is :mod:`runtime.auth`).

Every write opens ``store.tx()``, so called inside a service's transaction it joins it and
commits (or rolls back) with the audit row of the change.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import aiosqlite

from runtime.auth import TokenRecord, UserRecord, UserRole, check_role

if TYPE_CHECKING:
    from runtime.store import Store

__all__ = ["SessionRow", "TokenRow", "UserRepository"]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class TokenRow:
    """A token looked up by its hash, with its user's role and state."""

    def __init__(self, row: aiosqlite.Row) -> None:
        self.id: str = row["id"]
        self.user: str = row["user_name"]
        self.expires_at = datetime.fromisoformat(row["expires_at"])
        self.expires_text: str = row["expires_at"]
        self.revoked: bool = bool(row["revoked_at"])
        self.role: str = row["role"]
        self.user_disabled: bool = bool(row["disabled_at"])


class SessionRow(TokenRow):
    """A console session looked up by its hash, with its token and user as for a token."""

    def __init__(self, row: aiosqlite.Row) -> None:
        super().__init__(row)
        self.csrf: str = row["csrf"]
        self.session_expires_at = datetime.fromisoformat(row["session_expires_at"])


def _token(row: aiosqlite.Row) -> TokenRecord:
    return TokenRecord(
        id=row["id"],
        user=row["user_name"],
        created_at=datetime.fromisoformat(row["created_at"]),
        expires_at=datetime.fromisoformat(row["expires_at"]),
        revoked_at=_dt(row["revoked_at"]),
        last_used_at=_dt(row["last_used_at"]),
    )


class UserRepository:
    """The ``users``, ``tokens`` and ``grants`` tables."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # --- users --------------------------------------------------------------------------------

    async def any_user(self) -> bool:
        """Whether at least one user exists (else the CLI is in single-user mode)."""
        return await self._store.fetch_one("SELECT 1 FROM users LIMIT 1") is not None

    async def get_user(self, name: str) -> UserRecord | None:
        """A user without their grants, or None."""
        row = await self._store.fetch_one("SELECT * FROM users WHERE name = ?", (name,))
        if row is None:
            return None
        return UserRecord(
            name=row["name"],
            role=check_role(row["role"]),
            created_at=datetime.fromisoformat(row["created_at"]),
            disabled_at=_dt(row["disabled_at"]),
        )

    async def insert_user(self, name: str, role: UserRole, at: datetime) -> None:
        """Add a user."""
        async with self._store.tx() as db:
            await db.execute(
                "INSERT INTO users (name, role, created_at) VALUES (:name, :role, :at)",
                {"name": name, "role": role, "at": _iso(at)},
            )

    async def set_role(self, name: str, role: UserRole) -> None:
        """Change a user's role."""
        async with self._store.tx() as db:
            await db.execute(
                "UPDATE users SET role = :role WHERE name = :name", {"role": role, "name": name}
            )

    async def disable(self, name: str, at: datetime) -> int:
        """Disable a user and revoke their live tokens; returns the tokens revoked."""
        async with self._store.tx() as db:
            await db.execute(
                "UPDATE users SET disabled_at = :at WHERE name = :name",
                {"at": _iso(at), "name": name},
            )
            cur = await db.execute(
                "UPDATE tokens SET revoked_at = :at WHERE user_name = :name AND revoked_at IS NULL",
                {"at": _iso(at), "name": name},
            )
            return cur.rowcount

    async def other_super_admins(self, name: str) -> int:
        """How many enabled super_admins there are besides ``name``."""
        row = await self._store.fetch_one(
            "SELECT COUNT(*) AS n FROM users WHERE role = 'super_admin' AND disabled_at IS NULL "
            "AND name != ?",
            (name,),
        )
        return int(row["n"]) if row is not None else 0

    async def list_users(self) -> list[UserRecord]:
        """Every user with the profiles granted to them, by name."""
        grants: dict[str, list[str]] = {}
        for g in await self._store.fetch_all("SELECT * FROM grants ORDER BY profile"):
            grants.setdefault(g["user_name"], []).append(g["profile"])
        return [
            UserRecord(
                name=r["name"],
                role=check_role(r["role"]),
                created_at=datetime.fromisoformat(r["created_at"]),
                disabled_at=_dt(r["disabled_at"]),
                profiles=grants.get(r["name"], []),
            )
            for r in await self._store.fetch_all("SELECT * FROM users ORDER BY name")
        ]

    # --- grants -------------------------------------------------------------------------------

    async def has_grant(self, user: str, profile: str) -> bool:
        """Whether ``profile`` is granted to ``user``."""
        row = await self._store.fetch_one(
            "SELECT 1 FROM grants WHERE user_name = ? AND profile = ?", (user, profile)
        )
        return row is not None

    async def granted(self, user: str) -> list[str]:
        """The profiles granted to ``user``, by name."""
        rows = await self._store.fetch_all(
            "SELECT profile FROM grants WHERE user_name = ? ORDER BY profile", (user,)
        )
        return [r["profile"] for r in rows]

    async def profile_exists(self, profile: str) -> bool:
        """Whether a profile of that name exists (grants name existing profiles only)."""
        return (
            await self._store.fetch_one("SELECT 1 FROM profiles WHERE name = ?", (profile,))
            is not None
        )

    async def add_grant(self, user: str, profile: str, at: datetime, by: str) -> bool:
        """Grant ``profile`` to ``user``; False if it already was."""
        async with self._store.tx() as db:
            cur = await db.execute(
                "INSERT INTO grants (user_name, profile, granted_at, granted_by) "
                "VALUES (:user, :profile, :at, :by) ON CONFLICT DO NOTHING",
                {"user": user, "profile": profile, "at": _iso(at), "by": by},
            )
            return cur.rowcount == 1

    async def remove_grant(self, user: str, profile: str) -> bool:
        """Take ``profile`` from ``user``; False if it was not granted."""
        async with self._store.tx() as db:
            cur = await db.execute(
                "DELETE FROM grants WHERE user_name = ? AND profile = ?", (user, profile)
            )
            return cur.rowcount == 1

    # --- tokens -------------------------------------------------------------------------------

    async def token_by_hash(self, digest: str) -> TokenRow | None:
        """The token with this hash and its user's role and state, or None."""
        row = await self._store.fetch_one(
            "SELECT t.id, t.user_name, t.expires_at, t.revoked_at, u.role, u.disabled_at "
            "FROM tokens t JOIN users u ON u.name = t.user_name WHERE t.hash = ?",
            (digest,),
        )
        return TokenRow(row) if row is not None else None

    # --- console sessions (made from a token; they die with it) --------------------------------

    async def insert_session(
        self, digest: str, token_id: str, csrf: str, created_at: datetime, expires_at: datetime
    ) -> None:
        """Store a console session (its hash only, never the cookie's value)."""
        async with self._store.tx() as db:
            await db.execute(
                "INSERT INTO console_sessions (id_hash, token_id, csrf, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (digest, token_id, csrf, _iso(created_at), _iso(expires_at)),
            )

    async def session_by_hash(self, digest: str) -> SessionRow | None:
        """The session with this hash, with its token's and user's state, or None."""
        row = await self._store.fetch_one(
            "SELECT t.id, t.user_name, t.expires_at, t.revoked_at, u.role, u.disabled_at, "
            "s.csrf, s.expires_at AS session_expires_at FROM console_sessions s "
            "JOIN tokens t ON t.id = s.token_id JOIN users u ON u.name = t.user_name "
            "WHERE s.id_hash = ?",
            (digest,),
        )
        return SessionRow(row) if row is not None else None

    async def delete_session(self, digest: str, before: datetime) -> None:
        """End a session, and drop every session that expired before ``before``."""
        async with self._store.tx() as db:
            await db.execute(
                "DELETE FROM console_sessions WHERE id_hash = ? OR expires_at < ?",
                (digest, _iso(before)),
            )

    async def touch_token(self, token_id: str, at: datetime) -> None:
        """Record that a token was used."""
        async with self._store.tx() as db:
            await db.execute(
                "UPDATE tokens SET last_used_at = :at WHERE id = :id",
                {"at": _iso(at), "id": token_id},
            )

    async def get_token(self, token_id: str) -> TokenRecord | None:
        """A token by its public id, or None."""
        row = await self._store.fetch_one("SELECT * FROM tokens WHERE id = ?", (token_id,))
        return _token(row) if row is not None else None

    async def insert_token(self, record: TokenRecord, digest: str) -> None:
        """Store a new token (its hash only, never its value)."""
        async with self._store.tx() as db:
            await db.execute(
                "INSERT INTO tokens (id, user_name, hash, created_at, expires_at) "
                "VALUES (:id, :user, :hash, :created_at, :expires_at)",
                {
                    "id": record.id,
                    "user": record.user,
                    "hash": digest,
                    "created_at": _iso(record.created_at),
                    "expires_at": _iso(record.expires_at),
                },
            )

    async def revoke_token(self, token_id: str, at: datetime) -> None:
        """Mark a token revoked."""
        async with self._store.tx() as db:
            await db.execute(
                "UPDATE tokens SET revoked_at = :at WHERE id = :id",
                {"at": _iso(at), "id": token_id},
            )

    async def list_tokens(self, user: str | None = None) -> list[TokenRecord]:
        """Tokens (ids and times, never values), newest first; only ``user``'s if given."""
        if user is not None:
            rows = await self._store.fetch_all(
                "SELECT * FROM tokens WHERE user_name = ? ORDER BY created_at DESC", (user,)
            )
        else:
            rows = await self._store.fetch_all("SELECT * FROM tokens ORDER BY created_at DESC")
        return [_token(r) for r in rows]
