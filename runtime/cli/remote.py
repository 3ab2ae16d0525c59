"""The CLI against a server: with ``CORRAL_SERVER`` set, commands go through its HTTP API.

Then the CLI never opens the store or the master key (``CORRAL_HOME`` is not even read): the
server's service account owns them, and the token in ``CORRAL_TOKEN`` decides what the caller may
do. A command that needs the files themselves says so and stops (:func:`local_only`).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from profiles import UserError
from runtime.cli.common import (
    SERVER_ENV,
    fail,
    local_only_message,
    run_async,
    server_url,
    with_runtime,
)
from runtime.errors import PermissionDeniedError

if TYPE_CHECKING:
    # The HTTP client (and the API models it reads) load only when a command goes to a server.
    from runtime.app import Runtime
    from runtime.auth import Actor
    from runtime.client import ApiClient
    from runtime.schedules import Fire, Schedule
    from runtime.services import ScheduleChanges, ScheduleInput, ScheduleService

__all__ = [
    "SERVER_ENV",
    "LocalSchedules",
    "SchedulesApi",
    "either",
    "local_only",
    "require_admin",
    "server_url",
    "with_client",
]

TOKEN_ENV = "CORRAL_TOKEN"
T = TypeVar("T")


async def with_client(body: Callable[[ApiClient], Awaitable[T]]) -> T:
    """Run ``body`` with a client of ``CORRAL_SERVER`` as ``CORRAL_TOKEN``'s user."""
    url = server_url()
    assert url is not None
    if not url.startswith(("http://", "https://")):
        raise UserError(f"{SERVER_ENV}={url!r}: expected the server's URL, e.g. http://HOST:8780")
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise UserError(
            f"{SERVER_ENV} is set but {TOKEN_ENV} is not: the server answers only API tokens "
            "(an admin creates yours with: corral tokens create USER, on the server host)"
        )
    from runtime.client import ApiClient

    async with ApiClient(url, token) as client:
        return await body(client)


def either(
    local: Callable[[Runtime], Awaitable[T]],
    remote: Callable[[ApiClient], Awaitable[T]],
    *,
    browser: Sequence[str] | None = None,
) -> T:
    """Run a command's body here (the store and key in ``CORRAL_HOME``) or through the server;
    errors become exit codes the same way in both. ``browser``: see :func:`with_runtime`."""
    if server_url():
        return run_async(lambda: with_client(remote))
    return run_async(lambda: with_runtime(local, browser=browser))


def local_only() -> None:
    """Stop with exit 2 when ``CORRAL_SERVER`` is set, before a command that needs the
    server's files reads or asks for anything (``with_runtime`` refuses too, later)."""
    if server_url():
        fail(local_only_message())


async def require_admin(client: ApiClient, doing: str) -> None:
    """Refuse a token whose user is below admin before anyone is asked for anything (a value,
    a confirmation), as the service does locally; the server still decides the call itself."""
    from runtime.auth import ROLES

    me = await client.whoami()
    if ROLES[me.role] < ROLES["admin"]:
        raise PermissionDeniedError(f"{me.name} ({me.role}) cannot {doing}: needs admin")


class SchedulesApi(Protocol):
    """The schedule operations as the CLI uses them, here or on a server."""

    async def add(self, spec: ScheduleInput) -> Schedule: ...
    async def update(self, name: str, changes: ScheduleChanges) -> Schedule: ...
    async def remove(self, name: str) -> None: ...
    async def pause(self, name: str, reason: str | None = None) -> Schedule: ...
    async def resume(self, name: str) -> Schedule: ...
    async def run_now(self, name: str) -> list[Fire]: ...
    async def backfill(self, name: str, start: datetime, end: datetime) -> list[Fire]: ...
    async def get(self, name: str) -> Schedule: ...
    async def next_fires(self, name: str, n: int = 5) -> list[datetime]: ...
    async def fires(self, name: str, limit: int = 50) -> list[Fire]: ...
    async def list(self) -> list[Schedule]: ...


class LocalSchedules:
    """:class:`SchedulesApi` on this machine's store, as one actor."""

    def __init__(self, service: ScheduleService, actor: Actor) -> None:
        self._service = service
        self._actor = actor

    async def add(self, spec: ScheduleInput) -> Schedule:
        return await self._service.add(self._actor, spec)

    async def update(self, name: str, changes: ScheduleChanges) -> Schedule:
        return await self._service.update(self._actor, name, changes)

    async def remove(self, name: str) -> None:
        await self._service.remove(self._actor, name)

    async def pause(self, name: str, reason: str | None = None) -> Schedule:
        return await self._service.pause(self._actor, name, reason)

    async def resume(self, name: str) -> Schedule:
        return await self._service.resume(self._actor, name)

    async def run_now(self, name: str) -> list[Fire]:
        return await self._service.run_now(self._actor, name)

    async def backfill(self, name: str, start: datetime, end: datetime) -> list[Fire]:
        return await self._service.backfill(self._actor, name, start, end)

    async def get(self, name: str) -> Schedule:
        return await self._service.get(self._actor, name)

    async def next_fires(self, name: str, n: int = 5) -> list[datetime]:
        return await self._service.next_fires(self._actor, name, n)

    async def fires(self, name: str, limit: int = 50) -> list[Fire]:
        return await self._service.fires(self._actor, name, limit)

    async def list(self) -> list[Schedule]:
        return await self._service.list(self._actor)
