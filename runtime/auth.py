"""Who may do what: user roles, the acting :class:`Actor`, and the one :class:`Authorizer`.

Roles are ordered by level: ``user`` (1) runs tasks on the profiles granted to it, ``admin`` (10)
also approves gated actions and manages profiles, secrets and grants, ``super_admin`` (100) also
changes global policy, users, roles and anyone's tokens. Until the first user exists the CLI acts
as :data:`LOCAL_ACTOR` (single-user mode); after that every command needs ``CORRAL_TOKEN``.

Every operation an actor makes goes through :mod:`runtime.services`, which asks the authorizer
here and writes the audit row (:mod:`runtime.store.audit`) in the same transaction as the change.
The SQL of users, tokens and grants is in :mod:`runtime.store.users`.

Errors (on top of :mod:`profiles.errors`)::

    UserError (exit 2)
    ├── AuthError               no, unknown, expired or revoked token; disabled user
    └── PermissionDeniedError   role too low, or profile not granted
        └── TokenOutlivesError  a token may not create a token that expires after it does
    RunError (exit 1)
    └── AuditTamperedError      the audit log's hash chain is broken
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, cast

from pydantic import BaseModel, ConfigDict, Field

from profiles import UserError
from runtime.errors import AuditTamperedError, AuthError, PermissionDeniedError, TokenOutlivesError

__all__ = [
    "DEFAULT_TOKEN_TTL_S",
    "LOCAL_ACTOR",
    "MAX_TOKEN_TTL_S",
    "ROLES",
    "TOKEN_PREFIX",
    "Actor",
    "AuditEntry",
    "AuditTamperedError",
    "AuthError",
    "Authorizer",
    "GrantLookup",
    "PermissionDeniedError",
    "TokenOutlivesError",
    "TokenRecord",
    "UserRecord",
    "UserRole",
    "check_role",
    "utcnow",
]

ROLES: dict[str, int] = {"user": 1, "admin": 10, "super_admin": 100}
UserRole = Literal["user", "admin", "super_admin"]
"""A user's role (not a model's role in a run: see :mod:`runtime.models`)."""

TOKEN_PREFIX = "crl_"
MAX_TOKEN_TTL_S = 5 * 366 * 86_400
DEFAULT_TOKEN_TTL_S = 30 * 86_400


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user (by token) or the local single-user actor."""

    name: str
    role: UserRole
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


class UserRecord(BaseModel):
    """A user as listed (no secrets in it)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    role: UserRole
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


def check_role(role: str) -> UserRole:
    """``role`` as a :data:`UserRole`, or a UserError naming the known ones."""
    if role not in ROLES:
        raise UserError(f"unknown role '{role}': expected one of {', '.join(ROLES)}")
    return cast(UserRole, role)


def utcnow() -> datetime:
    """The current time in UTC (the default clock of the services)."""
    return datetime.now(UTC)


class GrantLookup(Protocol):
    """Where the authorizer looks up profile grants (a ``UserRepository``)."""

    def has_grant(self, user: str, profile: str) -> Awaitable[bool]: ...


class Authorizer:
    """The one place that decides whether an actor may do something."""

    def __init__(self, grants: GrantLookup) -> None:
        self._grants = grants

    @staticmethod
    def require(actor: Actor, role: UserRole, doing: str, message: str | None = None) -> None:
        """Raise PermissionDeniedError unless ``actor`` has ``role`` or higher.

        ``message`` replaces the standard wording (kept where a command has always said it so).
        """
        if actor.level < ROLES[role]:
            higher = "" if role == "super_admin" else " or higher"
            standard = f"{actor.name} ({actor.role}) may not {doing}: that needs the {role} role"
            raise PermissionDeniedError(message or standard + higher)

    async def may_use_profile(self, actor: Actor, profile: str) -> bool:
        """Whether ``actor`` may use (and see what happens on) ``profile``: admins and above
        every profile, users those granted to them."""
        if actor.level >= ROLES["admin"]:
            return True
        return await self._grants.has_grant(actor.name, profile)

    async def require_profile(self, actor: Actor, profile: str, doing: str) -> None:
        """Users need a grant on ``profile``; admins and above may use every profile."""
        if not await self.may_use_profile(actor, profile):
            raise PermissionDeniedError(
                f"{actor.name} ({actor.role}) may not {doing}: profile '{profile}' is not "
                f"granted to {actor.name} (an admin can: corral users grant {actor.name} {profile})"
            )
