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

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from runtime.auth import Actor, Authorizer, utcnow
from runtime.services.approvals import ApprovalService
from runtime.services.audit import AuditService
from runtime.services.base import Service, Supplier
from runtime.services.keys import KeyService
from runtime.services.policy import PolicyService, PolicyText
from runtime.services.profiles import ProfileEntry, ProfileService, bundle_needs_passphrase
from runtime.services.runs import RunDetail, RunService
from runtime.services.schedules import ScheduleChanges, ScheduleInput, ScheduleService
from runtime.services.secrets import SecretService
from runtime.services.users import NewUser, UserService

if TYPE_CHECKING:
    from runtime.app import Runtime

__all__ = [
    "ApprovalService",
    "AuditService",
    "KeyService",
    "NewUser",
    "PolicyService",
    "PolicyText",
    "ProfileEntry",
    "ProfileService",
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
        parts = (rt, self.authorizer, now)
        self.users = UserService(*parts)
        self.profiles = ProfileService(*parts)
        self.secrets = SecretService(*parts)
        self.approvals = ApprovalService(*parts)
        self.policy = PolicyService(*parts)
        self.keys = KeyService(*parts)
        self.audit = AuditService(*parts)
        self.runs = RunService(*parts)
        self.schedules = ScheduleService(*parts)

    async def actor(self, token: str | None) -> Actor:
        """Who ``token`` stands for (None: the local actor while no users exist)."""
        return await self.users.actor(token)
