"""Who calls: ``Authorization: Bearer TOKEN`` turned into an :class:`~runtime.auth.Actor`.

The server never acts as the local single-user actor: a request without a valid API token is
refused (401 with ``WWW-Authenticate: Bearer``) even while no users exist, so owning the server's
``CORRAL_HOME`` is the only way to act without a token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from runtime.app import Runtime
from runtime.auth import Actor
from runtime.errors import AuthError
from runtime.serve import WorkerPool

__all__ = ["Authenticated", "Call", "runtime_of"]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="a corral API token (crl_...): corral tokens create USER",
)


@dataclass(frozen=True)
class Call:
    """What a route works with: the runtime, the worker pool and the acting user."""

    rt: Runtime
    pool: WorkerPool
    actor: Actor


def runtime_of(request: Request) -> tuple[Runtime, WorkerPool]:
    """The runtime and worker pool the app was created with."""
    return request.app.state.rt, request.app.state.pool


async def _authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Call:
    rt, pool = runtime_of(request)
    if credentials is None or not credentials.credentials:
        raise AuthError("no API token: send Authorization: Bearer TOKEN (a corral API token)")
    # Never None here: the local actor is for a person at the store's own machine, not the API.
    actor = await rt.services.actor(credentials.credentials)
    return Call(rt, pool, actor)


Authenticated = Annotated[Call, Depends(_authenticated)]
"""The parameter type of every route but ``/api/health``: the caller, authenticated."""
