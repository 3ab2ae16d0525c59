"""What follows an alert in a run (the alerts themselves: :mod:`runtime.alerts`).

:class:`Alarms` watches a goal run after every planner answer: the step's tokens against the
task's ``token_burn`` rule, the providers' recent errors against ``upstream_errors``, the spend
against ``spend``. An alert is kept in the store, announced (signed webhook ``alert.raised``, the
run's events) and then its rule's ``then`` is carried out:

- ``continue``: nothing more;
- ``pause``: the run asks a person to resume it, through an approval request (the inbox, the
  webhook, ``corral approvals approve``, or ``corral alerts resume``), and waits as for any
  approval, its own time limit stopped; approved, it goes on; denied or expired, it stops;
- ``freeze``: the task's risky tools stay frozen while the alert is open: the gate
  (:mod:`runtime.run.gate`) sends every action that is not a read to a person, in this run and in
  every later run of the task, until someone lifts the alert (``corral alerts lift``).
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from policies import Verdict
from runtime.alerts import Alert, AlertKind, new_alert_id
from runtime.errors import StepFailedError
from runtime.run.state import RunEvent

if TYPE_CHECKING:
    from runtime.agent.router import ModelRouter
    from runtime.models.types import ModelResponse
    from runtime.run.context import RunContext

__all__ = ["ALERT_PAUSE_RULE", "FREEZE_RECHECK_S", "FREEZE_RULE", "Alarms", "frozen_verdict"]

ALERT_PAUSE_RULE = "alert-pause"
FREEZE_RULE = "alert-freeze"
FREEZE_RECHECK_S = 1.0
"""How long a run goes by the freeze it last read: one raised elsewhere, or a lift, is seen
within this (one raised by the run itself, at once)."""
_MEDIAN_AFTER = 3


@dataclass
class Alarms:
    """One goal run's alerts: each kind raised at most once."""

    ctx: RunContext
    raised: dict[AlertKind, Alert] = field(default_factory=dict)
    step_tokens: list[int] = field(default_factory=list)
    errors_seen: Counter[str] = field(default_factory=Counter)

    async def after_planner(self, response: ModelResponse, router: ModelRouter) -> None:
        """Check the rules after a planner answer; carry out what a raised alert says."""
        rules = self.ctx.task.alerts
        tokens = response.usage.input_tokens + response.usage.output_tokens
        burn = rules.token_burn
        if burn is not None and "token_burn" not in self.raised:
            median = (
                statistics.median(self.step_tokens)
                if len(self.step_tokens) >= _MEDIAN_AFTER
                else None
            )
            over_max = burn.max_tokens is not None and tokens > burn.max_tokens
            over_median = (
                burn.times_median is not None
                and median is not None
                and tokens >= burn.min_tokens
                and tokens > burn.times_median * median
            )
            if over_max or over_median:
                limit = (
                    f"max_tokens={burn.max_tokens}"
                    if over_max
                    else f"{burn.times_median:g}x the run's median step ({median:g})"
                )
                await self._raise(
                    "token_burn",
                    f"a planner step used {tokens} tokens, past {limit}",
                    {"tokens": tokens, "median": median, "max_tokens": burn.max_tokens},
                )
        self.step_tokens.append(tokens)
        await self._errors(router)
        await self._spend(router)

    async def _errors(self, router: ModelRouter) -> None:
        rule = self.ctx.task.alerts.upstream_errors
        new = {p: n for p, n in router.errors.items() if n > self.errors_seen[p]}
        self.errors_seen.update({p: n - self.errors_seen[p] for p, n in new.items()})
        if rule is None or "upstream_errors" in self.raised:
            return
        since = datetime.now(UTC) - timedelta(minutes=rule.minutes)
        for provider in sorted(new):
            failed = await self.ctx.store.alerts.provider_errors(provider, since)
            if failed >= rule.count:
                await self._raise(
                    "upstream_errors",
                    f"provider {provider} failed {failed} times in the last {rule.minutes:g} "
                    "minutes",
                    {"provider": provider, "errors": failed, "minutes": rule.minutes},
                )
                return

    async def _spend(self, router: ModelRouter) -> None:
        rule = self.ctx.task.alerts.spend
        if rule is None or "spend" in self.raised:
            return
        meter = router.meter
        if meter.max_usd and meter.usd >= rule.share * meter.max_usd:
            message = f"spent ${meter.usd:.4f} of max_usd={meter.max_usd:g}"
        elif meter.max_tokens and meter.tokens >= rule.share * meter.max_tokens:
            message = f"used {meter.tokens} tokens of max_tokens={meter.max_tokens}"
        else:
            return
        await self._raise(
            "spend",
            f"{message} (past {rule.share:.0%})",
            {"usd": round(meter.usd, 6), "tokens": meter.tokens, "share": rule.share},
        )

    async def _raise(self, kind: AlertKind, message: str, detail: dict[str, Any]) -> None:
        ctx = self.ctx
        rule = getattr(ctx.task.alerts, kind)
        alert = Alert(
            id=new_alert_id(),
            run_id=ctx.run_id,
            task=ctx.task.name,
            profile=ctx.profile,
            kind=kind,
            message=message,
            detail=detail,
            then=rule.then,
            created_at=datetime.now(UTC),
        )
        self.raised[kind] = alert
        await ctx.store.alerts.add(alert)
        ctx.freeze_seen = None  # a freeze holds from the next action on
        ctx.emit(RunEvent(ctx.run_id, ctx.profile, "alert", ctx.state.idx, text=message))
        await self._announce(alert)
        if alert.then == "pause":
            await self._pause(alert)

    async def _announce(self, alert: Alert) -> None:
        ctx = self.ctx
        if ctx.webhook is None:
            return
        event: dict[str, Any] = {
            "event": "alert.raised",
            **alert.model_dump(mode="json", exclude={"resolved_by", "resolved_at"}),
        }
        if alert.then == "freeze":
            event["lift"] = f"corral alerts lift {alert.id}"
        if ctx.public_url:
            event["url"] = f"{ctx.public_url}/console/alerts"
        await ctx.webhook.send(event)

    async def _pause(self, alert: Alert) -> None:
        """Wait for a person to resume the run; stop it if nobody does."""
        ctx = self.ctx
        asker = ctx.gate.asker
        why = f"alert {alert.id}: {alert.message}"
        request = await asker.create(
            after=lambda request_id: ctx.store.alerts.set_approval(alert.id, request_id),
            run_id=ctx.run_id,
            step_idx=ctx.state.idx,
            task_name=ctx.task.name,
            profile=ctx.profile,
            action={"kind": "resume", "alert": alert.id},
            summary=f"Resume the run after an alert ({alert.kind}): {alert.message}",
            reasons=[why, "approve to let the run go on; deny (or let it expire) to stop it"],
            fingerprint=f"alert:{alert.id}",
            idempotency_key=f"alert:{alert.id}",
            page_url=None,
            ttl_s=asker.ttl_s,
        )
        verdict = Verdict(
            decision="require_approval",
            reasons=[why],
            rules=[ALERT_PAUSE_RULE],
            gating=[ALERT_PAUSE_RULE],
        )
        decided = await asker.wait(request, verdict)
        now = datetime.now(UTC)
        if decided.status == "approved":
            held = ctx.tabs.session.lease
            if await ctx.approvals.claim(request.id, held.generation if held else None):
                await ctx.approvals.confirm(request.id, "resumed")
            await ctx.store.alerts.resolve(alert.id, "resumed", decided.decided_by or "?", now)
            return
        await ctx.store.alerts.resolve(alert.id, "stopped", decided.decided_by or "expiry", now)
        raise StepFailedError(
            f"stopped at alert {alert.id} ({alert.message}): the resume request was "
            f"{decided.status}" + (f" by {decided.decided_by}" if decided.decided_by else "")
        )


async def frozen_verdict(ctx: RunContext, verdict: Verdict, facts: dict[str, Any]) -> Verdict:
    """``verdict``, or a person's approval instead of ``allow`` for an action that is not a read
    while an open alert freezes the task's risky tools (an action that asks anyway says so too;
    a denial stays one)."""
    if verdict.decision == "deny" or facts.get("side_effect", "read") == "read":
        return verdict
    now = time.monotonic()
    seen = ctx.freeze_seen
    if seen is None or now - seen[0] >= FREEZE_RECHECK_S:
        seen = ctx.freeze_seen = (now, await ctx.store.alerts.freeze_of(ctx.task.name))
    freeze = seen[1]
    if freeze is None:
        return verdict
    return Verdict(
        decision="require_approval",
        reasons=[
            *verdict.reasons,
            f"risky tools are frozen by alert {freeze.id} ({freeze.message}): every action "
            f"that is not a read needs a person until it is lifted (corral alerts lift "
            f"{freeze.id})",
        ],
        rules=[*verdict.rules, FREEZE_RULE],
        gating=[*verdict.gating, FREEZE_RULE]
        if verdict.decision == "require_approval"
        else [FREEZE_RULE],
    )
