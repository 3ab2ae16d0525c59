"""The service layer: every operation an actor makes, authorized and audited in one place.

The CLI, the Python API and an HTTP API call the same methods; none of them checks a role
itself. Each method takes the acting :class:`~runtime.auth.Actor` first, asks the
:class:`~runtime.auth.Authorizer`, makes the change and writes the hash-chained audit row in the
same transaction (``Store.tx()`` joins an open transaction, so the parts it calls are inside)::

    async with Runtime.open(Settings.from_env()) as rt:
        actor = await rt.services.actor(token)           # or LOCAL_ACTOR in single-user mode
        await rt.services.profiles.create(actor, "alice")

A refused operation raises :class:`~runtime.auth.PermissionDeniedError` and changes nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from profiles import LazyExports
from runtime.auth import Actor, Authorizer, utcnow

if TYPE_CHECKING:
    # Each service's module loads when the service is first used (a one-step `corral run` needs
    # two of them), and so do the names exported here.
    from runtime.app import Runtime
    from runtime.services.alerts import AlertService
    from runtime.services.approvals import ApprovalService
    from runtime.services.audit import AuditService
    from runtime.services.base import Service, Supplier
    from runtime.services.keys import KeyService
    from runtime.services.memory import MemoryService
    from runtime.services.policy import PolicyService, PolicyText
    from runtime.services.profiles import ProfileEntry, ProfileService, bundle_needs_passphrase
    from runtime.services.retention import GcReport, RetentionService
    from runtime.services.runs import RunDetail, RunService
    from runtime.services.schedules import ScheduleChanges, ScheduleInput, ScheduleService
    from runtime.services.secrets import SecretService
    from runtime.services.users import NewUser, UserService

__all__ = [
    "AlertService",
    "ApprovalService",
    "AuditService",
    "GcReport",
    "KeyService",
    "MemoryService",
    "NewUser",
    "PolicyService",
    "PolicyText",
    "ProfileEntry",
    "ProfileService",
    "RetentionService",
    "RunDetail",
    "RunService",
    "ScheduleChanges",
    "ScheduleInput",
    "ScheduleService",
    "SecretService",
    "Service",
    "Services",
    "Supplier",
    "UserService",
    "bundle_needs_passphrase",
]


class Services:
    """Every service of one runtime (``rt.services``), sharing its authorizer and clock."""

    def __init__(self, rt: Runtime, now: Callable[[], datetime] = utcnow) -> None:
        self.authorizer = Authorizer(rt.store.users)
        """The one place that decides whether an actor may do something."""
        self._parts = (rt, self.authorizer, now)

    @functools.cached_property
    def users(self) -> UserService:
        """Users, tokens and grants."""
        from runtime.services.users import UserService

        return UserService(*self._parts)

    @functools.cached_property
    def profiles(self) -> ProfileService:
        """Profiles: create, configure, import and export."""
        from runtime.services.profiles import ProfileService

        return ProfileService(*self._parts)

    @functools.cached_property
    def secrets(self) -> SecretService:
        """The vault's secrets."""
        from runtime.services.secrets import SecretService

        return SecretService(*self._parts)

    @functools.cached_property
    def approvals(self) -> ApprovalService:
        """Approval requests and their decisions."""
        from runtime.services.approvals import ApprovalService

        return ApprovalService(*self._parts)

    @functools.cached_property
    def policy(self) -> PolicyService:
        """The global risk policy."""
        from runtime.services.policy import PolicyService

        return PolicyService(*self._parts)

    @functools.cached_property
    def keys(self) -> KeyService:
        """The master key and its rotation."""
        from runtime.services.keys import KeyService

        return KeyService(*self._parts)

    @functools.cached_property
    def audit(self) -> AuditService:
        """The audit log."""
        from runtime.services.audit import AuditService

        return AuditService(*self._parts)

    @functools.cached_property
    def runs(self) -> RunService:
        """Starting runs and reading what they recorded."""
        from runtime.services.runs import RunService

        return RunService(*self._parts)

    @functools.cached_property
    def alerts(self) -> AlertService:
        """Alerts raised by runs: acknowledge, lift a freeze, resume a paused run."""
        from runtime.services.alerts import AlertService

        return AlertService(*self._parts)

    @functools.cached_property
    def memory(self) -> MemoryService:
        """Notes of long-term memory."""
        from runtime.services.memory import MemoryService

        return MemoryService(*self._parts)

    @functools.cached_property
    def schedules(self) -> ScheduleService:
        """Schedules and their fires."""
        from runtime.services.schedules import ScheduleService

        return ScheduleService(*self._parts)

    @functools.cached_property
    def retention(self) -> RetentionService:
        """Retention rules, and gc: deleting run data past them."""
        from runtime.services.retention import RetentionService

        return RetentionService(*self._parts)

    async def actor(self, token: str | None) -> Actor:
        """Who ``token`` stands for (None: the local actor while no users exist)."""
        return await self.users.actor(token)


_LAZY = LazyExports(__name__, __file__)


def __getattr__(name: str) -> object:
    """Import a public name's module on first use."""
    return _LAZY.load(name)


def __dir__() -> list[str]:
    return _LAZY.names()
