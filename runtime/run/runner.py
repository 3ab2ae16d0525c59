"""One run of a task on one profile: lease, session, steps, recording, result.

The loop is split by phase: *decide* (``scripted``: the next step, its variables and guard),
*check* (``gate``), *act* (``steps``: ``tools.execute``), *record* (``Recorder``); a goal goes on
in ``runtime.agent``. Once the lease is granted and the session is open, the run's parts travel
together in one :class:`~runtime.run.context.RunContext`. Whatever ends the run (success, a
failed step, a crashed browser, the time budget, Ctrl-C), the trace is saved, the run row gets its
final status, the profile state is saved sealed and the lease is released.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from policies import Policy
from profiles import (
    CorralError,
    CredentialLease,
    LeaseLostError,
    Redactor,
    Session,
    UnknownSecretError,
    UserError,
    open_session,
    private_dir,
)
from runtime.app import Runtime
from runtime.errors import RUN_EXIT_CODES, StepFailedError, TaskFileError, exit_code_for
from runtime.memory import Note, new_note_id, note_problem
from runtime.records import RunRecord, RunSource, RunStatus
from runtime.run.context import RunContext
from runtime.run.gate import ApprovalDeniedError
from runtime.run.recorder import Recorder
from runtime.run.scripted import (
    check_vars,
    guard_holds,
    merge_vars,
    substitute,
    substitute_text,
)
from runtime.run.state import RunEvent, RunState
from runtime.run.steps import describe, perform_and_record, record
from runtime.run.wirecheck import request_check
from runtime.task import UNRESTRICTED, Step, Task
from runtime.webhook import Webhook
from tools import (
    ActionContext,
    Navigate,
    Tabs,
    site_allowlist,
)

if TYPE_CHECKING:
    # The model config loads for a goal-driven run only.
    from runtime.models.config import ModelsConfig
    from runtime.models.types import Model

__all__ = ["RunEvent", "RunResult", "new_run_id", "run_task"]


class RunResult(BaseModel):
    """How a run ended; ``exit_code`` follows DESIGN.md."""

    model_config = ConfigDict(extra="forbid")
    run_id: str | None
    task: str
    profile: str
    status: RunStatus
    output: Any = None
    error: str | None = None
    exit_code: int
    steps_ok: int = 0
    steps_skipped: int = 0
    steps_failed: int = 0
    session_restored: bool = False
    run_dir: str | None = None
    duration_s: float = 0.0
    cost_usd: float = 0.0
    tokens: int = 0
    shadow_agreement: float | None = Field(
        None, description="share of planner turns where the shadow planner chose the same call"
    )
    models_config: str | None = Field(
        None, description="the model config file a goal run used, or 'built-in defaults'"
    )
    egress: str | None = Field(
        None, description="how far the run could reach when that is not the task's own list"
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="what went wrong without failing the run, e.g. an artifact upload",
    )
    evidence: list[dict[str, Any]] | None = Field(
        None, description="where each field of a goal's result came from (its page excerpt)"
    )
    notes_kept: int = Field(
        0, description="notes the planner proposed with remember(), kept as the run succeeded"
    )

    @classmethod
    def from_record(cls, record: RunRecord) -> RunResult:
        """What a finished run's row says of how it ended (for a process that did not run it,
        or a run whose result was never handed back, e.g. one cancelled)."""
        return cls(
            run_id=record.id,
            task=record.task_name,
            profile=record.profile,
            status=record.status,
            output=record.result,
            evidence=record.evidence,
            models_config=record.models_config,
            error=record.error,
            exit_code=RUN_EXIT_CODES[record.status],
            run_dir=record.run_dir,
        )


def new_run_id() -> str:
    """A sortable, readable run id, e.g. ``20261125-213301-7f3a9c``."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def _bad_input(task: Task, profile: str, exc: CorralError, started: float) -> RunResult:
    return RunResult(
        run_id=None,
        task=task.name,
        profile=profile,
        status="failed",
        error=str(exc),
        exit_code=exit_code_for(exc),
        duration_s=round(time.monotonic() - started, 3),
    )


async def run_task(
    rt: Runtime,
    task: Task,
    profile: str | None = None,
    cli_vars: Mapping[str, str] | None = None,
    *,
    on_event: Callable[[RunEvent], None] | None = None,
    lease_timeout_s: float | None = None,
    models: Mapping[str, list[Model]] | None = None,
    http_client: object = None,
    run_id: str | None = None,
    source: RunSource | None = None,
) -> RunResult:
    """Run ``task`` on ``profile``; bad input comes back as a result with exit code 2.

    ``run_id`` is the id to record it under (chosen by a caller that announces it before the
    run starts; default: a new one); ``source`` the schedule fire that made it.
    ``models`` replaces the configured role chains (tests drive the loop with fakes this way);
    ``http_client`` is handed to the SDKs (an httpx2 client with a test transport).
    """
    started = time.monotonic()
    name = profile or task.profile
    emit = on_event or (lambda _event: None)
    try:
        if not name:
            raise TaskFileError(
                f"{task.source or task.name}: profile: no profile given (set profile: in the "
                "task or pass --profile NAME)"
            )
        plan = await _plan(rt, task, name, cli_vars or {}, fakes=models is not None)
    except UserError as exc:
        return _bad_input(task, name or "?", exc, started)
    values, domains, egress_note = plan.values, plan.domains, plan.egress_note
    policy, config = plan.policy, plan.config

    run_id = run_id or new_run_id()
    run_dir = rt.settings.runs_dir / run_id
    private_dir(run_dir)
    run = RunRecord(
        id=run_id,
        task_name=task.name,
        task_path=task.source,
        profile=name,
        status="running",
        started_at=datetime.now(UTC),
        run_dir=str(run_dir),
        pid=os.getpid(),
        host=socket.gethostname(),
        schedule=source.schedule if source else None,
        fire_id=source.fire_id if source else None,
        attempt=source.attempt if source else None,
    )
    # How long this run's data is kept: the task's rule, as its latest run had it (retention).
    await rt.services.retention.note_task(task)
    await rt.store.runs.create_run(run)
    # This run's own: what it redacts (its secrets, the TOTP codes it typed) stays its business.
    redactor = Redactor()
    rt.redactor.attach(redactor)
    recorder = Recorder(rt.store, run_id, run_dir, redactor, rt.objects)
    # The run goes by its effective allowlist (the gate's rules read it from the task too).
    scoped = task.model_copy(update={"allowed_domains": domains})
    state = RunState()
    check = request_check(policy, task.name, name, domains or plan.profile_domains)
    router = None
    if config is not None:
        # The agent loop and the model SDKs load only for a goal-driven run.
        from runtime.agent.router import Meter, ModelRouter

        meter = Meter(task.budget.max_usd, task.budget.max_tokens)
        breaker = rt.breaker_for(config.breaker)
        router = ModelRouter(
            config, rt.store, run_id, meter, rt.env, breaker, models, http_client, redactor
        )
    emit(RunEvent(run_id, name, "started", total=len(task.steps)))
    status: RunStatus = "failed"
    error: str | None = None
    lease: CredentialLease | None = None
    try:
        async with asyncio.timeout(task.budget.timeout_s) as timer:
            lease = await rt.vault.lease(run_id, name, plan.secrets, redactor)
            pool = await rt.pool()
            async with open_session(
                rt.profiles,
                pool,
                name,
                run_id,
                rt.settings.lease_timeout_s if lease_timeout_s is None else lease_timeout_s,
                allowed_domains=domains,
                host_map=rt.settings.host_map,
                wire=True,
                lease_ttl_s=rt.settings.heartbeat_timeout_s,
            ) as session:
                state.restored = session.restored
                ctx = RunContext(
                    run_id=run_id,
                    profile=name,
                    task=scoped,
                    values=values,
                    state=state,
                    tabs=Tabs(session),
                    actions=_action_context(scoped, values, run_dir, lease),
                    recorder=recorder,
                    lease=lease,
                    store=rt.store,
                    approvals=rt.approvals,
                    policy=policy,
                    webhook=plan.webhook,
                    router=router,
                    emit=emit,
                    approval_ttl_s=rt.settings.approval_ttl_s,
                    timer=timer,
                    request_check=check,
                    egress_note=egress_note,
                    source=source,
                    public_url=rt.settings.public_url,
                )
                await _run_steps(ctx, session)
        status = "succeeded"
    except ApprovalDeniedError as exc:
        status, error = "denied", str(exc)
    except TimeoutError:
        error = f"the run took longer than its budget timeout_s={task.budget.timeout_s:g}"
    except LeaseLostError as exc:
        # Another worker may hold the profile now: this run stopped acting (retried under a
        # schedule's policy).
        status, error = "interrupted", str(exc)
    except CorralError as exc:
        error = str(exc)
    except asyncio.CancelledError as exc:
        # task.cancel(msg) says why (e.g. a server draining); else a person pressed Ctrl-C.
        why = exc.args[0] if exc.args and isinstance(exc.args[0], str) else None
        status, error = "cancelled", why or "cancelled (interrupted by the user)"
        raise
    except Exception as exc:
        # A bug, not a run failure: record it on the run, then let it surface.
        error = f"internal error: {type(exc).__name__}: {exc}"
        raise
    finally:
        if lease is not None:
            await asyncio.shield(lease.revoke())
        if router is not None:
            await asyncio.shield(router.aclose())
        output = recorder.scrub(state.output(task.output)) if status == "succeeded" else None
        error = redactor.text(error) if error else error
        if status == "succeeded" and task.output_schema is not None:
            import jsonschema  # only a task with an output_schema needs it

            try:
                jsonschema.validate(output, task.output_schema)
            except jsonschema.ValidationError as exc:
                status, error = "failed", f"output does not match output_schema: {exc.message}"
        result = RunResult(
            run_id=run_id,
            task=task.name,
            profile=name,
            status=status,
            output=output,
            evidence=recorder.scrub(state.evidence) if status == "succeeded" else None,
            error=error,
            exit_code=RUN_EXIT_CODES[status],
            steps_ok=state.counts["ok"],
            steps_skipped=state.counts["skipped"],
            steps_failed=state.counts["failed"],
            session_restored=state.restored,
            cost_usd=round(router.meter.usd, 6) if router else 0.0,
            tokens=router.meter.tokens if router else 0,
            shadow_agreement=(
                round(state.shadow_agreed / state.shadow_total, 3) if state.shadow_total else None
            ),
            run_dir=str(run_dir),
            duration_s=round(time.monotonic() - started, 3),
            models_config=config.source if config is not None else None,
            egress=egress_note,
        )
        notes = recorder.scrub(state.notes) if status == "succeeded" else []
        try:
            await asyncio.shield(_finish(rt, recorder, result, notes))
        finally:
            rt.redactor.detach(redactor)
        emit(RunEvent(run_id, name, "finished", status=status, text=error or ""))
    return result


@dataclass
class _Plan:
    """A run's checked input: what it needs before its run row exists."""

    values: dict[str, str]
    secrets: list[str]
    domains: list[str]
    egress_note: str | None
    profile_domains: list[str]
    policy: Policy | None
    webhook: Webhook | None
    config: ModelsConfig | None


async def _plan(
    rt: Runtime, task: Task, profile: str, cli_vars: Mapping[str, str], *, fakes: bool
) -> _Plan:
    """Check the run's input (profile, variables, secrets, egress, policy, models) before it
    starts; a problem is a UserError. With ``fakes`` the roles are the caller's models."""
    record = await rt.profiles.get(profile)
    values = merge_vars(task, record.settings.vars, cli_vars)
    check_vars(task, values)
    secret_names = [substitute_text(n, values) for n in task.secrets]
    for secret in secret_names:
        if await rt.store.vault.get_secret(secret) is None:
            raise UnknownSecretError(
                f"{task.source or task.name}: secrets: unknown secret '{secret}' "
                f"(set it with: corral secrets set {secret} --domain ORIGIN)"
            )
    domains, egress_note = _egress_scope(task, values, record.settings.allowed_domains)
    policy = rt.policy()
    webhook = rt.webhook()
    config = None
    if task.goal:
        from runtime.models.config import load_models_config

        config = load_models_config(rt.settings.home, rt.settings.models_config).with_roles(
            task.models, f"{task.source or task.name}: models"
        )
        if not fakes:
            # Fail before the run starts when no planner can be called (e.g. no API key).
            config.require("planner", rt.env)
    return _Plan(
        values=values,
        secrets=secret_names,
        domains=domains,
        egress_note=egress_note,
        profile_domains=list(record.settings.allowed_domains),
        policy=policy,
        webhook=webhook,
        config=config,
    )


def _egress_scope(
    task: Task, values: Mapping[str, str], profile_domains: list[str]
) -> tuple[list[str], str | None]:
    """The run's allowlist (before the profile's own, which always holds too) and a note for
    its record when that is not simply the task's list.

    ``["*"]`` means no limit of the task's. A model-driven run without any list is limited to its
    start URL's site (see ``tools.navigation.site_allowlist``); a scripted one is not limited.
    """
    domains = [substitute_text(d, values) for d in task.allowed_domains]
    if domains == [UNRESTRICTED]:
        if profile_domains:
            return [], f"egress: the profile's allowed_domains only ({', '.join(profile_domains)})"
        return [], f"egress: unrestricted (allowed_domains: [{UNRESTRICTED!r}])"
    if domains or not task.goal or profile_domains:
        return domains, None
    start = substitute_text(task.start_url, values) if task.start_url else ""
    site = site_allowlist(start)
    if not site:
        raise TaskFileError(
            f"{task.source or task.name}: allowed_domains: a model-driven task without "
            "allowed_domains is limited to its start_url's site, and it has no http(s) "
            "start_url: give start_url, or allowed_domains (['*'] for no limit)"
        )
    return site, (
        f"egress: the start URL's site only ({', '.join(site)}), the default for a "
        "model-driven task without allowed_domains (['*'] lifts it)"
    )


async def _keep_notes(rt: Runtime, result: RunResult, notes: list[dict[str, Any]]) -> None:
    """Keep what the planner proposed with ``remember`` (the run succeeded), but a note holding
    the value of any stored secret (not only the run's own: checked when proposed)."""
    vault = await rt.vault.redactor()
    kept = 0
    for proposed in notes:
        if note_problem(proposed["text"], vault.found_in_text) is not None:
            result.warnings.append("a note the planner proposed was not kept: it held a secret")
            continue
        kept += 1
        scope = proposed["scope"]
        await rt.store.notes.add(
            Note(
                id=new_note_id(),
                scope=scope,
                name=result.task if scope == "task" else result.profile,
                text=proposed["text"],
                source="run",
                run_id=result.run_id,
                step=proposed["step"] or None,
                created_at=datetime.now(UTC),
            )
        )
    result.notes_kept = kept


async def _finish(
    rt: Runtime, recorder: Recorder, result: RunResult, notes: list[dict[str, Any]]
) -> None:
    """Register the downloads, keep the run's notes, write ``result.json``, wait for every
    upload, end the run row."""
    assert result.run_id is not None
    if notes:
        await _keep_notes(rt, result, notes)
    downloads = recorder.run_dir / "downloads"
    if downloads.is_dir():
        for path in sorted(downloads.iterdir()):
            if path.is_file() and not path.is_symlink():
                await recorder.artifact("download", path)
    # Uploads that failed by now are in result.json; one of result.json itself only in the log.
    await recorder.flush()
    result.warnings.extend(recorder.warnings)
    await recorder.result(result.model_dump(mode="json"))
    await recorder.flush()
    await rt.store.runs.finish_run(
        result.run_id,
        result.status,
        result.error,
        result.output,
        result.evidence,
        result.models_config,
    )


def _action_context(
    task: Task, values: Mapping[str, str], run_dir: Path, lease: CredentialLease
) -> ActionContext:
    """What every action of the run is done with."""
    start_url = substitute_text(task.start_url, values) if task.start_url else None
    return ActionContext(
        downloads_dir=run_dir / "downloads",
        base_url=start_url,
        upload_dir=Path(task.upload_dir).expanduser() if task.upload_dir else None,
        timeout_s=task.step_timeout_s,
        resolve_value=lease.resolve,
    )


async def _run_steps(ctx: RunContext, session: Session) -> None:
    task, recorder = ctx.task, ctx.recorder
    start_url = ctx.actions.base_url
    if task.trace != "off":
        await session.start_trace()
    # The record (screenshot, step row) of the step that ends the script, written while the
    # trace stops: both only read the page, and the trace holds no screenshot. Every other
    # step's record is written while the next step is checked (see _one_step).
    last: Awaitable[None] | None = None
    try:
        steps = list(task.steps)
        first = steps[0].typed if steps else None
        if start_url and not isinstance(first, Navigate):
            steps.insert(0, Step(action=Navigate(url=start_url), name="start_url"))
        for number, step in enumerate(steps, 1):
            if ctx.state.idx >= task.budget.max_steps:
                raise StepFailedError(f"stopped: budget max_steps={task.budget.max_steps} reached")
            previous, last = last, None
            recording, stop = await _one_step(ctx, step, len(steps), previous)
            if stop is None and (number < len(steps) or ctx.router is not None):
                last = asyncio.ensure_future(recording)
                continue
            last = recording
            if stop is not None:
                raise stop
        if ctx.router is not None:
            if last is not None:
                await last
                last = None
            from runtime.agent.loop import run_goal

            await run_goal(ctx)
    finally:
        trace = recorder.run_dir / "trace.zip"
        # Scrubbed before it gets its name: typed values, cookies, credential headers.
        stopping = (
            session.stop_trace(trace, recorder.redactor, bodies=task.trace == "on")
            if task.trace != "off"
            else _no_trace()
        )
        recorded, saved = await asyncio.gather(
            last if last is not None else _nothing(), stopping, return_exceptions=True
        )
        # The step's record is written by now, so its rows come before the trace's.
        if saved is True:
            await recorder.artifact("trace", trace)
        for outcome in (recorded, saved):
            if isinstance(outcome, BaseException):
                raise outcome


async def _nothing() -> None:
    return None


async def _no_trace() -> bool:
    return False


async def _one_step(
    ctx: RunContext, step: Step, total: int, previous: Awaitable[None] | None
) -> tuple[Coroutine[Any, Any, None], CorralError | None]:
    """Do one step: its record, for the caller to write, and the error that stops the run.

    ``previous`` is the previous step's record (its screenshot and row), still being written:
    this step's guard and the gate's check only read the page, so they run beside it; the
    step acts once it is written."""
    action = substitute(step, ctx.values)
    text = step.name or describe(action)
    try:
        holds = await guard_holds(step.when, ctx.tabs)
        verdict = await ctx.gate.verdict(action) if holds else None
    finally:
        if previous is not None:
            await previous
    if verdict is None:
        await perform_and_record(ctx, action, text, total, skip=True)
        return _nothing(), None
    gated = await ctx.gate.carry_out(action, text, total, verdict=verdict)
    if gated.outcome != "done":
        # A denial goes back to the script: the run stops (exit 3).
        denied = ApprovalDeniedError(f"step {gated.step.idx + 1} ({text}): {gated.message}")
        return record(ctx, gated.step), denied
    if gated.failure is not None and not step.optional:
        return record(ctx, gated.step), gated.failure
    return record(ctx, gated.step), None
