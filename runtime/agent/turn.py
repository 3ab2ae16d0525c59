"""The goal loop's state: what lasts across turns (:class:`Agent`) and one turn (:class:`Turn`),
with the limits of the stop rules that count."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from runtime.agent.delta import DocumentWatch
from runtime.agent.evidence import Pages
from runtime.agent.prompt import Conversation
from runtime.agent.router import ModelRouter
from runtime.agent.toolset import Done, ExtractData, Look, Observe, Remember, tool_specs
from runtime.errors import StepFailedError
from runtime.models.types import Message, ModelResponse, ToolSpec
from runtime.run.context import RunContext
from runtime.run.runbook import Alarms
from tools import AnyAction, Observation

__all__ = [
    "FULL_PAGE_EVERY",
    "LOOP_REPEATS",
    "MAX_INVALID_CALLS",
    "MAX_INVALID_RESULTS",
    "Agent",
    "Call",
    "LoopStop",
    "Turn",
]

LOOP_REPEATS = 3
"""The same action on the same page state this often is a loop: the run stops."""
MAX_INVALID_CALLS = 3
"""Invalid tool calls (or answers without one) in a row that go back to the model."""
MAX_INVALID_RESULTS = 2
"""done() results failing the output schema that go back to the model."""

FULL_PAGE_EVERY = 8
"""Pages shown as changes in a row before the whole page is shown again (0: none, every page is
shown whole)."""

Call = AnyAction | Look | ExtractData | Observe | Remember | Done
"""A planner's tool call, parsed and validated."""


class LoopStop(StepFailedError):
    """A stop rule ended the run."""


@dataclass
class Agent:
    """One goal run's loop: its run, its models, and what it keeps across turns."""

    ctx: RunContext
    router: ModelRouter
    conversation: Conversation
    full_every: int = field(default_factory=lambda: FULL_PAGE_EVERY)
    """Show the whole page at least every this many pages (the others may be changes); 0 shows
    every page whole. Read from ``FULL_PAGE_EVERY`` when the run starts."""
    watch: DocumentWatch = field(default_factory=DocumentWatch)
    shown: str = ""
    """The page text last shown to the planner, in full or as changes."""
    deltas: int = 0
    """Pages shown as changes since the last whole page."""
    want_full: bool = False
    """The planner asked for the whole page (``observe``)."""
    specs: list[ToolSpec] = field(init=False)
    """The tools offered to the planner: all but those the run cannot carry out (``upload``
    without the task's upload folder)."""
    seen: Counter[str] = field(default_factory=Counter)
    """How often each action was chosen on each page state (loop detection)."""
    pages: Pages = field(default_factory=Pages)
    """The pages the planner was shown (what done()'s evidence may cite)."""
    alarms: Alarms = field(init=False)
    """The run's alerts (token burn, provider errors, spend) and their runbook."""
    invalid_calls: int = 0
    invalid_results: int = 0
    failures: int = 0
    """Failed actions in a row."""
    unrecorded: Coroutine[Any, Any, None] | None = None
    """The screenshot and record of the last action, not yet started: they start once the next
    turn has read the page (:meth:`start_record`), so the screenshot does not slow that read."""
    pending: asyncio.Task[None] | None = None
    """That record once started, running while the model is asked and the call checked (all only
    read the page); always awaited before the next action and on exit."""

    def __post_init__(self) -> None:
        self.alarms = Alarms(self.ctx)
        self.specs = tool_specs(() if self.ctx.task.upload_dir else ("upload",))

    @property
    def offered(self) -> list[str]:
        """The names of the tools offered to the planner (a call to another is refused)."""
        return [spec.name for spec in self.specs]

    def start_record(self) -> None:
        """Start the last action's record, if it is waiting."""
        if self.unrecorded is not None:
            self.pending, self.unrecorded = asyncio.create_task(self.unrecorded), None

    async def settle(self) -> None:
        """Wait for the last action's record (started now if it was waiting)."""
        self.start_record()
        if self.pending is not None:
            pending, self.pending = self.pending, None
            await pending


@dataclass
class Turn:
    """One turn: the page as observed, the planner's messages and its answer."""

    obs: Observation
    messages: list[Message]
    page: str = ""
    """The whole page as the planner knows it (redacted, with refs), even when it was sent
    only what changed."""
    full: bool = True
    """The page was sent in full (else as the lines that changed)."""
    response: ModelResponse | None = None
    note: dict[str, Any] = field(default_factory=dict)
    """For the step's record: the model that chose the call, the tool, the shadow's choice."""
