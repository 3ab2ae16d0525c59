"""From a run's rows to a :class:`~runtime.review.model.RunReview`: the one place that reads step
details, model calls and approval requests together."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from profiles import redact_strings
from runtime.approvals import ApprovalRequest
from runtime.records import ArtifactRecord, ModelCallRecord, RunRecord, StepRecord
from runtime.review.model import (
    ApprovalView,
    Box,
    CostLine,
    ModelAttempt,
    RunReview,
    RunSummary,
    StepView,
    TargetView,
)

__all__ = ["action_words", "build_review", "hit_cap"]

# Detail keys a StepView reads into its own fields; the rest is kept in ``extra``.
_READ = frozenset(
    {
        "target",
        "box",
        "tool",
        "call",
        "reason",
        "model",
        "policy",
        "approval",
        "blocked_requests",
        "blocked_more",
        "held_requests",
        "held_more",
        "refused_navigations",
        "excerpt",
        "shadow",
        "shadow_agrees",
    }
)
_BUDGET_PREFIX = "budget:"


def _quoted(value: Any) -> str:
    return f"'{value}'"


def _locator_words(spec: dict[str, Any]) -> str:
    if spec.get("role"):
        return f"{spec['role']} {_quoted(spec['name'])}" if spec.get("name") else str(spec["role"])
    return " ".join(
        f"{k}={_quoted(spec[k])}"
        for k in ("label", "text", "placeholder", "test_id", "css", "ref")
        if isinstance(spec.get(k), str)
    )


def action_words(kind: str, action: dict[str, Any], target: TargetView | None) -> str:
    """An action in words: ``Click button 'Pay $120.00'``, ``Fill textbox 'Email' with
    '{{secret:email}}'`` (values as recorded: redacted)."""
    what = target.words() if target else ""
    if not what:
        # An extract's element is nested (table: or text:); other actions carry it themselves.
        nested = [action[k] for k in ("table", "text") if isinstance(action.get(k), dict)]
        what = _locator_words(nested[0] if nested else action)
    on = f" {what}" if what else ""
    if kind == "navigate":
        return f"Open {action.get('url', '')}"
    if kind == "fill":
        return f"Fill{on} with {_quoted(action.get('value', ''))}"
    if kind == "select":
        return f"Select {_quoted(action.get('option', ''))} in{on}"
    if kind == "press":
        return f"Press {action.get('key', '')}" + (f" on{on}" if on else "")
    if kind == "scroll":
        return f"Scroll {action.get('direction', 'down')}" + (f" to{on}" if on else "")
    if kind == "wait_for":
        if action.get("url"):
            return f"Wait for the URL {action['url']}"
        return f"Wait for{on} to be {action.get('state', 'visible')}" if on else "Wait"
    if kind == "back":
        return "Go back"
    if kind == "switch_tab":
        return f"Switch to tab {action.get('index')}"
    if kind == "upload":
        return f"Upload {', '.join(map(str, action.get('files', [])))} to{on}"
    if kind == "extract":
        return f"Extract {action.get('as', 'data')}" + (f" from{on}" if on else "")
    return f"{kind.replace('_', ' ').capitalize()}{on}"


def _attempt(call: ModelCallRecord) -> ModelAttempt:
    return ModelAttempt(
        role=call.role,
        model=f"{call.provider}:{call.model}",
        outcome=call.outcome,
        reason=call.reason,
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        cached_tokens=call.cached_tokens,
        cost_usd=call.cost_usd,
        latency_ms=call.latency_ms,
    )


def _approval(request: ApprovalRequest) -> ApprovalView:
    return ApprovalView(
        id=request.id,
        summary=request.summary,
        status=request.status,
        reasons=request.reasons,
        decided_by=request.decided_by,
        decided_at=request.decided_at,
        comment=request.comment,
        fields=request.fields or [],
        screenshot=request.screenshot,
    )


def _target(detail: dict[str, Any], action: dict[str, Any]) -> TargetView | None:
    given = detail.get("target") or {}
    if not isinstance(given, dict):
        given = {}
    ref = given.get("ref") or action.get("ref")
    role = given.get("role") or action.get("role")
    name = given.get("name") or action.get("name")
    if not (ref or role or name):
        return None
    return TargetView(ref=ref, role=role, name=name)


def _held(entries: Iterable[dict[str, Any]]) -> list[str]:
    return [
        f"{h.get('method', '?')} {urlsplit(str(h.get('url', ''))).path}: {h.get('reason', '')}"
        for h in entries
    ]


def _step(
    step: StepRecord, calls: list[ModelCallRecord], request: ApprovalRequest | None
) -> StepView:
    detail = step.detail if isinstance(step.detail, dict) else {}
    target = _target(detail, step.action)
    attempts = [_attempt(c) for c in calls]
    policy = detail.get("policy") or {}
    approval = _approval(request) if request is not None else None
    noted = detail.get("approval")
    if approval is None and isinstance(noted, dict) and noted.get("id"):
        approval = ApprovalView(
            id=str(noted["id"]),
            summary=str(noted.get("summary", "")),
            status=str(noted.get("status", "pending")),
            decided_by=noted.get("decided_by"),
            decided_at=noted.get("decided_at"),
            comment=noted.get("comment"),
        )
    answered = [a for a in attempts if a.outcome == "ok" and a.role == "planner"] or [
        a for a in attempts if a.outcome == "ok"
    ]
    box = detail.get("box")
    blocked = [
        f"{b.get('host')}:{b.get('port')}" if b.get("port") else str(b.get("host"))
        for b in detail.get("blocked_requests", [])
    ]
    return StepView(
        idx=step.idx,
        kind=step.kind,
        words=action_words(step.kind, step.action, target),
        status=step.status,
        error=step.error,
        target=target,
        box=Box.model_validate(box) if isinstance(box, dict) else None,
        tool=detail.get("tool"),
        call=detail.get("call"),
        reason=detail.get("reason"),
        decision=policy.get("decision"),
        reasons=list(policy.get("reasons") or []),
        rules=list(policy.get("rules") or []),
        approval=approval,
        blocked_hosts=sorted(set(blocked)),
        held_requests=_held(detail.get("held_requests", [])),
        refused_navigations=[str(r) for r in detail.get("refused_navigations", [])],
        models=attempts,
        answered_by=detail.get("model") or (answered[-1].model if answered else None),
        fallbacks=[f"{a.model}: {a.reason or a.outcome}" for a in attempts if a.outcome == "error"],
        input_tokens=sum(a.input_tokens for a in attempts),
        output_tokens=sum(a.output_tokens for a in attempts),
        cost_usd=sum(a.cost_usd for a in attempts),
        model_latency_ms=round(sum(a.latency_ms for a in attempts), 1),
        excerpt=detail.get("excerpt"),
        url_before=step.url_before,
        url_after=step.url_after,
        started_at=step.started_at,
        duration_ms=step.duration_ms,
        screenshot=step.screenshot,
        shadow=detail.get("shadow"),
        shadow_agrees=detail.get("shadow_agrees"),
        extra={k: v for k, v in detail.items() if k not in _READ},
    )


def _cost_lines(calls: Iterable[ModelCallRecord]) -> list[CostLine]:
    lines: dict[tuple[str, str], CostLine] = {}
    for c in calls:
        key = (c.role, f"{c.provider}:{c.model}")
        line = lines.setdefault(key, CostLine(role=key[0], model=key[1]))
        line.calls += 1
        line.failed += c.outcome == "error"
        line.input_tokens += c.input_tokens
        line.output_tokens += c.output_tokens
        line.cost_usd += c.cost_usd
        line.latency_ms = round(line.latency_ms + c.latency_ms, 1)
    return sorted(lines.values(), key=lambda line: (line.role, -line.cost_usd, line.model))


def hit_cap(run: RunRecord) -> bool:
    """A budget cap (max_usd or max_tokens) stopped the run."""
    return bool(run.error) and _BUDGET_PREFIX in str(run.error)


def build_review(
    run: RunRecord,
    steps: list[StepRecord],
    calls: list[ModelCallRecord],
    artifacts: list[ArtifactRecord],
    requests: list[ApprovalRequest],
    redact: Callable[[str], str] | None = None,
) -> RunReview:
    """The review of one run from its rows; ``redact`` is applied to every text once more."""
    by_step: dict[int | None, list[ModelCallRecord]] = defaultdict(list)
    for call in calls:
        by_step[call.step_idx] = [*by_step[call.step_idx], call]
    known = {s.idx for s in steps}
    request_at: dict[int, ApprovalRequest] = {}
    for request in sorted(requests, key=lambda r: r.created_at):
        request_at[request.step_idx] = request  # the last request asked at a step decided it
    views = [_step(s, by_step.get(s.idx, []), request_at.get(s.idx)) for s in steps]
    unattributed = [_attempt(c) for idx, cs in by_step.items() if idx not in known for c in cs]
    counts: dict[str, int] = defaultdict(int)
    for s in steps:
        counts[s.status] += 1
    errors = [
        e for e in [run.error, *(f"step {v.number}: {v.error}" for v in views if v.error)] if e
    ]
    duration = (
        (run.finished_at - run.started_at).total_seconds() if run.finished_at is not None else None
    )
    summary = RunSummary(
        status=run.status,
        duration_s=round(duration, 2) if duration is not None else None,
        steps=len(steps),
        steps_by_status=dict(counts),
        cost_usd=sum(c.cost_usd for c in calls),
        input_tokens=sum(c.input_tokens for c in calls),
        output_tokens=sum(c.output_tokens for c in calls),
        by_role_model=_cost_lines(calls),
        approvals=[_approval(r) for r in sorted(requests, key=lambda r: r.created_at)],
        errors=errors,
        blocked_hosts=sorted({h for v in views for h in v.blocked_hosts}),
        hit_cap=hit_cap(run),
    )
    trace = next((a.path for a in artifacts if a.kind == "trace"), None)
    review = RunReview(
        run=run,
        summary=summary,
        steps=views,
        output=run.result,
        trace=trace,
        unattributed=unattributed,
    )
    if redact is None:
        return review
    return RunReview.model_validate(redact_strings(review.model_dump(mode="json"), redact))
