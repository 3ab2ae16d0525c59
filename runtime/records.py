"""What the store keeps about runs: the run, its steps and the files it produced."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "ArtifactRecord",
    "ModelCallRecord",
    "RunRecord",
    "RunSource",
    "RunStatus",
    "StepRecord",
    "StepStatus",
    "UsageRow",
]

RunStatus = Literal[
    "queued",
    "running",
    "waiting_approval",
    "succeeded",
    "failed",
    "denied",
    "cancelled",
    "interrupted",
]
StepStatus = Literal["ok", "failed", "skipped"]


class RunSource(BaseModel):
    """What made a run that no person started directly: a schedule's fire, and which attempt."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    schedule: str
    fire_id: str
    attempt: int = 1


class RunRecord(BaseModel):
    """One execution of a task on one profile."""

    model_config = ConfigDict(extra="forbid")
    id: str
    task_name: str
    task_path: str | None
    profile: str
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None
    result: Any = None
    run_dir: str
    pid: int
    host: str | None = None
    """The host the run's process is on: its pid is judged there only (None: an older run)."""
    schedule: str | None = None
    """The schedule whose fire made this run (None: started by hand)."""
    fire_id: str | None = None
    attempt: int | None = None
    """Which attempt of its fire this run is (1 first; retries count up)."""
    evidence: list[dict[str, Any]] | None = None
    """Where each field of a goal's result came from: field, excerpt, url, step, ref."""
    models_config: str | None = None
    """The model config a goal run used (a file, or "built-in defaults"; None: no goal)."""
    expired: dict[str, datetime] | None = None
    """The kinds of its data deleted under the retention rules, and when (None: nothing)."""


class StepRecord(BaseModel):
    """One recorded step: what was done, where, how long it took and how it ended."""

    model_config = ConfigDict(extra="forbid")
    run_id: str
    idx: int
    kind: str
    action: dict[str, Any]
    target: str | None
    side_effect: str
    status: StepStatus
    url_before: str | None
    url_after: str | None
    started_at: datetime
    duration_ms: float
    error: str | None = None
    screenshot: str | None = None
    detail: Any = None


class ArtifactRecord(BaseModel):
    """A file a run produced (screenshot, trace, download, result), relative to the run folder."""

    model_config = ConfigDict(extra="forbid")
    run_id: str
    step_idx: int | None
    kind: Literal["screenshot", "trace", "download", "result", "steps", "approval"]
    path: str
    bytes: int
    created_at: datetime


class ModelCallRecord(BaseModel):
    """One model attempt: which role, which model, how it ended, tokens, cost, latency."""

    model_config = ConfigDict(extra="forbid")
    run_id: str
    step_idx: int | None
    role: str
    provider: str
    model: str
    outcome: Literal["ok", "error", "skipped", "shadow"]
    reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    at: datetime


class UsageRow(BaseModel):
    """Model calls of one day (UTC), task, role and model, summed."""

    model_config = ConfigDict(extra="forbid")
    day: str
    task: str
    role: str
    model: str
    calls: int
    failed: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float
