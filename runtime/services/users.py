"""Users, roles, profile grants and API tokens, and who a token stands for."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from profiles import ProfileNotFoundError, UserError
from runtime.auth import (
    DEFAULT_TOKEN_TTL_S,
    LOCAL_ACTOR,
    MAX_TOKEN_TTL_S,
    ROLES,
    TOKEN_PREFIX,
    Actor,
    AuthError,
    TokenOutlivesError,
    TokenRecord,
    UserRecord,
    UserRole,
    check_role,
)
from runtime.services.base import Service
from runtime.store.users import TokenRow, UserRepository

__all__ = ["SESSION_TTL", "ConsoleSession", "NewUser", "UserService"]

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


def _stamp(value: datetime) -> str:
    """A time for messages: UTC, to the second."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _hash_token(token: str) -> str:
    # A 256-bit random token cannot be guessed or brute-forced from its hash, so a fast hash is
    # enough here (a slow KDF only matters for low-entropy secrets such as passwords).
    return hashlib.sha256(token.encode()).hexdigest()


SESSION_TTL = timedelta(hours=12)
"""How long a console sign-in lasts (never past its token's expiry)."""


class ConsoleSession(NamedTuple):
    """A signed-in browser: the cookie's value, who it acts as, and its CSRF token."""

    value: str
    actor: Actor
    csrf: str
    expires_at: datetime


class NewUser:
    """A user just added, with their first token (its value shown once)."""

    def __init__(self, token: TokenRecord, value: str, first: bool) -> None:
        self.token = token
        self.value = value
        self.first = first
        """Whether this was the first user: from now on every command needs a token."""


class UserService(Service):
    """Users, roles, grants and tokens."""

    @property
    def _repo(self) -> UserRepository:
        return self._store.users

    def now(self) -> datetime:
        """The services' clock (what token expiry is judged against)."""
        return self._now()

    # --- who is acting ------------------------------------------------------------------------

    async def actor(self, token: str | None) -> Actor:
        """The actor a token stands for; without one, the local actor while no users exist."""
        repo = self._repo
        if token is None:
            if not await repo.any_user():
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
        async with self._store.tx():
            # Looked up by hash: the comparison is on a digest, so its timing reveals nothing
            # useful about the token.
            row = await repo.token_by_hash(_hash_token(token))
            if row is None:
                raise AuthError("CORRAL_TOKEN is not a valid API token in this CORRAL_HOME")
            actor = self._token_actor(row, now)
            await repo.touch_token(row.id, now)
        return actor

    def _token_actor(self, row: TokenRow, now: datetime) -> Actor:
        """The actor of a token row, if the token and its user may act at ``now``."""
        what = f"API token {row.id} of {row.user}"
        if row.user_disabled:
            raise AuthError(f"{what}: user {row.user} is disabled")
        if row.revoked:
            raise AuthError(f"{what} was revoked; ask a super_admin for a new one")
        if row.expires_at <= now:
            raise AuthError(
                f"{what} expired at {row.expires_text[:19]}Z; ask a super_admin for a new one"
            )
        return Actor(
            row.user, check_role(row.role), token_id=row.id, token_expires_at=row.expires_at
        )

    # --- console sessions ---------------------------------------------------------------------

    async def open_session(self, token: str) -> ConsoleSession:
        """Sign in to the console with an API token: a new session (its cookie value and CSRF
        token), which ends at the latest when the token does (or is revoked); audited."""
        actor = await self.actor(token)
        if actor.token_id is None or actor.token_expires_at is None:
            raise AuthError("the console needs an API token: corral tokens create USER")
        now = self._now()
        value, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = min(now + SESSION_TTL, actor.token_expires_at)
        async with self._store.tx() as db:
            await self._repo.insert_session(_hash_token(value), actor.token_id, csrf, now, expires)
            await self._audit(db, actor, "console.sign_in", actor.token_id)
        return ConsoleSession(value, actor, csrf, expires)

    async def session(self, value: str | None) -> ConsoleSession:
        """The console session a cookie stands for, if it, its token and its user are valid."""
        if not value:
            raise AuthError("not signed in")
        row = await self._repo.session_by_hash(_hash_token(value))
        now = self._now()
        if row is None or row.session_expires_at <= now:
            raise AuthError("the console session ended; sign in again")
        return ConsoleSession(value, self._token_actor(row, now), row.csrf, row.session_expires_at)

    async def close_session(self, value: str) -> None:
        """Sign out: the session's cookie no longer works (expired sessions go too)."""
        await self._repo.delete_session(_hash_token(value), self._now())

    async def actor_named(self, name: str) -> Actor:
        """The actor a stored owner name stands for now (a schedule's runs act as it): the local
        actor while no users exist, else the user, who must still exist and be enabled."""
        repo = self._repo
        if not await repo.any_user():
            if name == LOCAL_ACTOR.name:
                return LOCAL_ACTOR
            raise AuthError(f"user {name} does not exist in this CORRAL_HOME")
        user = await repo.get_user(name)
        if user is None:
            raise AuthError(
                f"user {name} does not exist (any more) in this CORRAL_HOME; an admin takes the "
                "schedule over by registering its task again: corral schedules update NAME "
                "--task FILE"
            )
        if user.disabled_at is not None:
            raise AuthError(f"user {name} is disabled")
        return Actor(user.name, check_role(user.role))

    # --- users --------------------------------------------------------------------------------

    async def add_user(self, actor: Actor, name: str, role: UserRole) -> None:
        """Create a user (super_admin); the first user must be a super_admin."""
        self._authz.require(actor, "super_admin", "add users")
        role = check_role(role)
        if not _NAME_RE.fullmatch(name):
            raise UserError(
                f"user name '{name}': expected 1-64 letters, digits or '_.@-', "
                "starting with a letter or digit"
            )
        if name == LOCAL_ACTOR.name:
            raise UserError(f"user name '{name}' is reserved for single-user mode")
        repo = self._repo
        async with self._store.tx() as db:
            if await repo.get_user(name) is not None:
                raise UserError(f"user {name} already exists (see: corral users list)")
            if role != "super_admin" and not await repo.any_user():
                raise UserError(
                    "the first user must be a super_admin, or nobody could manage users: "
                    f"corral users add {name} --role super_admin"
                )
            await repo.insert_user(name, role, self._now())
            await self._audit(db, actor, "user.add", name, {"role": role})

    async def add_user_with_token(
        self, actor: Actor, name: str, role: UserRole, ttl_s: float | None = None
    ) -> NewUser:
        """Add a user and their first token, both or neither (see :meth:`create_token`)."""
        # Refuse before the user exists: a user without their first token helps nobody.
        self.token_expiry(actor, name, ttl_s)
        async with self._store.tx():
            first = not await self._repo.any_user()
            await self.add_user(actor, name, role)
            record, plain = await self.create_token(actor, name, ttl_s)
        return NewUser(record, plain, first)

    async def set_role(self, actor: Actor, name: str, role: UserRole) -> None:
        """Change a user's role (super_admin); the last super_admin cannot be demoted."""
        self._authz.require(actor, "super_admin", "change roles")
        role = check_role(role)
        async with self._store.tx() as db:
            user = await self._user(name)
            if user.role == "super_admin" and role != "super_admin":
                await self._keep_a_super_admin(name, "demote")
            await self._repo.set_role(name, role)
            await self._audit(db, actor, "user.role", name, {"from": user.role, "to": role})

    async def disable_user(self, actor: Actor, name: str) -> None:
        """Disable a user (super_admin) and revoke their tokens; grants are kept."""
        self._authz.require(actor, "super_admin", "disable users")
        async with self._store.tx() as db:
            user = await self._user(name)
            if user.disabled_at:
                raise UserError(f"user {name} is already disabled")
            if user.role == "super_admin":
                await self._keep_a_super_admin(name, "disable")
            revoked = await self._repo.disable(name, self._now())
            await self._audit(db, actor, "user.disable", name, {"tokens_revoked": revoked})

    async def list_users(self, actor: Actor) -> list[UserRecord]:
        """Every user with the profiles granted to them, by name (admin+)."""
        self._authz.require(actor, "admin", "list users")
        return await self._repo.list_users()

    async def _user(self, name: str) -> UserRecord:
        user = await self._repo.get_user(name)
        if user is None:
            raise UserError(f"no user '{name}' (see: corral users list)")
        return user

    async def _keep_a_super_admin(self, name: str, verb: str) -> None:
        if await self._repo.other_super_admins(name) == 0:
            raise UserError(
                f"cannot {verb} {name}: they are the last super_admin, and without one nobody "
                "could manage users (make another user super_admin first)"
            )

    # --- grants -------------------------------------------------------------------------------

    async def grant(self, actor: Actor, user: str, profile: str) -> None:
        """Let ``user`` run tasks on ``profile`` (admin+)."""
        self._authz.require(actor, "admin", "grant profiles")
        repo = self._repo
        async with self._store.tx() as db:
            await self._user(user)
            if not await repo.profile_exists(profile):
                raise ProfileNotFoundError(f"no profile '{profile}' (see: corral profiles list)")
            if not await repo.add_grant(user, profile, self._now(), actor.name):
                raise UserError(f"profile '{profile}' is already granted to {user}")
            await self._audit(db, actor, "grant.add", user, {"profile": profile})

    async def revoke_grant(self, actor: Actor, user: str, profile: str) -> None:
        """Take ``profile`` away from ``user`` (admin+)."""
        self._authz.require(actor, "admin", "revoke profile grants")
        async with self._store.tx() as db:
            await self._user(user)
            if not await self._repo.remove_grant(user, profile):
                raise UserError(f"profile '{profile}' is not granted to {user}")
            await self._audit(db, actor, "grant.revoke", user, {"profile": profile})

    # --- tokens -------------------------------------------------------------------------------

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
            self._authz.require(actor, "super_admin", f"create tokens for {user}")
        now = self._now()
        expires = self.token_expiry(actor, user, ttl_s, now)
        plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
        repo = self._repo
        async with self._store.tx() as db:
            if (await self._user(user)).disabled_at:
                raise UserError(f"user {user} is disabled: no new tokens")
            token_id = secrets.token_hex(4)
            while await repo.get_token(token_id) is not None:
                token_id = secrets.token_hex(4)
            record = TokenRecord(id=token_id, user=user, created_at=now, expires_at=expires)
            await repo.insert_token(record, _hash_token(plain))
            await self._audit(
                db,
                actor,
                "token.create",
                user,
                {"token_id": token_id, "expires_at": record.expires_at.astimezone(UTC).isoformat()},
            )
        return record, plain

    async def revoke_token(self, actor: Actor, token_id: str) -> None:
        """Revoke a token (super_admin, or the token's owner)."""
        repo = self._repo
        async with self._store.tx() as db:
            token = await repo.get_token(token_id)
            if token is None:
                raise UserError(f"no token '{token_id}' (see: corral tokens list)")
            if token.user != actor.name:
                self._authz.require(actor, "super_admin", f"revoke tokens of {token.user}")
            if token.revoked_at:
                raise UserError(f"token {token_id} is already revoked")
            await repo.revoke_token(token_id, self._now())
            await self._audit(db, actor, "token.revoke", token.user, {"token_id": token_id})

    async def list_tokens(self, actor: Actor, user: str | None = None) -> list[TokenRecord]:
        """Tokens (ids and times, never values), newest first; only ``user``'s if given.

        Users see only their own; admins and above anyone's."""
        if actor.level < ROLES["admin"]:
            if user is not None and user != actor.name:
                self._authz.require(actor, "admin", f"list the tokens of {user}")
            user = actor.name
        if user is not None:
            await self._user(user)
        return await self._repo.list_tokens(user)
