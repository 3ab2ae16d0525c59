"""The check phase of every step, scripted or model-chosen: a verdict before the action runs, and
for actions that need a person, an approval request and a wait for the decision.

Every action that can activate, submit or change something is first probed
(:func:`tools.facts.probe`): the element and form it would really reach, with facts the page cannot
forge, waiting for the target as the action would; if they cannot be read, the action is not done.
The action then reaches exactly the node that was checked. A submission no rule places is unknown
and asks; a denial (policy, person, expiry) sticks to its target and form for the rest of the run.

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
import html
import json
import re
import time
import unicodedata
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

from policies import ActionFacts, Match, Policy, Rule, Verdict, classify
from profiles import CorralError, RunError, origin_of
from runtime.approvals import ApprovalRequest, Approvals, new_approval_id
from runtime.errors import StepFailedError
from runtime.records import StepRecord
from runtime.run.recorder import Recorder
from runtime.run.scripted import substitute_text
from runtime.run.steps import RunEvent, RunState, act
from runtime.store import Store
from runtime.webhook import Webhook
from tools import (
    PROBED_KINDS,
    ActionContext,
    ActionError,
    AnyAction,
    Checked,
    Click,
    Locate,
    Navigate,
    Observation,
    Page,
    Press,
    Tabs,
    action_target,
    allowlist_facts,
    highlighted_screenshot,
    probe,
)

__all__ = [
    "STICKY_MESSAGE",
    "ApprovalDeniedError",
    "Gate",
    "GateOutcome",
    "Gated",
    "sanitize_summary",
]

GateOutcome = Literal["done", "denied", "expired", "refused"]
MAX_ASKS = 3
"""How often one action is asked again because its page kept changing."""
STICKY_RULE = "sticky-denial"
STICKY_MESSAGE = "refused: an earlier action on this target/form was denied in this run"
_FACT_KEYS = tuple(ActionFacts.model_fields)
# ANSI/VT escape sequences (CSI, OSC, and two-character escapes), then any other control or
# format character (bidi overrides included): nothing in a summary may drive a terminal.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)?|\x1b[@-_]|\x9b[0-?]*[ -/]*[@-~]"
)
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


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _where(url: str | None) -> str:
    parts = urlsplit(url or "")
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def sanitize_summary(text: str, *, for_html: bool = False) -> str:
    """``text`` safe to show a person: no escape sequences or control characters (a terminal),
    and with ``for_html`` HTML-escaped too. Rich markup is escaped where rich prints it."""
    text = _ESCAPES.sub("", text)
    text = "".join(
        " " if ch in "\t\n\r" else ch
        for ch in text
        if ch in "\t\n\r" or unicodedata.category(ch) not in ("Cc", "Cf", "Co", "Cs")
    )
    text = re.sub(r"\s+", " ", text).strip()
    return html.escape(text) if for_html else text


def summarize(action: AnyAction, facts: dict[str, Any]) -> str:
    """One line for a person: ``Click 'Pay $120.00' on /invoices/1042``, sanitized."""
    if isinstance(action, Navigate):
        return sanitize_summary(f"Open {facts.get('target_url') or action.url}")
    target = action_target(action)
    name = facts.get("name") or (target.describe() if target else "the focused element")
    verb = _VERBS.get(action.kind, action.kind.title())
    if isinstance(action, Press):
        verb = f"Press {action.key} on"
    return sanitize_summary(f"{verb} '{name}' on {_where(facts.get('page_url'))}")


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
        start = state.task.start_url
        self.base_url = substitute_text(start, state.values) if start else None
        self.auto_used: dict[str, int] = {}
        self.last_webhook: str | None = None
        self.denied: set[str] = set()
        """Targets and forms denied in this run (by policy, a person, or expiry): sticky."""
        self._probed: tuple[AnyAction, Checked] | None = None
        # A task's allow_targets place those targets as known (a risky rule still asks).
        self.allow_rules = [
            Rule(
                name=f"task-allow-targets.{i}",
                verdict="allow",
                reason="allowed by the task's allow_targets",
                match=Match(
                    side_effects=["submit"],
                    name=t.name,
                    roles=[t.role] if t.role else None,
                ),
            )
            for i, t in enumerate(state.task.allow_targets)
        ]

    # --- check ----------------------------------------------------------------------------

    def _needs_facts(self, side_effect: str) -> bool:
        task, profile = self.state.task.name, self.state.profile
        return any(
            r.match.side_effects is None or side_effect in r.match.side_effects
            for r in self.policy.rules_for(task, profile)
        )

    def _timeout(self, action: AnyAction) -> float:
        # As long as the action itself would wait for its target.
        return float(getattr(action, "timeout_s", None) or self.state.task.step_timeout_s)

    def _secret_login(self, checked: Checked) -> bool:
        """The form holds a value typed from this run's own secret, and posts to an origin
        that secret may go to (a page can copy attributes, not our secrets' values)."""
        lease = self.state.lease
        action = checked.facts.get("form_action")
        if lease is None or not action or not checked.fields:
            return False
        usable = {f"{{{{secret:{name}}}}}" for name in lease.available_on(origin_of(str(action)))}
        return any(value and lease.redactor.text(value) in usable for _, _, value in checked.fields)

    async def _probe(self, action: AnyAction, page: Page | None = None) -> Checked:
        # With `page`: a click of `extract`'s pagination, on the page the extraction reads.
        checked = await probe(self.tabs, action, self._timeout(action), self.allowed_domains, page)
        facts = checked.facts
        if isinstance(action, Navigate):
            # Where the navigation really goes: relative URLs resolve as the action resolves them.
            facts["target_url"] = urljoin(self.base_url or checked.page.url, action.url)
        target_url = str(facts.get("target_url") or "")
        if facts.get("role") == "link" and target_url.lower().startswith("javascript:"):
            # Runs page script instead of going anywhere: a scripted control.
            facts.update(target_url=None, scripted=True)
        facts.update(allowlist_facts(facts, self.allowed_domains))
        if checked.ok and self._secret_login(checked):
            facts["secret_login"] = True
        return checked

    def _keys(self, facts: dict[str, Any]) -> list[str]:
        """What a denial sticks to: the element (role, name, form target or link) and its form."""
        keys = []
        if facts.get("role") or facts.get("name"):
            where = facts.get("form_action") or facts.get("target_url")
            keys.append("target:" + _digest([facts.get("role"), facts.get("name"), where]))
        if facts.get("form_action"):
            keys.append(
                "form:" + _digest([facts.get("form_action"), facts.get("form_method") or "get"])
            )
        return keys

    def _remember_denial(self, facts: dict[str, Any]) -> None:
        self.denied.update(self._keys(facts))

    def _decide(self, facts: dict[str, Any]) -> Verdict:
        if facts.get("side_effect") == "submit" and self.denied.intersection(self._keys(facts)):
            return Verdict(
                decision="deny", reasons=[STICKY_MESSAGE], rules=[STICKY_RULE], gating=[STICKY_RULE]
            )
        return classify(
            ActionFacts.model_validate({k: v for k, v in facts.items() if k in _FACT_KEYS}),
            self.policy,
            self.state.task.name,
            self.state.profile,
            self.allow_rules,
        )

    async def verdict(self, action: AnyAction, obs: Observation | None = None) -> Verdict:
        """The risk verdict for ``action`` on the page as it is now (waiting for its target)."""
        side_effect = str(type(action).side_effect)
        if action.kind in PROBED_KINDS or isinstance(action, Navigate):
            checked = await self._probe(action)
        elif not self._needs_facts(side_effect):
            page = await self.tabs.active()
            # No rule looks at this kind of action: skip the page round trip.
            checked = Checked(
                page,
                {
                    "kind": action.kind,
                    "side_effect": side_effect,
                    "page_url": obs.url if obs else page.url,
                },
            )
        else:
            checked = await self._probe(action)
        self._probed = (action, checked)
        if not checked.ok:
            # Not readable: the action is not done; it fails with the reason (see act()).
            return Verdict(decision="allow", reasons=[str(checked.error)])
        return self._decide(checked.facts)

    async def _vet_next(self, page: Page, spec: Locate) -> Checked:
        """Each click of ``extract``'s pagination, classified like any click; only an allowed
        one is done (nobody is asked in the middle of an extraction)."""
        click = Click.model_validate(spec.model_dump(exclude_none=True))
        checked = await self._probe(click, page)
        if checked.error is not None:
            raise checked.error
        verdict = self._decide(checked.facts)
        if verdict.decision != "allow":
            if verdict.decision == "deny":
                self._remember_denial(checked.facts)
            name = sanitize_summary(str(checked.facts.get("name") or spec.describe()))
            raise ActionError(
                f"extract: pagination stopped: the 'next' control '{name}' was not clicked: "
                f"{'; '.join(verdict.reasons)} ({verdict.decision}); extract never clicks "
                "a control that needs approval"
            )
        return checked

    def _take(self, action: AnyAction) -> Checked | None:
        probed, self._probed = self._probed, None
        if probed is not None and probed[0] is action:
            return probed[1]
        return None

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
        it; the step is not yet recorded. The action reaches exactly what was checked."""
        checked = self._take(action) if verdict is not None else None
        if checked is None:
            verdict = await self.verdict(action, obs)
            checked = self._take(action)
        assert verdict is not None and checked is not None
        note = {**(extra or {})}

        def bound(c: Checked) -> ActionContext:
            probed = c if action.kind in PROBED_KINDS else None
            return replace(ctx, checked=probed, vet_next=self._vet_next)

        async def refuse(outcome: GateOutcome, message: str) -> Gated:
            # Not done, but recorded as a skipped step with the verdict and the decision.
            step, _ = await act(
                self.state, action, self.tabs, ctx, text, total, skip=True, extra=note
            )
            return Gated(step, None, outcome, message)

        if verdict.decision != "allow":
            note["policy"] = verdict.model_dump()
        if verdict.decision == "allow":
            step, failure = await act(
                self.state, action, self.tabs, bound(checked), text, total, extra=note
            )
            return Gated(step, failure, "done")
        if verdict.decision == "deny":
            if STICKY_RULE in verdict.rules:
                return await refuse("refused", STICKY_MESSAGE)
            self._remember_denial(checked.facts)
            why = "; ".join(verdict.reasons) or "denied by policy"
            return await refuse("refused", f"denied by policy ({why})")
        for _ in range(MAX_ASKS):
            request = await self._request(action, verdict, checked)
            note["approval"] = {"id": request.id, "summary": request.summary}
            decided = await self._wait(request, verdict)
            note["approval"].update(
                status=decided.status,
                decided_by=decided.decided_by,
                comment=decided.comment,
                **({"webhook": self.last_webhook} if self.last_webhook else {}),
            )
            if decided.status == "expired":
                self._remember_denial(checked.facts)
                return await refuse(
                    "expired",
                    f"the approval request {decided.id} expired with nobody deciding "
                    "(expiry means deny)",
                )
            if decided.status != "approved":
                self._remember_denial(checked.facts)
                comment = sanitize_summary(decided.comment or "no comment")
                return await refuse(
                    "denied", f"denied by a person ({decided.decided_by or '?'}): {comment}"
                )
            # Bound to what will really be sent: the page is checked again right before the
            # action, and the action reaches the node of this last check.
            now = await self._probe(action)
            if not now.ok or self._fingerprint(action, now) != request.fingerprint:
                await self.approvals.supersede(request.id, "the page or target changed")
                note.setdefault("superseded", []).append(request.id)
                if not now.ok:
                    return await refuse("refused", f"not done: {now.error}")
                checked = now
                verdict = self._decide(now.facts)
                if verdict.decision == "allow":
                    continue  # asked again all the same: a person approved something else
                if verdict.decision == "deny":
                    return await refuse("refused", "; ".join(verdict.reasons))
                continue
            if not await self.approvals.claim(request.id):
                # Closed meanwhile (the run was cancelled from elsewhere): never act on it.
                return await refuse("denied", f"approval {request.id} was closed")
            step, failure = await act(
                self.state, action, self.tabs, bound(now), text, total, extra=note
            )
            outcome = "ok" if failure is None else f"failed: {step.error}"
            await asyncio.shield(self.approvals.confirm(request.id, self.recorder.redact(outcome)))
            return Gated(step, failure, "done")
        raise StepFailedError(
            f"step {self.state.idx + 1} ({text}): the page kept changing while waiting for "
            f"approval ({MAX_ASKS} requests superseded)"
        )

    # --- ask ------------------------------------------------------------------------------

    def _fingerprint(self, action: AnyAction, checked: Checked) -> str:
        facts = checked.facts
        keep = (
            "page_url",
            "role",
            "name",
            "nearby_text",
            "form_method",
            "form_action",
            "target_url",
            "submits_form",
            "scripted",
            "side_effect",
        )
        redactor = self.state.lease.redactor if self.state.lease else None
        # What will really be sent: every field's name and value (secrets as placeholders).
        fields = [
            [name, kind, redactor.text(value) if redactor and value else value]
            for name, kind, value in checked.fields
        ]
        return _digest(
            {
                "action": action.model_dump(mode="json", by_alias=True, exclude_none=True),
                **{k: facts.get(k) for k in keep},
                "fields": fields,
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
        self, action: AnyAction, verdict: Verdict, checked: Checked
    ) -> ApprovalRequest:
        facts = checked.facts
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
            fingerprint=self._fingerprint(action, checked),
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
