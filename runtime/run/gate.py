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
process dies; see :mod:`runtime.approvals`. The request and the wait are
:mod:`runtime.run.ask`'s; the summary a person reads, the fingerprint and the keys a denial sticks
to are :mod:`runtime.run.summary`'s.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin

from policies import ActionFacts, Match, Policy, Rule, Verdict, classify
from profiles import CorralError, origin_of
from runtime.errors import ApprovalDeniedError, StepFailedError
from runtime.records import StepRecord
from runtime.run.ask import ApprovalAsker, target_of
from runtime.run.effects import skipped_note
from runtime.run.runbook import frozen_verdict
from runtime.run.scripted import substitute_text
from runtime.run.steps import perform
from runtime.run.summary import denial_keys, fingerprint, sanitize_summary
from runtime.store.effects import EffectRow
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
    allowlist_facts,
    probe,
)

if TYPE_CHECKING:
    from runtime.run.context import RunContext

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


@dataclass
class Gated:
    """What the gate did with one action."""

    step: StepRecord
    failure: CorralError | None
    outcome: GateOutcome
    message: str = ""
    """For the model: why the action was not done."""


class Gate:
    """Classifies each action of one run and, when needed, waits for a person."""

    def __init__(self, ctx: RunContext, *, poll_s: float = 0.25) -> None:
        self.ctx = ctx
        self.policy = ctx.policy or Policy()
        self.asker = ApprovalAsker(
            ctx, self.policy, self.policy.approval_ttl_s or ctx.approval_ttl_s, poll_s=poll_s
        )
        # For the risk rules ("a form posting off the allowlist"): the task's list, else the
        # profile's; the egress proxy enforces both.
        own = ctx.tabs.session.profile.settings.allowed_domains
        self.allowed_domains = [
            substitute_text(d, ctx.values) for d in ctx.task.allowed_domains
        ] or list(own)
        start = ctx.task.start_url
        self.base_url = substitute_text(start, ctx.values) if start else None
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
            for i, t in enumerate(ctx.task.allow_targets)
        ]

    # --- check ----------------------------------------------------------------------------

    def _needs_facts(self, side_effect: str) -> bool:
        task, profile = self.ctx.task.name, self.ctx.profile
        return any(
            r.match.side_effects is None or side_effect in r.match.side_effects
            for r in self.policy.rules_for(task, profile)
        )

    def _timeout(self, action: AnyAction) -> float:
        # As long as the action itself would wait for its target.
        return float(getattr(action, "timeout_s", None) or self.ctx.task.step_timeout_s)

    def _secret_login(self, checked: Checked) -> bool:
        """The form holds a value typed from this run's own secret, and posts to an origin
        that secret may go to (a page can copy attributes, not our secrets' values)."""
        lease = self.ctx.lease
        action = checked.facts.get("form_action")
        if not action or not checked.fields:
            return False
        usable = {f"{{{{secret:{name}}}}}" for name in lease.available_on(origin_of(str(action)))}
        return any(value and lease.redactor.text(value) in usable for _, _, value in checked.fields)

    async def _probe(self, action: AnyAction, page: Page | None = None) -> Checked:
        # With `page`: a click of `extract`'s pagination, on the page the extraction reads.
        checked = await probe(
            self.ctx.tabs, action, self._timeout(action), self.allowed_domains, page
        )
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

    def _remember_denial(self, facts: dict[str, Any]) -> None:
        self.denied.update(denial_keys(facts))

    def _decide(self, facts: dict[str, Any]) -> Verdict:
        if facts.get("side_effect") == "submit" and self.denied.intersection(denial_keys(facts)):
            return Verdict(
                decision="deny", reasons=[STICKY_MESSAGE], rules=[STICKY_RULE], gating=[STICKY_RULE]
            )
        return classify(
            ActionFacts.model_validate({k: v for k, v in facts.items() if k in _FACT_KEYS}),
            self.policy,
            self.ctx.task.name,
            self.ctx.profile,
            self.allow_rules,
        )

    async def verdict(self, action: AnyAction, obs: Observation | None = None) -> Verdict:
        """The risk verdict for ``action`` on the page as it is now (waiting for its target)."""
        side_effect = str(type(action).side_effect)
        if action.kind in PROBED_KINDS or isinstance(action, Navigate):
            checked = await self._probe(action)
        elif not self._needs_facts(side_effect):
            page = await self.ctx.tabs.active()
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
        return await self._decide_now(checked.facts)

    async def _decide_now(self, facts: dict[str, Any]) -> Verdict:
        """The verdict, with the task's risky tools frozen while an alert says so."""
        return await frozen_verdict(self.ctx, self._decide(facts), facts)

    async def _vet_next(self, page: Page, spec: Locate) -> Checked:
        """Each click of ``extract``'s pagination, classified like any click; only an allowed
        one is done (nobody is asked in the middle of an extraction)."""
        click = Click.model_validate(spec.model_dump(exclude_none=True))
        checked = await self._probe(click, page)
        if checked.error is not None:
            raise checked.error
        verdict = await self._decide_now(checked.facts)
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

    async def carry_out(
        self,
        action: AnyAction,
        text: str,
        total: int,
        *,
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
        ctx, asker = self.ctx, self.asker
        note = {**(extra or {})}

        def bound(c: Checked) -> ActionContext:
            probed = c if action.kind in PROBED_KINDS else None
            return replace(ctx.actions, checked=probed, vet_next=self._vet_next)

        async def refuse(outcome: GateOutcome, message: str) -> Gated:
            # Not done, but recorded as a skipped step with the verdict and the decision.
            step, _ = await perform(ctx, action, text, total, skip=True, extra=note)
            return Gated(step, None, outcome, message)

        # Every step says what it reached and why it was (or was not) done.
        note["policy"] = verdict.model_dump()
        # What the page's snapshot said of the element (a model step), then what was checked.
        target = {**note.get("target", {}), **(target_of(action, checked.facts) or {})}
        if target:
            note["target"] = target
        if checked.box:
            note["box"] = checked.box
        submission = None
        if verdict.decision != "deny":
            # A schedule fire's submission: not again if an earlier attempt sent it (and nobody
            # is asked about it); see runtime.run.effects.
            begun = await ctx.submissions.begin(ctx, action, checked, ctx.state.idx)
            if isinstance(begun, EffectRow):
                note["idempotency"] = skipped_note(begun)
                step, _ = await perform(ctx, action, text, total, skip=True, extra=note)
                return Gated(step, None, "done")
            submission = begun
        if verdict.decision == "allow":
            step, failure = await perform(
                ctx, action, text, total, actions=bound(checked), extra=note, submission=submission
            )
            return Gated(step, failure, "done")
        if verdict.decision == "deny":
            if STICKY_RULE in verdict.rules:
                return await refuse("refused", STICKY_MESSAGE)
            self._remember_denial(checked.facts)
            why = "; ".join(verdict.reasons) or "denied by policy"
            return await refuse("refused", f"denied by policy ({why})")
        for _ in range(MAX_ASKS):
            request = await asker.request(action, verdict, checked)
            note["approval"] = {"id": request.id, "summary": request.summary}
            decided = await asker.wait(request, verdict)
            note["approval"].update(
                status=decided.status,
                decided_by=decided.decided_by,
                decided_at=decided.decided_at.isoformat() if decided.decided_at else None,
                comment=decided.comment,
                **({"webhook": asker.last_webhook} if asker.last_webhook else {}),
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
            if not now.ok or fingerprint(action, now, ctx.redactor) != request.fingerprint:
                await ctx.approvals.supersede(request.id, "the page or target changed")
                note.setdefault("superseded", []).append(request.id)
                if not now.ok:
                    return await refuse("refused", f"not done: {now.error}")
                checked = now
                verdict = await self._decide_now(now.facts)
                if verdict.decision == "allow":
                    continue  # asked again all the same: a person approved something else
                if verdict.decision == "deny":
                    return await refuse("refused", "; ".join(verdict.reasons))
                continue
            held = ctx.tabs.session.lease
            if not await ctx.approvals.claim(request.id, held.generation if held else None):
                # Closed meanwhile (the run was cancelled from elsewhere): never act on it.
                return await refuse("denied", f"approval {request.id} was closed")
            step, failure = await perform(
                ctx, action, text, total, actions=bound(now), extra=note, submission=submission
            )
            outcome = "ok" if failure is None else f"failed: {step.error}"
            await asyncio.shield(ctx.approvals.confirm(request.id, ctx.recorder.redact(outcome)))
            return Gated(step, failure, "done")
        raise StepFailedError(
            f"step {ctx.state.idx + 1} ({text}): the page kept changing while waiting for "
            f"approval ({MAX_ASKS} requests superseded)"
        )
