"""The HTTP API of ``corral serve`` (FastAPI): :func:`create_app` and the models it exchanges."""

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
