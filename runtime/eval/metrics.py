"""The figures of an eval, read back from the store's records of the eval's own runs: the run
rows, their steps and their model calls, and the approval requests they made.

Tool-call validity counts the planner's answers that were used: a turn ends with an action (a
step row, done or refused), a ``look``/``extract_data`` consultation, or ``done``; a planner
answer the loop sent back (an unknown tool, bad arguments, no call) leaves no step, so the
answers of a turn beyond the one used are the invalid ones. Model calls are grouped into turns
by the step index the router stamps on them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from runtime.approvals import ApprovalRequest
from runtime.eval.harness import EvalRun
from runtime.eval.stats import bootstrap_diff, mean, newcombe_diff, quantile, wilson
from runtime.records import ModelCallRecord, RunRecord, StepRecord
from runtime.store import Store

__all__ = ["Figures", "RunFigures", "compare", "figures", "read_run"]


@dataclass
class RunFigures:
    """One run's figures."""

    config: str
    task: str
    faulted: bool
    success: bool
    run_id: str | None
    steps: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    duration_s: float | None = None
    step_latency_ms: list[float] = field(default_factory=list)
    planner_answers: int = 0
    invalid_calls: int = 0
    provider_errors: int = 0
    injected: int = 0
    approvals_asked: int = 0
    approvals_overridden: int = 0
    shadow_turns: int = 0
    shadow_agreed: int = 0


def _turns(
    calls: list[ModelCallRecord], steps: list[StepRecord], succeeded: bool
) -> tuple[int, int]:
    """The planner's answers and how many of them the loop sent back (see the module doc)."""
    answers: dict[int, int] = defaultdict(int)
    consults: dict[int, int] = defaultdict(int)
    for call in calls:
        key = -1 if call.step_idx is None else call.step_idx
        if call.outcome == "ok" and call.role == "planner":
            answers[key] += 1
        elif call.outcome == "ok" and call.role in ("vision", "extractor"):
            consults[key] += 1
    acted = {s.idx for s in steps if isinstance(s.detail, dict) and "tool" in s.detail}
    last = max(answers, default=None)
    invalid = 0
    for idx, count in answers.items():
        used = 1 if idx in acted or (idx == last and succeeded) else 0
        invalid += max(0, count - used - consults[idx])
    return sum(answers.values()), invalid


async def read_run(store: Store, run: EvalRun) -> RunFigures:
    """``run``'s figures from the store."""
    out = RunFigures(
        run.config, run.task, run.faulted, run.success, run.run_id, injected=run.injected
    )
    if run.run_id is None:
        return out
    record: RunRecord | None = await store.runs.get_run(run.run_id)
    steps = await store.runs.list_steps(run.run_id)
    calls = await store.runs.list_model_calls(run.run_id)
    asked: list[ApprovalRequest] = await store.approvals.list(None, run.run_id, 1000)
    out.steps = len(steps)
    for call in calls:
        out.input_tokens += call.input_tokens
        out.output_tokens += call.output_tokens
        out.cached_tokens += call.cached_tokens
        out.cost_usd += call.cost_usd
        if call.role == "planner" and call.outcome == "error":
            out.provider_errors += 1
    if record is not None and record.finished_at is not None:
        out.duration_s = (record.finished_at - record.started_at).total_seconds()
    thinking: dict[int, float] = defaultdict(float)
    for call in calls:
        if call.step_idx is not None and call.role != "shadow":
            thinking[call.step_idx] += call.latency_ms
    out.step_latency_ms = [s.duration_ms + thinking.get(s.idx, 0.0) for s in steps]
    out.planner_answers, out.invalid_calls = _turns(calls, steps, run.status == "succeeded")
    out.approvals_asked = len(asked)
    out.approvals_overridden = sum(1 for a in asked if a.status == "denied")
    for step in steps:
        detail = step.detail if isinstance(step.detail, dict) else {}
        if "shadow_agrees" in detail:
            out.shadow_turns += 1
            out.shadow_agreed += bool(detail["shadow_agrees"])
    return out


def _rate(hits: int, n: int) -> dict[str, Any]:
    low, high = wilson(hits, n)
    return {"hits": hits, "n": n, "rate": hits / n if n else None, "low": low, "high": high}


@dataclass
class Figures:
    """The figures of one config (or one task of one config) over its runs."""

    runs: int
    success: dict[str, Any]
    steps_mean: float | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float
    cost_per_success: float | None
    step_latency_ms: dict[str, float | None]
    task_latency_s: dict[str, float | None]
    tool_call_validity: dict[str, Any]
    recovery: dict[str, Any]
    human_override: dict[str, Any]
    shadow_agreement: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def figures(runs: list[RunFigures]) -> Figures:
    """Aggregate figures; success, steps, tokens, cost and latency over the runs without
    injected faults, recovery compares those with the fault-injected ones."""
    clean = [r for r in runs if not r.faulted]
    faulted = [r for r in runs if r.faulted]
    wins = sum(r.success for r in clean)
    cost = sum(r.cost_usd for r in clean)
    steps_lat = [x for r in clean for x in r.step_latency_ms]
    task_lat = [r.duration_s for r in clean if r.duration_s is not None]
    answers = sum(r.planner_answers for r in clean)
    invalid = sum(r.invalid_calls for r in clean)
    asked = sum(r.approvals_asked for r in clean)
    shadow = sum(r.shadow_turns for r in clean)
    return Figures(
        runs=len(clean),
        success=_rate(wins, len(clean)),
        steps_mean=mean([float(r.steps) for r in clean]),
        input_tokens=sum(r.input_tokens for r in clean),
        output_tokens=sum(r.output_tokens for r in clean),
        cached_tokens=sum(r.cached_tokens for r in clean),
        cost_usd=round(cost, 6),
        cost_per_success=round(cost / wins, 6) if wins else None,
        step_latency_ms={"median": quantile(steps_lat, 0.5), "p95": quantile(steps_lat, 0.95)},
        task_latency_s={"median": quantile(task_lat, 0.5), "p95": quantile(task_lat, 0.95)},
        tool_call_validity=_rate(answers - invalid, answers),
        recovery={
            "with_faults": _rate(sum(r.success for r in faulted), len(faulted)),
            "without": _rate(wins, len(clean)),
            "injected": sum(r.injected for r in faulted),
            "fallbacks": sum(r.provider_errors for r in faulted),
        },
        human_override=_rate(sum(r.approvals_overridden for r in clean), asked),
        shadow_agreement=_rate(sum(r.shadow_agreed for r in clean), shadow),
    )


def _diff_rate(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    if not a["n"] or not b["n"]:
        return None
    d, low, high = newcombe_diff(a["hits"], a["n"], b["hits"], b["n"])
    return {"diff": d, "low": low, "high": high, "method": "Newcombe (Wilson) 95%"}


def _diff_mean(a: list[float], b: list[float]) -> dict[str, Any] | None:
    found = bootstrap_diff(a, b)
    if found is None:
        return None
    d, low, high = found
    return {"diff": d, "low": low, "high": high, "method": "bootstrap 95%, 2000 rounds, seed 0"}


def compare(
    base: list[RunFigures], other: list[RunFigures], fb: Figures, fo: Figures
) -> dict[str, Any]:
    """The second config minus the first, each with a 95% interval."""
    bc = [r for r in base if not r.faulted]
    oc = [r for r in other if not r.faulted]
    return {
        "success": _diff_rate(fb.success, fo.success),
        "tool_call_validity": _diff_rate(fb.tool_call_validity, fo.tool_call_validity),
        "human_override": _diff_rate(fb.human_override, fo.human_override),
        "shadow_agreement": _diff_rate(fb.shadow_agreement, fo.shadow_agreement),
        "recovery_with_faults": _diff_rate(fb.recovery["with_faults"], fo.recovery["with_faults"]),
        "steps": _diff_mean([float(r.steps) for r in bc], [float(r.steps) for r in oc]),
        "tokens": _diff_mean(
            [float(r.input_tokens + r.output_tokens) for r in bc],
            [float(r.input_tokens + r.output_tokens) for r in oc],
        ),
        "cost_usd": _diff_mean([r.cost_usd for r in bc], [r.cost_usd for r in oc]),
        "task_latency_s": _diff_mean(
            [r.duration_s for r in bc if r.duration_s is not None],
            [r.duration_s for r in oc if r.duration_s is not None],
        ),
    }
