"""The act and record phases of a step, shared by scripted steps and model-chosen actions."""

from __future__ import annotations

import contextlib
import time
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from profiles import CorralError, SecretNotAvailableError, allow_all
from runtime.records import StepRecord, StepStatus
from runtime.run.effects import Submission
from runtime.run.state import RunEvent
from tools import (
    ActionContext,
    AnyAction,
    Extract,
    Navigate,
    SideEffect,
    action_target,
    execute,
    screenshot,
)

if TYPE_CHECKING:
    from runtime.run.context import RunContext

__all__ = ["describe", "perform", "perform_and_record", "record"]


_MAX_BLOCKED = 20


def describe(action: AnyAction) -> str:
    """A short human description of an action."""
    target = action_target(action)
    if isinstance(action, Navigate):
        return f"navigate {action.url}"
    return f"{action.kind} {target.describe()}" if target else action.kind


def _size(value: Any) -> int:
    return len(value) if isinstance(value, list | dict) else 1


def _wire_window(
    ctx: RunContext,
    action: AnyAction,
    extra: dict[str, Any] | None,
    submission: Submission | None = None,
) -> AbstractAsyncContextManager[None]:
    """The window in which ``action`` may send state-changing requests (none for a read); a
    fire's ``submission`` is recorded as sent before its first one leaves."""
    guard = ctx.tabs.session.wire
    if guard is None:
        return contextlib.nullcontext()
    on_send = submission.on_send if submission is not None else None
    pages_on = isinstance(action, Extract) and action.next is not None  # it clicks "next"
    if type(action).side_effect == SideEffect.READ and not pages_on:
        # A wait or a scroll submits nothing: what the page sends meanwhile is its own. The
        # window still replaces the previous action's, whose grace would otherwise go on.
        return guard.window(lambda _: f"sent during {action.kind}, which submits nothing")
    approval = (extra or {}).get("approval") or {}
    if approval.get("status") == "approved":
        # A person saw this action; what it sends is its own.
        return guard.window(allow_all, on_send)
    check = ctx.request_check or (lambda _: "no request check for this run")
    return guard.window(check, on_send)


async def perform(
    ctx: RunContext,
    action: AnyAction,
    text: str,
    total: int,
    *,
    actions: ActionContext | None = None,
    skip: bool = False,
    extra: dict[str, Any] | None = None,
    submission: Submission | None = None,
) -> tuple[StepRecord, CorralError | None]:
    """Do one action (unless ``skip``) with ``actions`` (default: the run's): its record
    (without screenshot) and its failure. A fire's ``submission`` is recorded as sent before
    its first state-changing request leaves, and as unsent after if none did."""
    state, tabs = ctx.state, ctx.tabs
    idx = state.idx
    state.idx += 1
    ctx.lease.step_idx = idx
    ctx.emit(RunEvent(ctx.run_id, ctx.profile, "step", idx + 1, total, text))
    page = await tabs.active()
    url_before = page.url
    began, t0 = datetime.now(UTC), time.perf_counter()
    status: StepStatus = "ok"
    error: str | None = None
    detail: dict[str, Any] = dict(extra or {})
    failure: CorralError | None = None
    if idx == 0 and ctx.egress_note:
        detail["egress"] = ctx.egress_note
    if skip:
        status = "skipped"
    else:
        try:
            async with _wire_window(ctx, action, extra, submission):
                result = await execute(tabs, action, actions or ctx.actions)
            if result.opened_tabs:
                detail["opened_tabs"] = result.opened_tabs
            if result.value is not None:
                if isinstance(action, Extract):
                    state.extracted[action.as_] = result.value
                    detail.update({"as": action.as_, "items": _size(result.value)})
                else:
                    detail["value"] = result.value
        except CorralError as exc:
            status, error = "failed", str(exc)
            failure = type(exc)(f"step {idx + 1} ({text}): {exc}")
            if isinstance(exc, SecretNotAvailableError):
                detail.update({"policy_violation": exc.violation, "reason": str(exc)})
        finally:
            if submission is not None:
                await submission.end()
    refused = await tabs.take_refused()
    if refused:
        # Frames the page sent to a URL that may not load (file:, blob:, data:, ...): undone.
        detail["refused_navigations"] = refused
    duration_ms = round((time.perf_counter() - t0) * 1000, 1)
    egress = tabs.session.egress
    blocked = egress.drain_blocked() if egress is not None else []
    if blocked:
        # What the page (or anything in it) tried to reach outside the allowlist.
        detail["blocked_requests"] = [
            b.model_dump(mode="json", exclude_none=True) for b in blocked[:_MAX_BLOCKED]
        ]
        if len(blocked) > _MAX_BLOCKED:
            detail["blocked_more"] = len(blocked) - _MAX_BLOCKED
    wire = tabs.session.wire
    held = wire.drain_held() if wire is not None else []
    if held:
        # State-changing requests that were not sent (during this action or since the last one).
        detail["held_requests"] = [h.model_dump(mode="json") for h in held[:_MAX_BLOCKED]]
        if len(held) > _MAX_BLOCKED:
            detail["held_more"] = len(held) - _MAX_BLOCKED
    state.counts[status] += 1
    page_after = tabs.pages[tabs.active_index] if tabs.pages else None
    target = action_target(action)
    step = StepRecord(
        run_id=ctx.run_id,
        idx=idx,
        kind=action.kind,
        action=action.model_dump(mode="json", by_alias=True, exclude_none=True),
        target=target.describe() if target else None,
        side_effect=str(type(action).side_effect),
        status=status,
        url_before=url_before,
        url_after=page_after.url if page_after else None,
        started_at=began,
        duration_ms=duration_ms,
        error=error,
        detail=detail or None,
    )
    return step, failure


async def record(ctx: RunContext, step: StepRecord) -> None:
    """Screenshot the page as the step left it and write the step's record.

    Read-only on the page, so the agent loop runs it while it asks the model (once the next
    observation has read the page: :meth:`runtime.agent.turn.Agent.start_record`).
    """
    policy = ctx.task.screenshots
    shot = None
    if policy == "always" or (policy == "on_failure" and step.status == "failed"):
        shot = await screenshot(ctx.tabs, ctx.shows_secret)
    await ctx.recorder.step(step, shot)


async def perform_and_record(
    ctx: RunContext,
    action: AnyAction,
    text: str,
    total: int,
    *,
    skip: bool = False,
    extra: dict[str, Any] | None = None,
) -> CorralError | None:
    """Do one action (unless ``skip``), record it with a screenshot; return its failure."""
    step, failure = await perform(ctx, action, text, total, skip=skip, extra=extra)
    await record(ctx, step)
    return failure
