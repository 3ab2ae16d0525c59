"""What a run reports while it goes (``RunEvent``) and what it has done so far (``RunState``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runtime.records import StepStatus

__all__ = ["SERVER_STOPPED", "RunEvent", "RunState"]

SERVER_STOPPED = "cancelled: the server stopped"
"""How a run cancelled by a server's drain is told so (the start of the cancel message): a
scheduled run then keeps its waiting approval request for the fire's next attempt."""


@dataclass(frozen=True)
class RunEvent:
    """Progress of a run, for live views."""

    run_id: str
    profile: str
    kind: str  # started | step | approval | alert | finished
    step: int = 0
    total: int = 0
    text: str = ""
    status: str = ""


@dataclass
class RunState:
    """What a run has done so far: its step counter and counts, extracts, result, shadow score."""

    idx: int = 0
    """The index of the next step."""
    counts: dict[StepStatus, int] = field(
        default_factory=lambda: {"ok": 0, "skipped": 0, "failed": 0}
    )
    extracted: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    has_result: bool = False
    evidence: list[dict[str, Any]] | None = None
    """Where each field of done()'s result came from (runtime.agent.evidence)."""
    notes: list[dict[str, Any]] = field(default_factory=list)
    """Notes the planner proposed (scope, text, step): kept if the run succeeds."""
    restored: bool = False
    """The session started from the profile's saved state."""
    shadow_agreed: int = 0
    shadow_total: int = 0

    def output(self, name: str | None) -> Any:
        """The run's result: done()'s result, else the extract ``name``, else all extracts."""
        if self.has_result:
            return self.result
        if name is not None:
            return self.extracted.get(name)
        return self.extracted or None
