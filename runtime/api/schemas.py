"""What crosses the HTTP API: request bodies (``extra="forbid"``, so a typo is named) and the
responses that are not already a stored record.

Records that carry sealed data are never sent as they are: a secret goes out as
:class:`SecretInfo` (name, kind and scope; no ciphertext), a profile as :class:`ProfileInfo`
(settings without the proxy password; whether it has saved state, not the state). The client
(:mod:`runtime.client`) reads these same models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from profiles import LeaseHolder, ProfileRecord, ProfileSettings, SecretRecord
from runtime.auth import UserRole
from runtime.records import ArtifactRecord, ModelCallRecord, RunRecord, StepRecord

__all__ = [
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
]

_FORBID = ConfigDict(extra="forbid")


class Health(BaseModel):
    """``GET /api/health``: the server answers, and whether it is stopping."""

    model_config = _FORBID
    status: Literal["ok"] = "ok"
    version: str
    draining: bool


class WhoAmI(BaseModel):
    """``GET /api/whoami``: the user the token stands for."""

    model_config = _FORBID
    name: str
    role: UserRole


# --- runs --------------------------------------------------------------------------------------


class RunRequest(BaseModel):
    """``POST /api/runs``: a task file's text and where to run it."""

    model_config = _FORBID
    task_yaml: str = Field(description="the task file's text")
    task_path: str = Field("task.yaml", description="the file's name, for messages only")
    profiles: list[str] = Field(default_factory=list, description="empty: the task's profile")
    vars: dict[str, str] = Field(default_factory=dict, description="--var NAME=VALUE")
    lease_timeout_s: float | None = Field(
        None, ge=0, le=86_400, description="how long a run waits for its profile"
    )


class SubmittedRun(BaseModel):
    """A run the server accepted: its id is known before it starts."""

    model_config = _FORBID
    run_id: str
    profile: str


class RunAccepted(BaseModel):
    """``POST /api/runs`` answers 202 with one run per profile."""

    model_config = _FORBID
    runs: list[SubmittedRun]


class RunPending(BaseModel):
    """``GET /api/runs/{id}/result`` answers 202 with this while the run goes."""

    model_config = _FORBID
    run_id: str
    status: Literal["queued", "running", "waiting_approval"]


class RunDetailOut(BaseModel):
    """``GET /api/runs/{id}``: one run with everything it recorded."""

    model_config = _FORBID
    run: RunRecord
    steps: list[StepRecord]
    model_calls: list[ModelCallRecord]
    artifacts: list[ArtifactRecord]


class CancelRequest(BaseModel):
    """``POST /api/runs/{id}/cancel``: why (kept in the run's error and the audit log)."""

    model_config = _FORBID
    reason: str | None = Field(None, max_length=500)


class CancelResult(BaseModel):
    """Whether the run was still going (and so was cancelled), and its status if it ended."""

    model_config = _FORBID
    run_id: str
    cancelled: bool
    status: str | None = None


# --- approvals ---------------------------------------------------------------------------------


class DecisionRequest(BaseModel):
    """``POST /api/approvals/{ref}/approve`` or ``/deny``."""

    model_config = _FORBID
    comment: str | None = Field(None, max_length=2000)


# --- profiles ----------------------------------------------------------------------------------


class ProfileCreate(ProfileSettings):
    """``POST /api/profiles``: a name and the settings ``corral profiles create`` takes."""

    name: str


class ProfileInfo(BaseModel):
    """A profile as the API shows it: never its saved state nor its proxy password."""

    model_config = _FORBID
    name: str
    settings: ProfileSettings = Field(description="the proxy password is never included")
    created_at: datetime
    updated_at: datetime
    has_state: bool
    state_saved_at: datetime | None = None
    leased_by: str | None = Field(None, description="the run holding the profile, if any")

    @classmethod
    def of(cls, record: ProfileRecord, lease: LeaseHolder | None = None) -> ProfileInfo:
        """The public view of a stored profile."""
        settings = record.settings
        if settings.proxy is not None and settings.proxy.password is not None:
            proxy = settings.proxy.model_copy(update={"password": None})
            settings = settings.model_copy(update={"proxy": proxy})
        return cls(
            name=record.name,
            settings=settings,
            created_at=record.created_at,
            updated_at=record.updated_at,
            has_state=record.state is not None,
            state_saved_at=record.state_saved_at,
            leased_by=lease.run_id if lease else None,
        )


# --- secrets -----------------------------------------------------------------------------------


class SecretPut(BaseModel):
    """``PUT /api/secrets/{name}``: the only place a secret value travels; never echoed."""

    model_config = _FORBID
    value: SecretStr = Field(description="the value (a TOTP seed for kind totp)")
    kind: Literal["value", "totp"] = "value"
    domains: list[str] = Field(description="origins where it may be typed")
    profiles: list[str] = Field(default_factory=list, description="empty: any profile")
    fields: list[str] = Field(
        default_factory=list, description="labels or names of fields it may be typed into"
    )


class SecretInfo(BaseModel):
    """A secret as the API shows it: its name, kind and scope; never its value."""

    model_config = _FORBID
    name: str
    kind: Literal["value", "totp"]
    domains: list[str]
    profiles: list[str]
    fields: list[str]
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None = None

    @classmethod
    def of(cls, record: SecretRecord) -> SecretInfo:
        """The public view of a stored secret."""
        return cls.model_validate(record.model_dump(exclude={"ciphertext"}))
