"""Alerts: a goal run burning tokens, a provider failing again and again, spend near the cap.

A task's ``alerts`` say when each kind fires and what follows (the runbook):

- ``token_burn``: one planner step used more than ``max_tokens`` tokens, or more than
  ``times_median`` times the run's median step so far (once it has 3 steps);
- ``upstream_errors``: a provider failed ``count`` times within ``minutes`` (every run's model
  calls count, from the store: an outage shows in every run);
- ``spend``: the run's spend passed ``share`` of ``budget.max_usd`` (or its tokens of
  ``max_tokens``).

``then`` is what follows: ``continue`` (the alert is recorded and announced, the run goes on),
``pause`` (the run waits for a person, as for an approval: approving the resume request goes on,
denying it or letting it expire stops the run) or ``freeze`` (risky tools are frozen: until a
person lifts the alert, every action of the task that is not a read needs a person's approval, in
this run and every later run of the task). Each kind fires at most once per run. Every alert is
kept in the store, sent to the signed webhook (``alert.raised``), listed on the console's Alerts
page and by ``corral alerts``.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ALERT_KINDS",
    "Alert",
    "AlertKind",
    "AlertPolicy",
    "AlertState",
    "Runbook",
    "SpendAlert",
    "TokenBurnAlert",
    "UpstreamErrorsAlert",
    "new_alert_id",
]

AlertKind = Literal["token_burn", "upstream_errors", "spend"]
ALERT_KINDS: tuple[AlertKind, ...] = ("token_burn", "upstream_errors", "spend")
Runbook = Literal["continue", "pause", "freeze"]
AlertState = Literal["open", "resumed", "stopped", "lifted", "acknowledged"]
"""``open``: raised and not dealt with (a freeze holds while open); ``resumed`` / ``stopped``: a
paused run's person decided; ``lifted``: a freeze ended; ``acknowledged``: seen."""


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    then: Runbook = Field("continue", description="continue, pause (for a person) or freeze")


class TokenBurnAlert(_Rule):
    """A planner step's tokens past a limit."""

    max_tokens: int | None = Field(None, ge=1, description="tokens of one step (in + out)")
    times_median: float | None = Field(
        5.0, gt=1, description="a step this many times the run's median step (after 3 steps)"
    )
    min_tokens: int = Field(
        2_000, ge=0, description="the median rule counts only steps of at least this many tokens"
    )


class UpstreamErrorsAlert(_Rule):
    """A provider failing again and again."""

    count: int = Field(3, ge=1, le=10_000)
    minutes: float = Field(10, gt=0, le=1440)


class SpendAlert(_Rule):
    """Spend (or tokens) near the run's cap."""

    share: float = Field(0.8, gt=0, le=1, description="of budget.max_usd / max_tokens")


class AlertPolicy(BaseModel):
    """A task's alerts (each on by default, announcing only: ``then: continue``)."""

    model_config = ConfigDict(extra="forbid")
    token_burn: TokenBurnAlert | None = Field(default_factory=TokenBurnAlert)
    upstream_errors: UpstreamErrorsAlert | None = Field(default_factory=UpstreamErrorsAlert)
    spend: SpendAlert | None = Field(default_factory=SpendAlert)


class Alert(BaseModel):
    """One alert a run raised."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    run_id: str
    task: str
    profile: str
    kind: AlertKind
    message: str
    detail: dict[str, Any] = Field(default_factory=dict)
    then: Runbook
    state: AlertState = "open"
    created_at: datetime
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    approval_id: str | None = Field(None, description="a paused run's resume request")


def new_alert_id() -> str:
    """A fresh alert id."""
    return "al-" + secrets.token_hex(5)
