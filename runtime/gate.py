"""The check phase of every step, scripted or model-chosen: a verdict before the action runs, and
for actions that need a person, an approval request and a wait for the decision.

``allow`` acts at once. ``deny`` never acts. ``require_approval`` persists an
:class:`~runtime.approvals.ApprovalRequest` (summary, reasons, a screenshot with the target
outlined, expiry), announces it (webhook), sets the run to ``waiting_approval`` and polls the store
for a decision taken by anyone, in any process. An approval is bound to the exact action and the
page state it was asked on (the fingerprint): if the target or page changed meanwhile, the request
is superseded and a person is asked again. The approved action is claimed (``approved ->
executing``, one winner) before it runs and confirmed after, so it runs at most once, even if this
process dies; see :mod:`runtime.approvals`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from policies import ActionFacts, Policy, Verdict, classify
from profiles import CorralError, RunError
from tools import (
    ActionContext,
    AnyAction,
    Navigate,
    Observation,
    Tabs,
    action_target,
    highlighted_screenshot,
)
from tools.facts import action_facts

from .approvals import ApprovalRequest, Approvals, new_approval_id
from .errors import StepFailedError
from .recorder import Recorder
from .records import StepRecord
from .scripted import substitute_text
from .steps import RunEvent, RunState, act
from .store import Store
from .webhook import Webhook

__all__ = ["ApprovalDeniedError", "Gate", "GateOutcome", "Gated"]

GateOutcome = Literal["done", "denied", "expired", "refused"]
MAX_ASKS = 3
"""How often one action is asked again because its page kept changing."""
_VERBS = {
    "click": "Click",
    "fill": "Fill",
    "select": "Select in",
    "press": "Press a key in",
    "upload": "Upload a file to",
    "download": "Download",
    "hover": "Hover",
}


class ApprovalDeniedError(RunError):
    """A gated action was denied (by a person, by policy, or by expiry); the run stops."""

    exit_code = 3


@dataclass
class Gated:
    """What the gate did with one action."""

    step: StepRecord
    failure: CorralError | None
    outcome: GateOutcome
    message: str = ""
    """For the model: why the action was not done."""


def _link_facts(action: AnyAction, obs: Observation, base: dict[str, Any]) -> dict[str, Any] | None:
    """Facts for a link straight from the snapshot the model saw: a link goes somewhere, its
    name is all the rules look at, and asking the page costs a round trip per action."""
    target = action_target(action)
    if target is None or target.ref is None:
        return None
    line = re.search(
        rf'^\s*-\s+link(?:\s+"(?P<name>(?:[^"\\]|\\.)*)")?[^\n]*\[ref={re.escape(target.ref)}\]',
        obs.snapshot,
        re.MULTILINE,
    )
    if line is None:
        return None
    return {**base, "role": "link", "name": line["name"]}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _where(url: str | None) -> str:
    parts = urlsplit(url or "")
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def summarize(action: AnyAction, facts: dict[str, Any]) -> str:
    """One line for a person: ``Click 'Pay $120.00' on /invoices/1042``."""
    if isinstance(action, Navigate):
        return f"Open {facts.get('target_url') or action.url}"
    target = action_target(action)
    name = facts.get("name") or (target.describe() if target else action.kind)
    verb = _VERBS.get(action.kind, action.kind.title())
    return f"{verb} '{name}' on {_where(facts.get('page_url'))}"


class Gate:
    """Classifies each action of one run and, when needed, waits for a person."""

    def __init__(
        self,
        *,
        state: RunState,
        tabs: Tabs,
        recorder: Recorder,
        store: Store,
        approvals: Approvals,
        policy: Policy | None,
        ttl_s: float,
        webhook: Webhook | None = None,
        poll_s: float = 0.25,
    ) -> None:
        self.state = state
        self.tabs = tabs
        self.recorder = recorder
        self.store = store
        self.approvals = approvals
        self.policy = policy or Policy()
        self.ttl_s = self.policy.approval_ttl_s or ttl_s
        self.webhook = webhook
        self.poll_s = poll_s
        # For the risk rules ("a form posting off the allowlist"): the task's list, else the
        # profile's; the egress proxy enforces both.
        own = tabs.session.profile.settings.allowed_domains
        self.allowed_domains = [
            substitute_text(d, state.values) for d in state.task.allowed_domains
        ] or list(own)
        self.auto_used: dict[str, int] = {}
        self.last_webhook: str | None = None

    # --- check ----------------------------------------------------------------------------

    def _needs_facts(self, side_effect: str) -> bool:
        task, profile = self.state.task.name, self.state.profile
        return any(
            r.match.side_effects is None or side_effect in r.match.side_effects
            for r in self.policy.rules_for(task, profile)
        )

    async def _facts(self, action: AnyAction) -> dict[str, Any]:
        return await action_facts(self.tabs, action, self.allowed_domains, 1.0)

    async def verdict(self, action: AnyAction, obs: Observation | None = None) -> Verdict:
        """The risk verdict for ``action`` on the page as it is now."""
        side_effect = str(type(action).side_effect)
        page = await self.tabs.active()
        base = {
            "kind": action.kind,
            "side_effect": side_effect,
            "page_url": obs.url if obs else page.url,
            "allowed_domains": self.allowed_domains,
        }
        if not self._needs_facts(side_effect):
            facts = base  # no rule looks at this kind of action: skip the page round trip
        else:
            facts = (obs and _link_facts(action, obs, base)) or await self._facts(action)
        return classify(
            ActionFacts.model_validate(facts), self.policy, self.state.task.name, self.state.profile
        )

    # --- act ------------------------------------------------------------------------------

    async def act(
        self,
        action: AnyAction,
        ctx: ActionContext,
        text: str,
        total: int,
        obs: Observation | None = None,
        extra: dict[str, Any] | None = None,
        verdict: Verdict | None = None,
    ) -> Gated:
        """Check ``action`` (unless its ``verdict`` is given), then do it, ask for it, or refuse
        it; the step is not yet recorded."""
        verdict = verdict or await self.verdict(action, obs)
        note = {**(extra or {})}

        async def refuse(outcome: GateOutcome, message: str) -> Gated:
            # Not done, but recorded as a skipped step with the verdict and the decision.
            step, _ = await act(
                self.state, action, self.tabs, ctx, text, total, skip=True, extra=note
            )
            return Gated(step, None, outcome, message)

        if verdict.decision != "allow":
            note["policy"] = verdict.model_dump()
        if verdict.decision == "allow":
            step, failure = await act(self.state, action, self.tabs, ctx, text, total, extra=note)
            return Gated(step, failure, "done")
        if verdict.decision == "deny":
            why = "; ".join(verdict.reasons) or "denied by policy"
            return await refuse("refused", f"denied by policy ({why})")
        for _ in range(MAX_ASKS):
            facts = await self._facts(action)
            request = await self._request(action, verdict, facts)
            note["approval"] = {"id": request.id, "summary": request.summary}
            decided = await self._wait(request, verdict)
            note["approval"].update(
                status=decided.status,
                decided_by=decided.decided_by,
                comment=decided.comment,
                **({"webhook": self.last_webhook} if self.last_webhook else {}),
            )
            if decided.status == "expired":
                return await refuse(
                    "expired",
                    f"the approval request {decided.id} expired with nobody deciding "
                    "(expiry means deny)",
                )
            if decided.status != "approved":
                comment = decided.comment or "no comment"
                return await refuse(
                    "denied", f"denied by a person ({decided.decided_by or '?'}): {comment}"
                )
            # Bound to the exact action and page state: a changed page is asked about again.
            now = await self._facts(action)
            if self._fingerprint(action, now) != request.fingerprint:
                await self.approvals.supersede(request.id, "the page or target changed")
                note.setdefault("superseded", []).append(request.id)
                continue
            if not await self.approvals.claim(request.id):
                # Closed meanwhile (the run was cancelled from elsewhere): never act on it.
                return await refuse("denied", f"approval {request.id} was closed")
            step, failure = await act(self.state, action, self.tabs, ctx, text, total, extra=note)
            outcome = "ok" if failure is None else f"failed: {step.error}"
            await asyncio.shield(self.approvals.confirm(request.id, self.recorder.redact(outcome)))
            return Gated(step, failure, "done")
        raise StepFailedError(
            f"step {self.state.idx + 1} ({text}): the page kept changing while waiting for "
            f"approval ({MAX_ASKS} requests superseded)"
        )

    # --- ask ------------------------------------------------------------------------------

    def _fingerprint(self, action: AnyAction, facts: dict[str, Any]) -> str:
        keep = ("page_url", "role", "name", "nearby_text", "form_method", "form_action")
        return _digest(
            {
                "action": action.model_dump(mode="json", by_alias=True, exclude_none=True),
                **{k: facts.get(k) for k in (*keep, "target_url")},
            }
        )

    def _idempotency_key(self, action: AnyAction, facts: dict[str, Any]) -> str:
        # The same thing done to the same target on the same page, whatever the run.
        keep = ("role", "name", "form_action", "target_url")
        return _digest(
            {
                "task": self.state.task.name,
                "profile": self.state.profile,
                "kind": action.kind,
                "where": _where(facts.get("page_url")),
                **{k: facts.get(k) for k in keep},
            }
        )

    async def _request(
        self, action: AnyAction, verdict: Verdict, facts: dict[str, Any]
    ) -> ApprovalRequest:
        redact = self.recorder.redact
        state = self.state
        request_id = new_approval_id()
        # The screenshot first: a request is never seen without it.
        redactor = state.lease.redactor if state.lease else None
        shot = await highlighted_screenshot(
            self.tabs, action, redactor.found_in_text if redactor else None
        )
        path = None
        if shot is not None:
            path = self.recorder.run_dir / "approvals" / f"{request_id}.jpg"
            self.recorder.write_file(path, shot)
            await self.recorder.artifact("approval", path, state.idx)
        return await self.approvals.create(
            request_id=request_id,
            screenshot=str(path) if path else None,
            run_id=state.run_id,
            step_idx=state.idx,
            task_name=state.task.name,
            profile=state.profile,
            action=self.recorder.scrub(
                action.model_dump(mode="json", by_alias=True, exclude_none=True)
            ),
            summary=redact(summarize(action, facts)),
            reasons=verdict.reasons,
            fingerprint=self._fingerprint(action, facts),
            idempotency_key=self._idempotency_key(action, facts),
            page_url=redact(str(facts.get("page_url") or "")) or None,
            ttl_s=self.ttl_s,
        )

    async def _auto(self, request: ApprovalRequest, verdict: Verdict) -> bool:
        if any(p["status"] in ("unconfirmed", "executing") for p in request.prior):
            return False  # an earlier one may or may not have happened: a person must look
        by_person = [
            p
            for p in request.prior
            if p["status"] == "executed" and not str(p["decided_by"]).startswith("policy:")
        ]
        for entry in self.policy.auto_approve:
            if not entry.covers(verdict, self.state.task.name, self.state.profile):
                continue
            if len(by_person) < entry.after_approvals:
                continue
            if self.auto_used.get(entry.name, 0) >= entry.max_per_run:
                continue
            self.auto_used[entry.name] = self.auto_used.get(entry.name, 0) + 1
            await self.approvals.auto_approve(request.id, entry.name)
            return True
        return False

    async def _wait(self, request: ApprovalRequest, verdict: Verdict) -> ApprovalRequest:
        """The decision on ``request``: a policy's auto-approval, or a person's, or expiry."""
        self.last_webhook = None
        if await self._auto(request, verdict):
            await self.store.set_run_status(self.state.run_id, "running")
            return await self.approvals.get(request.id)
        state = self.state
        state.emit(
            RunEvent(
                state.run_id,
                state.profile,
                "approval",
                state.idx + 1,
                text=f"waiting for approval {request.id}: {request.summary}",
                status="waiting_approval",
            )
        )
        if self.webhook is not None:
            delivered = await self.webhook.send(
                {
                    "event": "approval.requested",
                    **request.model_dump(
                        mode="json",
                        include={
                            "id",
                            "run_id",
                            "step_idx",
                            "task_name",
                            "profile",
                            "summary",
                            "reasons",
                            "page_url",
                            "created_at",
                            "expires_at",
                            "prior",
                        },
                    ),
                    "approve": f"corral approvals approve {request.id}",
                    "deny": f"corral approvals deny {request.id} --comment TEXT",
                }
            )
            self.last_webhook = delivered
        started = time.monotonic()
        decided: ApprovalRequest | None = None
        # A person's time is not the run's: the run's own time limit stops while it waits.
        timer = state.timer
        deadline = timer.when() if timer is not None else None
        if timer is not None and deadline is not None:
            timer.reschedule(None)
        try:
            while decided is None:
                current = await self.approvals.get(request.id, with_prior=False)
                if current.status != "pending":
                    decided = current
                elif current.expires_at <= self.approvals.now():
                    await self.approvals.expire(request.id)
                else:
                    await asyncio.sleep(self.poll_s)
        finally:
            if decided is None:
                # Cancelled or timed out while waiting: nothing will act on this request.
                await asyncio.shield(
                    self.approvals.cancel(request.id, "the run ended while waiting")
                )
            else:
                await asyncio.shield(self.store.set_run_status(state.run_id, "running"))
            if timer is not None and deadline is not None:
                timer.reschedule(deadline + (time.monotonic() - started))
        return decided
