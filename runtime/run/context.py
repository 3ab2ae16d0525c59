"""One run's shared objects, travelling together.

The runner builds a :class:`RunContext` once, when the run's lease is granted and its session is
open, and every phase of a step takes it instead of a long list of parameters: the scripted steps
(``runner``), the act and record phases (``steps``), the check phase (``gate``, built here) and the
goal loop (``runtime.agent``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from policies import Policy
from profiles import CredentialLease, Redactor, WireCheck
from runtime.alerts import Alert
from runtime.approvals import Approvals
from runtime.records import RunSource
from runtime.run.effects import Submissions
from runtime.run.gate import Gate
from runtime.run.recorder import Recorder
from runtime.run.state import RunEvent, RunState
from runtime.store import Store
from runtime.task import Task
from runtime.webhook import Webhook
from tools import ActionContext, Tabs

if TYPE_CHECKING:
    # The goal loop's models; runtime.run does not depend on runtime.agent at import time.
    from runtime.agent.router import ModelRouter

__all__ = ["RunContext"]


@dataclass
class RunContext:
    """Everything one run's steps need: who and what runs, its browser, recorder, lease, gate,
    models, policy and the runtime's parts (store, approvals) it uses."""

    run_id: str
    profile: str
    task: Task
    """The task with the run's effective ``allowed_domains``."""
    values: dict[str, str]
    """The task's variables (``{{var:NAME}}``) after ``--var`` and the profile's vars."""
    state: RunState
    tabs: Tabs
    actions: ActionContext
    """What every action runs with: downloads folder, base URL, timeouts, secret values."""
    recorder: Recorder
    lease: CredentialLease
    """The run's secrets; its redactor is the run's own."""
    store: Store
    approvals: Approvals
    policy: Policy | None
    webhook: Webhook | None
    router: ModelRouter | None
    """The model roles of a goal-driven run; None for a scripted one."""
    emit: Callable[[RunEvent], None]
    approval_ttl_s: float
    timer: asyncio.Timeout | None = None
    """The run's time limit, paused while a person decides on an approval."""
    request_check: WireCheck | None = None
    """What a state-changing request sent during an action may be (``profiles.wire``); None
    lets nothing through that a person did not approve."""
    egress_note: str | None = None
    """How far the run may reach, for the record of its first step."""
    source: RunSource | None = None
    """The schedule fire (and attempt) that made this run, if any."""
    public_url: str | None = None
    """Where people reach this server's console (links in approval webhooks); None: unknown."""
    gate: Gate = field(init=False, repr=False)
    """The check phase of every step (built from this context)."""
    submissions: Submissions = field(default_factory=Submissions, repr=False)
    """A fire's submissions by idempotency key (:mod:`runtime.run.effects`)."""
    freeze_seen: tuple[float, Alert | None] | None = field(default=None, repr=False)
    """When the task's freeze was last read (monotonic), and what it was (runtime.run.runbook)."""

    def __post_init__(self) -> None:
        self.gate = Gate(self)

    @property
    def redactor(self) -> Redactor:
        """The run's redactor: its secrets and the codes it typed."""
        return self.lease.redactor

    @property
    def shows_secret(self) -> Callable[[str], bool] | None:
        """For screenshots: whether a text shows one of the run's secrets; None while the run
        holds none (then no page can show one, and the page's text need not be read)."""
        redactor = self.lease.redactor
        return redactor.found_in_text if redactor else None
