"""Who may do what: users with roles, API tokens, profile grants and the append-only audit log.

Roles are ordered by level: ``user`` (1) runs tasks on the profiles granted to it, ``admin`` (10)
also approves gated actions and manages profiles, secrets and grants, ``super_admin`` (100) also
changes global policy, users, roles and anyone's tokens. Until the first user exists the CLI acts
as :data:`LOCAL_ACTOR` (single-user mode); after that every command needs ``CORRAL_TOKEN``.

Every decision goes to ``audit_log`` in the same transaction as the change it records. Rows form a
hash chain (each row's hash covers the previous row's hash), and SQLite triggers refuse UPDATE and
DELETE, so an edit made behind corral's back is found by :meth:`Auth.verify_audit`.

Errors (on top of :mod:`profiles.errors`)::

    UserError (exit 2)
    ├── AuthError               no, unknown, expired or revoked token; disabled user
    └── PermissionDeniedError   role too low, or profile not granted
        └── TokenOutlivesError  a token may not create a token that expires after it does
    RunError (exit 1)
    └── AuditTamperedError      the audit log's hash chain is broken
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import aiosqlite
from pydantic import BaseModel, ConfigDict, Field

from profiles import ProfileNotFoundError, RunError, UserError
from runtime.store import Store

__all__ = [
    "DEFAULT_TOKEN_TTL_S",
    "LOCAL_ACTOR",
    "MAX_TOKEN_TTL_S",
    "ROLES",
    "TOKEN_PREFIX",
    "Actor",
    "AuditEntry",
    "AuditTamperedError",
    "Auth",
    "AuthError",
    "PermissionDeniedError",
    "Role",
    "TokenOutlivesError",
    "TokenRecord",
    "UserRecord",
    "write_audit",
]

ROLES: dict[str, int] = {"user": 1, "admin": 10, "super_admin": 100}
Role = Literal["user", "admin", "super_admin"]

TOKEN_PREFIX = "crl_"
MAX_TOKEN_TTL_S = 5 * 366 * 86_400
DEFAULT_TOKEN_TTL_S = 30 * 86_400
_GENESIS = "0" * 64
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user (by token) or the local single-user actor."""

    name: str
    role: Role
    # The token the actor authenticated with, if any: a token may not mint one that outlives it.
    # Not part of equality: the same user with another token is the same actor.
    token_id: str | None = field(default=None, compare=False)
    token_expires_at: datetime | None = field(default=None, compare=False)

    @property
    def level(self) -> int:
        """The role's level: higher may do everything lower may."""
        return ROLES[self.role]


LOCAL_ACTOR = Actor("local", "super_admin")
"""Who the CLI is while no users exist (single-user mode)."""


class AuthError(UserError):
    """No token, or one that is unknown, expired or revoked, or whose user is disabled."""


class PermissionDeniedError(UserError):
    """The actor's role is too low, or the profile is not granted to them."""


class TokenOutlivesError(PermissionDeniedError):
    """A token-authenticated actor asked for a token that would expire after its own."""


class AuditTamperedError(RunError):
    """The audit log's hash chain does not hold: a row was edited, removed or reordered."""


class UserRecord(BaseModel):
    """A user as listed (no secrets in it)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None = None
    profiles: list[str] = Field(default_factory=list, description="profiles granted to the user")


class TokenRecord(BaseModel):
    """An API token as listed: its public id, never its value or hash."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="short public id, shown in lists and the audit log")
    user: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    def status(self, now: datetime) -> Literal["active", "expired", "revoked"]:
        """Whether the token can be used at ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= now else "active"


class AuditEntry(BaseModel):
    """One row of the audit log."""

    model_config = ConfigDict(extra="forbid")
    id: int
    at: datetime
    actor: str
    role: str
    action: str = Field(description="what was done, e.g. user.add, grant.add, policy.set")
    subject: str = Field(description="what it was done to, e.g. a user or approval id")
    detail: dict[str, Any] | None = None
    hash: str


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _stamp(value: datetime) -> str:
    """A time for messages: UTC, to the second."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _hash_token(token: str) -> str:
    # A 256-bit random token cannot be guessed or brute-forced from its hash, so a fast hash is
    # enough here (a slow KDF only matters for low-entropy secrets such as passwords).
    return hashlib.sha256(token.encode()).hexdigest()


def _dump_detail(detail: dict[str, Any] | None) -> str | None:
    if detail is None:
        return None
    return json.dumps(
        detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def _chain_hash(
    prev_hash: str, at: str, actor: str, role: str, action: str, subject: str, detail: str | None
) -> str:
    # The detail is hashed as parsed JSON, re-serialized canonically, so the stored text's
    # formatting is not what is protected but its content is.
    body = json.dumps(
        [at, actor, role, action, subject, json.loads(detail) if detail is not None else None],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


async def _row(
    db: aiosqlite.Connection, sql: str, args: tuple[Any, ...] = ()
) -> aiosqlite.Row | None:
    async with db.execute(sql, args) as cur:
        return await cur.fetchone()


async def write_audit(
    db: aiosqlite.Connection,
    actor: Actor,
    action: str,
    subject: str,
    detail: dict[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> None:
    """Append one audit row inside the caller's open transaction (so it commits with the change).

    ``hash = sha256(prev_hash + canonical JSON of [at, actor, role, action, subject, detail])``;
    the first row's ``prev_hash`` is 64 zeros.
    """
    last = await _row(db, "SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
    prev_hash = str(last["hash"]) if last else _GENESIS
    when = _iso(at or _utcnow())
    text = _dump_detail(detail)
    digest = _chain_hash(prev_hash, when, actor.name, actor.role, action, subject, text)
    await db.execute(
        "INSERT INTO audit_log (at, actor, role, action, subject, detail, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (when, actor.name, actor.role, action, subject, text, prev_hash, digest),
    )


def _check_role(role: str) -> Role:
    if role not in ROLES:
        raise UserError(f"unknown role '{role}': expected one of {', '.join(ROLES)}")
    return cast(Role, role)


class Auth:
    """Users, roles, tokens, grants and the audit log, kept in the store."""

    def __init__(self, store: Store, now: Callable[[], datetime] = _utcnow) -> None:
        self._store = store
        self._now = now

    # --- who is acting ----------------------------------------------------------------------

    async def actor(self, token: str | None) -> Actor:
        """The actor a token stands for; without one, the local actor while no users exist."""
        if token is None:
            if await self._store.fetch_one("SELECT 1 FROM users LIMIT 1") is None:
                return LOCAL_ACTOR
            raise AuthError(
                "this corral has users: set CORRAL_TOKEN to your API token "
                "(a super_admin creates one with: corral tokens create USER)"
            )
        # Never put the token itself in a message: error lines end up in logs and CI output.
        if not token.startswith(TOKEN_PREFIX):
            raise AuthError(
                f"CORRAL_TOKEN is not a corral API token (they start with {TOKEN_PREFIX})"
            )
        now = self._now()
        async with self._store.tx() as db:
            # Looked up by hash: the comparison is on a digest, so its timing reveals nothing
            # useful about the token.
            row = await _row(
                db,
                "SELECT t.id, t.user_name, t.expires_at, t.revoked_at, u.role, u.disabled_at "
                "FROM tokens t JOIN users u ON u.name = t.user_name WHERE t.hash = ?",
                (_hash_token(token),),
            )
            if row is None:
                raise AuthError("CORRAL_TOKEN is not a valid API token in this CORRAL_HOME")
            what = f"API token {row['id']} of {row['user_name']}"
            if row["disabled_at"]:
                raise AuthError(f"{what}: user {row['user_name']} is disabled")
            if row["revoked_at"]:
                raise AuthError(f"{what} was revoked; ask a super_admin for a new one")
            if datetime.fromisoformat(row["expires_at"]) <= now:
                raise AuthError(
                    f"{what} expired at {row['expires_at'][:19]}Z; ask a super_admin for a new one"
                )
            await db.execute(
                "UPDATE tokens SET last_used_at = ? WHERE id = ?", (_iso(now), row["id"])
            )
        return Actor(
            row["user_name"],
            _check_role(row["role"]),
            token_id=row["id"],
            token_expires_at=datetime.fromisoformat(row["expires_at"]),
        )

    def require(self, actor: Actor, role: Role, doing: str) -> None:
        """Raise PermissionDeniedError unless ``actor`` has ``role`` or higher."""
        if actor.level < ROLES[role]:
            higher = "" if role == "super_admin" else " or higher"
            raise PermissionDeniedError(
                f"{actor.name} ({actor.role}) may not {doing}: that needs the {role} role{higher}"
            )

    async def require_profile(self, actor: Actor, profile: str, doing: str) -> None:
        """Users need a grant on ``profile``; admins and above may use every profile."""
        if actor.level >= ROLES["admin"]:
            return
        granted = await self._store.fetch_one(
            "SELECT 1 FROM grants WHERE user_name = ? AND profile = ?", (actor.name, profile)
        )
        if granted is None:
            raise PermissionDeniedError(
                f"{actor.name} ({actor.role}) may not {doing}: profile '{profile}' is not "
                f"granted to {actor.name} (an admin can: corral users grant {actor.name} {profile})"
            )

    # --- audit log --------------------------------------------------------------------------

    async def audit(
        self, actor: Actor, action: str, subject: str, detail: dict[str, Any] | None = None
    ) -> None:
        """Append one audit row in its own transaction."""
        async with self._store.tx() as db:
            await write_audit(db, actor, action, subject, detail, at=self._now())

    async def list_audit(self, limit: int = 100, action: str | None = None) -> list[AuditEntry]:
        """Audit rows, newest first; ``action`` matches exactly or as a prefix (``token``)."""
        sql = "SELECT * FROM audit_log"
        args: tuple[Any, ...] = ()
        if action:
            family = action.replace("%", "\\%").replace("_", "\\_") + ".%"
            sql += " WHERE action = ? OR action LIKE ? ESCAPE '\\'"
            args = (action, family)
        rows = await self._store.fetch_all(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))
        return [
            AuditEntry(
                id=r["id"],
                at=datetime.fromisoformat(r["at"]),
                actor=r["actor"],
                role=r["role"],
                action=r["action"],
                subject=r["subject"],
                detail=json.loads(r["detail"]) if r["detail"] is not None else None,
                hash=r["hash"],
            )
            for r in rows
        ]

    async def verify_audit(self) -> int:
        """Check the whole hash chain; returns the rows checked, raises at the first bad one."""
        rows = await self._store.fetch_all("SELECT * FROM audit_log ORDER BY id")
        prev_hash, prev_id = _GENESIS, None
        for r in rows:
            if r["prev_hash"] != prev_hash:
                after = f"row {prev_id}" if prev_id is not None else "the start of the log"
                raise AuditTamperedError(
                    f"audit log tampered: row {r['id']} does not follow {after} "
                    "(a row was removed, inserted or reordered)"
                )
            digest = _chain_hash(
                r["prev_hash"],
                r["at"],
                r["actor"],
                r["role"],
                r["action"],
                r["subject"],
                r["detail"],
            )
            if digest != r["hash"]:
                raise AuditTamperedError(
                    f"audit log tampered: row {r['id']} ({r['action']} {r['subject']}) was "
                    "changed after it was written (its hash does not match its content)"
                )
            prev_hash, prev_id = r["hash"], r["id"]
        return len(rows)

    # --- users ------------------------------------------------------------------------------

    async def add_user(self, actor: Actor, name: str, role: Role) -> None:
        """Create a user (super_admin); the first user must be a super_admin."""
        self.require(actor, "super_admin", "add users")
        role = _check_role(role)
        if not _NAME_RE.fullmatch(name):
            raise UserError(
                f"user name '{name}': expected 1-64 letters, digits or '_.@-', "
                "starting with a letter or digit"
            )
        if name == LOCAL_ACTOR.name:
            raise UserError(f"user name '{name}' is reserved for single-user mode")
        async with self._store.tx() as db:
            if await _row(db, "SELECT 1 FROM users WHERE name = ?", (name,)):
                raise UserError(f"user {name} already exists (see: corral users list)")
            if role != "super_admin" and not await _row(db, "SELECT 1 FROM users LIMIT 1"):
                raise UserError(
                    "the first user must be a super_admin, or nobody could manage users: "
                    f"corral users add {name} --role super_admin"
                )
            now = self._now()
            await db.execute(
                "INSERT INTO users (name, role, created_at) VALUES (?, ?, ?)",
                (name, role, _iso(now)),
            )
            await write_audit(db, actor, "user.add", name, {"role": role}, at=now)

    async def set_role(self, actor: Actor, name: str, role: Role) -> None:
        """Change a user's role (super_admin); the last super_admin cannot be demoted."""
        self.require(actor, "super_admin", "change roles")
        role = _check_role(role)
        async with self._store.tx() as db:
            user = await self._user_row(db, name)
            old = user["role"]
            if old == "super_admin" and role != "super_admin":
                await self._keep_a_super_admin(db, name, "demote")
            await db.execute("UPDATE users SET role = ? WHERE name = ?", (role, name))
            await write_audit(
                db, actor, "user.role", name, {"from": old, "to": role}, at=self._now()
            )

    async def disable_user(self, actor: Actor, name: str) -> None:
        """Disable a user (super_admin) and revoke their tokens; grants are kept."""
        self.require(actor, "super_admin", "disable users")
        async with self._store.tx() as db:
            user = await self._user_row(db, name)
            if user["disabled_at"]:
                raise UserError(f"user {name} is already disabled")
            if user["role"] == "super_admin":
                await self._keep_a_super_admin(db, name, "disable")
            now = self._now()
            await db.execute("UPDATE users SET disabled_at = ? WHERE name = ?", (_iso(now), name))
            cur = await db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE user_name = ? AND revoked_at IS NULL",
                (_iso(now), name),
            )
            await write_audit(
                db, actor, "user.disable", name, {"tokens_revoked": cur.rowcount}, at=now
            )

    async def list_users(self) -> list[UserRecord]:
        """Every user with the profiles granted to them, by name."""
        grants: dict[str, list[str]] = {}
        for g in await self._store.fetch_all("SELECT * FROM grants ORDER BY profile"):
            grants.setdefault(g["user_name"], []).append(g["profile"])
        return [
            UserRecord(
                name=r["name"],
                role=_check_role(r["role"]),
                created_at=datetime.fromisoformat(r["created_at"]),
                disabled_at=_dt(r["disabled_at"]),
                profiles=grants.get(r["name"], []),
            )
            for r in await self._store.fetch_all("SELECT * FROM users ORDER BY name")
        ]

    @staticmethod
    async def _user_row(db: aiosqlite.Connection, name: str) -> aiosqlite.Row:
        row = await _row(db, "SELECT * FROM users WHERE name = ?", (name,))
        if row is None:
            raise UserError(f"no user '{name}' (see: corral users list)")
        return row

    @staticmethod
    async def _keep_a_super_admin(db: aiosqlite.Connection, name: str, verb: str) -> None:
        others = await _row(
            db,
            "SELECT COUNT(*) AS n FROM users WHERE role = 'super_admin' AND disabled_at IS NULL "
            "AND name != ?",
            (name,),
        )
        if others is None or others["n"] == 0:
            raise UserError(
                f"cannot {verb} {name}: they are the last super_admin, and without one nobody "
                "could manage users (make another user super_admin first)"
            )

    # --- grants -----------------------------------------------------------------------------

    async def grant(self, actor: Actor, user: str, profile: str) -> None:
        """Let ``user`` run tasks on ``profile`` (admin+)."""
        self.require(actor, "admin", "grant profiles")
        async with self._store.tx() as db:
            await self._user_row(db, user)
            if not await _row(db, "SELECT 1 FROM profiles WHERE name = ?", (profile,)):
                raise ProfileNotFoundError(f"no profile '{profile}' (see: corral profiles list)")
            now = self._now()
            cur = await db.execute(
                "INSERT OR IGNORE INTO grants VALUES (?, ?, ?, ?)",
                (user, profile, _iso(now), actor.name),
            )
            if cur.rowcount != 1:
                raise UserError(f"profile '{profile}' is already granted to {user}")
            await write_audit(db, actor, "grant.add", user, {"profile": profile}, at=now)

    async def revoke_grant(self, actor: Actor, user: str, profile: str) -> None:
        """Take ``profile`` away from ``user`` (admin+)."""
        self.require(actor, "admin", "revoke profile grants")
        async with self._store.tx() as db:
            await self._user_row(db, user)
            cur = await db.execute(
                "DELETE FROM grants WHERE user_name = ? AND profile = ?", (user, profile)
            )
            if cur.rowcount != 1:
                raise UserError(f"profile '{profile}' is not granted to {user}")
            await write_audit(db, actor, "grant.revoke", user, {"profile": profile}, at=self._now())

    # --- tokens -----------------------------------------------------------------------------

    def token_expiry(
        self, actor: Actor, user: str, ttl_s: float | None = None, now: datetime | None = None
    ) -> datetime:
        """When a token for ``user`` made by ``actor`` at ``now`` would expire.

        ``ttl_s=None`` is the default lifetime, shortened to the actor's own token's expiry; an
        explicit ``ttl_s`` out of range, or reaching past the actor's token, is refused."""
        now = self._now() if now is None else now
        limit = actor.token_expires_at
        if ttl_s is None:
            expires = now + timedelta(seconds=DEFAULT_TOKEN_TTL_S)
            return expires if limit is None else min(expires, limit)
        if not 0 < ttl_s <= MAX_TOKEN_TTL_S:
            raise UserError(
                f"token lifetime {ttl_s:g}s: expected more than 0 and at most "
                f"{MAX_TOKEN_TTL_S // 86_400} days"
            )
        expires = now + timedelta(seconds=ttl_s)
        # Otherwise a stolen short-lived token could be turned into a long-lived one, and
        # expiring a token would no longer end what it can do. Every token has an expiry, so
        # "a token without one" cannot be asked for at all.
        if limit is not None and expires > limit:
            left = max(0, int((limit - now).total_seconds()))
            raise TokenOutlivesError(
                f"a token may not outlive the token that creates it: the new token for {user} "
                f"would expire at {_stamp(expires)}, after API token {actor.token_id} of "
                f"{actor.name} used for this command, which expires at {_stamp(limit)} "
                f"(choose a lifetime of at most {left}s, or act with a longer-lived token)"
            )
        return expires

    async def create_token(
        self, actor: Actor, user: str, ttl_s: float | None = None
    ) -> tuple[TokenRecord, str]:
        """A new token for ``user`` (super_admin, or the user themselves), expiring no later than
        the actor's own token (see :meth:`token_expiry`); the value is returned here once and
        never stored."""
        if actor.name != user:
            self.require(actor, "super_admin", f"create tokens for {user}")
        now = self._now()
        expires = self.token_expiry(actor, user, ttl_s, now)
        plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self._store.tx() as db:
            row = await self._user_row(db, user)
            if row["disabled_at"]:
                raise UserError(f"user {user} is disabled: no new tokens")
            token_id = secrets.token_hex(4)
            while await _row(db, "SELECT 1 FROM tokens WHERE id = ?", (token_id,)):
                token_id = secrets.token_hex(4)
            record = TokenRecord(id=token_id, user=user, created_at=now, expires_at=expires)
            await db.execute(
                "INSERT INTO tokens (id, user_name, hash, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (token_id, user, _hash_token(plain), _iso(now), _iso(record.expires_at)),
            )
            await write_audit(
                db,
                actor,
                "token.create",
                user,
                {"token_id": token_id, "expires_at": _iso(record.expires_at)},
                at=now,
            )
        return record, plain

    async def revoke_token(self, actor: Actor, token_id: str) -> None:
        """Revoke a token (super_admin, or the token's owner)."""
        async with self._store.tx() as db:
            row = await _row(db, "SELECT * FROM tokens WHERE id = ?", (token_id,))
            if row is None:
                raise UserError(f"no token '{token_id}' (see: corral tokens list)")
            if row["user_name"] != actor.name:
                self.require(actor, "super_admin", f"revoke tokens of {row['user_name']}")
            if row["revoked_at"]:
                raise UserError(f"token {token_id} is already revoked")
            now = self._now()
            await db.execute("UPDATE tokens SET revoked_at = ? WHERE id = ?", (_iso(now), token_id))
            await write_audit(
                db, actor, "token.revoke", row["user_name"], {"token_id": token_id}, at=now
            )

    async def list_tokens(self, user: str | None = None) -> list[TokenRecord]:
        """Tokens (ids and times, never values), newest first; only ``user``'s if given."""
        if user is not None:
            if await self._store.fetch_one("SELECT 1 FROM users WHERE name = ?", (user,)) is None:
                raise UserError(f"no user '{user}' (see: corral users list)")
            rows = await self._store.fetch_all(
                "SELECT * FROM tokens WHERE user_name = ? ORDER BY created_at DESC", (user,)
            )
        else:
            rows = await self._store.fetch_all("SELECT * FROM tokens ORDER BY created_at DESC")
        return [
            TokenRecord(
                id=r["id"],
                user=r["user_name"],
                created_at=datetime.fromisoformat(r["created_at"]),
                expires_at=datetime.fromisoformat(r["expires_at"]),
                revoked_at=_dt(r["revoked_at"]),
                last_used_at=_dt(r["last_used_at"]),
            )
            for r in rows
        ]

    def now(self) -> datetime:
        """The auth clock's current time (what expiry is judged against)."""
        return self._now()
