"""A recorded run as a person reviews it: what :func:`runtime.review.build_review` makes of a run's
rows, and what ``corral runs show``, ``corral replay`` and the console's run page all show.

Every text here comes from records that were redacted when they were written, and passes the
redactor once more when the review is built; page texts (titles, names, excerpts, extracted data)
are the page's words and must be escaped wherever they are shown.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from runtime.records import RunRecord

__all__ = [
    "ApprovalView",
    "Box",
    "CostLine",
    "ModelAttempt",
    "RunReview",
    "RunSummary",
    "StepView",
    "TargetView",
]


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetView(_View):
    """The element a step acted on."""

    ref: str | None = Field(None, description="the snapshot ref the model used (e.g. e7)")
    role: str | None = None
    name: str | None = Field(None, description="accessible name, as the page gave it")

    def words(self) -> str:
        """``button 'Pay $120.00'``; the ref only when nothing else is known."""
        if self.role and self.name:
            return f"{self.role} '{self.name}'"
        if self.name:
            return f"'{self.name}'"
        if self.role:
            return self.role
        return f"ref {self.ref}" if self.ref else ""


class Box(_View):
    """Where the target was on screen when it was checked (viewport pixels)."""

    x: float
    y: float
    width: float
    height: float


class ModelAttempt(_View):
    """One model attempt made for a step (answered, failed over, skipped, or a shadow)."""

    role: str
    model: str = Field(description="provider:model")
    outcome: str
    reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0


class ApprovalView(_View):
    """A person's decision on a step (or what is still waiting for one)."""

    id: str
    summary: str
    status: str
    reasons: list[str] = Field(default_factory=list)
    decided_by: str | None = None
    decided_at: datetime | None = None
    comment: str | None = None
    fields: list[dict[str, Any]] = Field(
        default_factory=list, description="what the form will send (secrets as placeholders)"
    )
    screenshot: str | None = Field(None, description="path of the screenshot with the target")


class StepView(_View):
    """One step explained: what was done to what, why, what it cost, what was blocked."""

    idx: int
    kind: str
    words: str = Field(description="the action in words: Click button 'Pay $120.00'")
    status: str
    error: str | None = None
    target: TargetView | None = None
    box: Box | None = None
    tool: str | None = Field(None, description="the planner's tool call name (model steps)")
    call: str | None = Field(None, description="the planner's tool call with its arguments")
    reason: str | None = Field(None, description="what the model said alongside its call")
    decision: str | None = Field(None, description="the risk verdict: allow, deny, ...")
    reasons: list[str] = Field(default_factory=list, description="the verdict's reasons")
    rules: list[str] = Field(default_factory=list)
    approval: ApprovalView | None = None
    blocked_hosts: list[str] = Field(default_factory=list, description="egress blocked")
    held_requests: list[str] = Field(default_factory=list, description="METHOD path: why")
    refused_navigations: list[str] = Field(default_factory=list)
    models: list[ModelAttempt] = Field(default_factory=list)
    answered_by: str | None = Field(None, description="the model whose answer was used")
    fallbacks: list[str] = Field(
        default_factory=list, description="models tried first that failed: model: reason"
    )
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    model_latency_ms: float = 0.0
    excerpt: str | None = Field(None, description="the page text the planner saw, near the target")
    url_before: str | None = None
    url_after: str | None = None
    started_at: datetime
    duration_ms: float
    screenshot: str | None = Field(None, description="path inside the run folder")
    shadow: str | None = None
    shadow_agrees: bool | None = None
    extra: dict[str, Any] = Field(
        default_factory=dict, description="the rest of the record's detail (value, items, ...)"
    )

    @property
    def number(self) -> int:
        """The step's number as people count (1-based)."""
        return self.idx + 1

    @property
    def navigated(self) -> bool:
        """The page's URL changed during the step."""
        return bool(self.url_after) and self.url_after != self.url_before


class CostLine(_View):
    """Calls, tokens and cost of one role on one model."""

    role: str
    model: str
    calls: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0


class RunSummary(_View):
    """A run at a glance."""

    status: str
    duration_s: float | None
    steps: int
    steps_by_status: dict[str, int]
    cost_usd: float
    input_tokens: int
    output_tokens: int
    by_role_model: list[CostLine]
    approvals: list[ApprovalView]
    errors: list[str] = Field(default_factory=list, description="the run's and its steps'")
    blocked_hosts: list[str] = Field(default_factory=list)
    hit_cap: bool = Field(False, description="a budget cap (max_usd / max_tokens) stopped it")


class RunReview(_View):
    """Everything a person reviews about one run."""

    run: RunRecord
    summary: RunSummary
    steps: list[StepView]
    output: Any = None
    trace: str | None = Field(None, description="trace.zip's path, if one was recorded")
    unattributed: list[ModelAttempt] = Field(
        default_factory=list, description="model calls after the last step (the final done())"
    )

    def step(self, idx: int) -> StepView | None:
        """The step with index ``idx``."""
        return next((s for s in self.steps if s.idx == idx), None)
