"""``/api/health`` (no token) and ``/api/whoami``."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Request

from runtime.api.auth import Authenticated, runtime_of
from runtime.api.schemas import Health, WhoAmI

__all__ = ["router"]

router = APIRouter(tags=["server"])


def _version() -> str:
    try:
        return version("corral")
    except PackageNotFoundError:
        return "unknown"


@router.get("/health", response_model=Health)
async def health(request: Request) -> Health:
    """Whether the server answers, its version, and whether it is stopping (no token needed)."""
    _, pool = runtime_of(request)
    return Health(version=_version(), draining=pool.draining)


@router.get("/whoami", response_model=WhoAmI)
async def whoami(call: Authenticated) -> WhoAmI:
    """The user the token stands for."""
    return WhoAmI(name=call.actor.name, role=call.actor.role)
