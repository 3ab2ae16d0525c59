"""What the store keeps about schedules: when they fire, their policies, and each fire."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Canary",
    "Fire",
    "FireKind",
    "FireStatus",
    "Notify",
    "Overlap",
    "Schedule",
    "SchedulePolicy",
    "Timing",
]

_DAY_S = 86_400.0
_YEAR_S = 366 * _DAY_S

Overlap = Literal["skip", "buffer_one", "buffer_all", "cancel_other", "allow"]
"""What a fire does while the same schedule's previous run on the same profile still goes."""

Notify = Literal["failure", "approval", "pause"]

FireKind = Literal["scheduled", "manual", "backfill"]

FireStatus = Literal[
    "queued",  # waiting for its due time (a retry waits here too, with a later due_at)
    "running",  # claimed by a server, its run going
    "succeeded",
    "failed",  # failed and out of retries (or not retryable)
    "denied",  # a person (or expiry) denied an approval: a decision, never retried
    "missed",  # due while no server ran, older than the catch-up window: recorded, not run
    "skipped",  # the overlap policy dropped it, or its schedule was removed or paused
    "cancelled",  # cancel_other stopped it for a newer fire, or a person cancelled it
]


class Timing(BaseModel):
    """When a schedule fires: a cron expression in a time zone, or a fixed interval."""

    model_config = ConfigDict(extra="forbid")
    cron: str | None = Field(None, description="5 fields: minute hour day month weekday")
    tz: str = Field("UTC", description="IANA time zone the cron expression is read in")
    every_s: float | None = Field(
        None, description="fire every this many seconds (1 s to a year; check_timing checks)"
    )
    start_at: datetime | None = Field(None, description="no fire before this time")
    end_at: datetime | None = Field(None, description="no fire after this time")
    jitter_s: float = Field(
        0.0, ge=0, description="each fire starts up to this much later (at most a day)"
    )
    exclude_dates: list[date] = Field(
        default_factory=list, description="no fire on these dates (in the schedule's zone)"
    )


class Canary(BaseModel):
    """A deterministic share of a schedule's fires (by a hash of the fire id) runs with a
    candidate model config; ``corral eval --schedule NAME`` compares the two."""

    model_config = ConfigDict(extra="forbid")
    share: float = Field(ge=0, le=1, description="the share of fires, 0 to 1 (0.1: 10%)")
    models: str = Field(
        min_length=1,
        description="the candidate model config file (corral.toml format), an absolute path "
        "on the hosts that run the fires",
    )


class SchedulePolicy(BaseModel):
    """How a schedule's fires run: overlap, catch-up, retries, pausing, limits, notices."""

    model_config = ConfigDict(extra="forbid")
    overlap: Overlap = "skip"
    catchup_s: float = Field(
        3600.0, ge=0, le=_YEAR_S, description="missed fires younger than this still run"
    )
    retries: int = Field(0, ge=0, le=20, description="extra attempts of a failed fire")
    backoff_s: float = Field(
        30.0, gt=0, le=_DAY_S, description="wait before the first retry; doubles for each next one"
    )
    max_backoff_s: float = Field(
        3600.0, gt=0, le=7 * _DAY_S, description="the longest wait between retries"
    )
    pause_after: int | None = Field(
        5, ge=1, description="pause after this many failed fires in a row (None: never)"
    )
    origin_limit: int | None = Field(
        None, ge=1, description="at most this many runs at once on the task's origin (any schedule)"
    )
    concurrency: int | None = Field(
        None, ge=1, description="at most this many of this schedule's runs at once"
    )
    notify: list[Notify] = Field(
        default_factory=lambda: list[Notify](["failure", "approval", "pause"]),
        description="what the signed webhook announces (when one is configured)",
    )
    canary: Canary | None = Field(
        None, description="run a share of the fires with a candidate model config"
    )


class Schedule(BaseModel):
    """A registered task, the profiles it runs on, its variables, when and how."""

    model_config = ConfigDict(extra="forbid")
    name: str
    task_yaml: str = Field(
        description="the task file as registered (a later edit of it does not "
        "change the schedule; `schedules update --task` registers a new one)"
    )
    task_source: str = Field(description="the path the task was registered from")
    task_name: str
    origin: str | None = Field(None, description="the task's start URL origin, for origin_limit")
    profiles: list[str]
    vars: dict[str, str] = Field(default_factory=dict)
    timing: Timing
    policy: SchedulePolicy = Field(default_factory=SchedulePolicy)
    owner: str = Field(description="the user the schedule's runs act as (their grants apply)")
    paused: bool = False
    paused_reason: str | None = None
    consecutive_failures: int = 0
    cursor: datetime = Field(description="fires up to this time have been queued or recorded")
    created_at: datetime
    updated_at: datetime


class Fire(BaseModel):
    """One profile's run of one scheduled time: unique per (schedule, scheduled_at, profile)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    schedule: str
    scheduled_at: datetime = Field(description="the nominal time (before jitter)")
    profile: str
    kind: FireKind = "scheduled"
    origin: str | None = None
    due_at: datetime = Field(description="when it may start: scheduled_at + jitter, or a retry's")
    status: FireStatus = "queued"
    attempt: int = Field(0, description="attempts started so far")
    interruptions: int = Field(
        0, description="attempts a server stop cut short (run again; not counted as failures)"
    )
    run_id: str | None = Field(None, description="the latest attempt's run")
    claimed_by: str | None = Field(None, description="the server running it: host:pid:started")
    claimed_at: datetime | None = None
    finished_at: datetime | None = None
    note: str | None = Field(None, description="why it ended so, or why it waits")

    def summary(self) -> dict[str, Any]:
        """What a notification or an exit report says of this fire."""
        return self.model_dump(
            mode="json", include={"id", "schedule", "scheduled_at", "profile", "status", "run_id"}
        )
