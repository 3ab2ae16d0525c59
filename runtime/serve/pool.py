"""The worker pool: runs in this process on the one browser pool, a bounded number at once.

Every run the server starts goes through here: a person's run from the HTTP API
(:meth:`WorkerPool.submit`, authorized through the service layer first) and a schedule's fire
(:meth:`WorkerPool.start`, whose job builds its own ``run_task`` call). A job waits for one of
``workers`` slots (a global concurrency limit), then runs; its run id is chosen before it starts,
so a caller can announce it at once and poll :meth:`WorkerPool.result` later.

Cancelling a job cancels its asyncio task with a reason: ``run_task`` records the run as
``cancelled`` with that reason as its error, and its ``finally`` blocks (shielded) save the
profile state, close the browser context and release the lease. :meth:`WorkerPool.drain` stops
the pool: no new job is accepted (:class:`~runtime.errors.ServerDrainingError`), jobs still
waiting for a slot are dropped (never started), running ones get a grace period and are then
cancelled, and it says how each one ended.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from profiles import CorralError, UserError
from runtime.errors import ServerDrainingError, TaskFileError, exit_code_for
from runtime.run.runner import RunResult, new_run_id, run_task
from runtime.run.state import SERVER_STOPPED

if TYPE_CHECKING:
    from runtime.app import Runtime
    from runtime.auth import Actor
    from runtime.task import Task

__all__ = ["DrainOutcome", "JobInfo", "JobState", "Submitted", "WorkerPool"]

log = logging.getLogger(__name__)

JobState = Literal["queued", "running", "finished"]
"""queued: waiting for a slot; running: its job started; finished: ended in any way."""

KEEP_RESULTS = 1000
"""How many finished jobs' results the pool keeps (the run's record stays in the store)."""

NOT_STARTED = "not started: the server stopped before a worker was free"


@dataclass(frozen=True)
class Submitted:
    """A run accepted by :meth:`WorkerPool.submit`: its id, chosen before it starts."""

    run_id: str
    profile: str


@dataclass(frozen=True)
class JobInfo:
    """What the pool knows about one job."""

    run_id: str
    profile: str
    state: JobState
    key: str | None = None
    """The caller's handle (e.g. a schedule's fire id)."""
    started_by: str | None = None
    """The actor who submitted it (None: the server itself, e.g. a schedule)."""


@dataclass(frozen=True)
class DrainOutcome:
    """How one job that was live when the drain began ended."""

    run_id: str
    profile: str
    ended: Literal["finished", "cancelled at drain", "not started"]
    status: str | None = None
    """The run's final status (None: it never started)."""
    error: str | None = None

    def __str__(self) -> str:
        where = f"run {self.run_id} on {self.profile}"
        if self.ended == "not started":
            return f"{where}: not started (dropped at the drain)"
        if self.ended == "cancelled at drain":
            return f"{where}: cancelled at the drain ({self.status})"
        return f"{where}: finished during the drain ({self.status})"


@dataclass
class _Job:
    run_id: str
    profile: str
    task_name: str
    key: str | None
    started_by: str | None
    make: Callable[[], Awaitable[RunResult]]
    state: JobState = "queued"
    task: asyncio.Task[None] | None = None
    result: RunResult | None = None
    cancel_reason: str | None = None
    cancelled_at_drain: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def info(self) -> JobInfo:
        return JobInfo(self.run_id, self.profile, self.state, self.key, self.started_by)


class WorkerPool:
    """Runs jobs in this process, at most ``workers`` at once, on the runtime's browser pool."""

    def __init__(self, rt: Runtime, workers: int) -> None:
        if workers < 1:
            raise UserError(f"--workers {workers}: expected 1 or more")
        self._rt = rt
        self.workers = workers
        self._slots = asyncio.Semaphore(workers)
        self._live: dict[str, _Job] = {}
        self._finished: OrderedDict[str, _Job] = OrderedDict()
        self._draining = False

    @property
    def draining(self) -> bool:
        """Whether :meth:`drain` has begun (no new job is accepted)."""
        return self._draining

    # --- starting ---------------------------------------------------------------------------

    async def submit(
        self,
        actor: Actor,
        task: Task,
        profiles: Sequence[str],
        variables: Mapping[str, str] | None = None,
        *,
        lease_timeout_s: float | None = None,
    ) -> list[Submitted]:
        """Start ``task`` on each of ``profiles`` (empty: the task's) as ``actor``.

        Authorized (and each profile checked) before anything starts: a refusal raises and
        starts nothing. Returns at once with each run's id; the runs wait for free slots.
        """
        self._accepting()
        names = list(dict.fromkeys(profiles)) or ([task.profile] if task.profile else [])
        if not names:
            raise TaskFileError(
                f"{task.source or task.name}: profile: no profile given (set profile: in the "
                "task or pass profiles)"
            )
        await self._rt.services.runs.authorize(actor, names)
        for name in names:
            await self._rt.profiles.get(name)  # an unknown profile: ProfileNotFoundError
        self._accepting()  # the checks above awaited: a drain may have begun meanwhile
        submitted = []
        for name in names:
            run_id = new_run_id()
            self._add(
                self._runner(task, name, variables, run_id, lease_timeout_s),
                run_id,
                name,
                key=None,
                task_name=task.name,
                started_by=actor.name,
            )
            submitted.append(Submitted(run_id, name))
        return submitted

    def start(
        self,
        job: Callable[[], Awaitable[RunResult]],
        run_id: str,
        profile: str,
        *,
        key: str | None = None,
        task_name: str | None = None,
    ) -> None:
        """Run ``job`` (which records its run under ``run_id``) once a slot is free.

        ``key`` is the caller's handle for :meth:`cancel` (e.g. a fire id); ``task_name`` names
        the task in the result of a job that never started.
        """
        self._accepting()
        self._add(job, run_id, profile, key=key, task_name=task_name or "?", started_by=None)

    def _accepting(self) -> None:
        if self._draining:
            raise ServerDrainingError(
                "the server is stopping (draining): it starts no new run; retry once it is back"
            )

    def _runner(
        self,
        task: Task,
        profile: str,
        variables: Mapping[str, str] | None,
        run_id: str,
        lease_timeout_s: float | None,
    ) -> Callable[[], Awaitable[RunResult]]:
        def make() -> Awaitable[RunResult]:
            return run_task(
                self._rt,
                task,
                profile,
                variables,
                run_id=run_id,
                lease_timeout_s=lease_timeout_s,
            )

        return make

    def _add(
        self,
        make: Callable[[], Awaitable[RunResult]],
        run_id: str,
        profile: str,
        *,
        key: str | None,
        task_name: str,
        started_by: str | None,
    ) -> None:
        if run_id in self._live or run_id in self._finished:
            raise UserError(f"run id {run_id} is already in use")
        job = _Job(run_id, profile, task_name, key, started_by, make)
        self._live[run_id] = job
        job.task = asyncio.create_task(self._run(job), name=f"run {run_id}")

    async def _run(self, job: _Job) -> None:
        try:
            try:
                await self._slots.acquire()
            except asyncio.CancelledError:
                job.result = self._synthetic(job, job.cancel_reason or "cancelled", 130)
                raise
            try:
                job.state = "running"
                job.result = await job.make()
            finally:
                self._slots.release()
        except asyncio.CancelledError:
            if job.result is None:
                job.result = await self._recorded(job)
            raise
        except Exception as exc:
            job.result = await self._failed(job, exc)
        finally:
            self._finish(job)

    def _finish(self, job: _Job) -> None:
        job.state = "finished"
        self._live.pop(job.run_id, None)
        self._finished[job.run_id] = job
        while len(self._finished) > KEEP_RESULTS:
            self._finished.popitem(last=False)
        job.done.set()

    async def _recorded(self, job: _Job) -> RunResult:
        """A cancelled run's result, from its run row (``run_task`` wrote it before it ended)."""
        record = await self._rt.store.runs.get_run(job.run_id)
        if record is None or record.id != job.run_id:
            return self._synthetic(job, job.cancel_reason or "cancelled", 130)
        return RunResult.from_record(record)

    async def _failed(self, job: _Job, exc: Exception) -> RunResult:
        """A job that raised: a corral error is its result; anything else is logged (redacted)."""
        if isinstance(exc, CorralError):
            error = self._rt.redactor.text(str(exc))
            code = exit_code_for(exc)
        else:
            details = "".join(traceback.format_exception(exc))
            log.error(self._rt.redactor.text(f"run {job.run_id} failed unexpectedly: {details}"))
            error, code = f"internal error: {type(exc).__name__} (see the server log)", 1
        record = await self._rt.store.runs.get_run(job.run_id)
        if record is not None and record.id == job.run_id and record.error:
            error = record.error
        return self._synthetic(job, error, code)

    @staticmethod
    def _synthetic(job: _Job, error: str, code: int) -> RunResult:
        status: Literal["cancelled", "failed"] = "cancelled" if code == 130 else "failed"
        return RunResult(
            run_id=job.run_id,
            task=job.task_name,
            profile=job.profile,
            status=status,
            error=error,
            exit_code=code,
        )

    # --- looking ----------------------------------------------------------------------------

    def _job(self, run_id: str) -> _Job | None:
        return self._live.get(run_id) or self._finished.get(run_id)

    def status(self, run_id: str) -> JobState | None:
        """queued, running or finished; None for a run this pool does not know."""
        job = self._job(run_id)
        return job.state if job else None

    def result(self, run_id: str) -> RunResult | None:
        """A finished job's result (None while it goes, or when unknown)."""
        job = self._finished.get(run_id)
        return job.result if job else None

    def info(self, run_id: str) -> JobInfo | None:
        """What the pool knows about one job (live or among the last finished)."""
        job = self._job(run_id)
        return job.info() if job else None

    def running(self) -> list[JobInfo]:
        """The jobs not finished yet (queued or running), oldest first."""
        return [job.info() for job in self._live.values()]

    def free_slots(self) -> int:
        """How many more jobs would start at once (slots minus live jobs, never below 0)."""
        return max(0, self.workers - len(self._live))

    async def wait(self, run_id: str) -> RunResult | None:
        """The result of a job once it has finished (None for an unknown run)."""
        job = self._job(run_id)
        if job is None:
            return None
        await job.done.wait()
        return job.result

    # --- stopping ---------------------------------------------------------------------------

    def cancel(self, run_id_or_key: str, reason: str) -> bool:
        """Cancel a live job by run id or key; ``reason`` becomes the run's error. False when
        no such job is live."""
        job = self._live.get(run_id_or_key) or next(
            (j for j in self._live.values() if j.key is not None and j.key == run_id_or_key),
            None,
        )
        if job is None or job.task is None or job.task.done():
            return False
        job.cancel_reason = reason
        job.task.cancel(reason)
        return True

    async def drain(self, grace_s: float) -> list[DrainOutcome]:
        """Stop: accept nothing new, drop jobs still waiting for a slot, give running ones
        ``grace_s`` seconds, then cancel them and wait until they have ended cleanly."""
        self._draining = True
        jobs = list(self._live.values())
        for job in jobs:
            if job.state == "queued":
                self.cancel(job.run_id, NOT_STARTED)
        tasks = {job.task for job in jobs if job.task is not None}
        running = {job.task for job in jobs if job.state == "running" and job.task is not None}
        if running:
            await asyncio.wait(running, timeout=grace_s)
        reason = f"{SERVER_STOPPED} (drain grace {grace_s:g}s passed)"
        for job in jobs:
            if job.task is not None and not job.task.done() and job.state == "running":
                job.cancelled_at_drain = True
                self.cancel(job.run_id, reason)
        if tasks:
            await asyncio.wait(tasks)
        return [_outcome(job) for job in jobs]


def _outcome(job: _Job) -> DrainOutcome:
    result = job.result
    if job.state != "finished" or result is None:
        return DrainOutcome(job.run_id, job.profile, "not started")
    if result.error == NOT_STARTED:
        return DrainOutcome(job.run_id, job.profile, "not started")
    ended: Literal["finished", "cancelled at drain"] = (
        "cancelled at drain" if job.cancelled_at_drain else "finished"
    )
    return DrainOutcome(job.run_id, job.profile, ended, result.status, result.error)
