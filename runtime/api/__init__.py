"""The HTTP API of ``corral serve`` (FastAPI): :func:`create_app` and the models it exchanges."""

from __future__ import annotations

from typing import TYPE_CHECKING

from profiles import LazyExports

if TYPE_CHECKING:
    from runtime.api.app import API_PREFIX, create_app
    from runtime.api.schemas import (
        CancelRequest,
        CancelResult,
        DecisionRequest,
        Health,
        ProfileCreate,
        ProfileInfo,
        RunAccepted,
        RunDetailOut,
        RunPending,
        RunRequest,
        SecretInfo,
        SecretPut,
        SubmittedRun,
        WhoAmI,
    )

__all__ = [
    "API_PREFIX",
    "CancelRequest",
    "CancelResult",
    "DecisionRequest",
    "Health",
    "ProfileCreate",
    "ProfileInfo",
    "RunAccepted",
    "RunDetailOut",
    "RunPending",
    "RunRequest",
    "SecretInfo",
    "SecretPut",
    "SubmittedRun",
    "WhoAmI",
    "create_app",
]

_LAZY = LazyExports(__name__, __file__)


def __getattr__(name: str) -> object:
    """Import a public name's module on first use."""
    return _LAZY.load(name)


def __dir__() -> list[str]:
    return _LAZY.names()
