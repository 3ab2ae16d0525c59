"""The scheduler: turns schedules into fires, and fires into runs under each schedule's policy.

One :meth:`Scheduler.tick` (a server calls it every fraction of a second; tests call it with a
fake clock) does three things:

1. **enqueue**: for each schedule, the nominal times between its cursor and now become fires, one
   per profile (a fire older than the catch-up window is recorded ``missed``, not run); the
   cursor moves on afterwards, so a crash in between only re-adds fires that already exist
   (their identity is unique in the store).
2. **dispatch**: due fires are claimed (one winner across servers) and handed to the
   :class:`Launcher`, in order, while it has free slots, applying the overlap policy of their
   schedule for the same profile and the per-schedule and per-origin limits.
3. the launcher reports each run's end to :meth:`Scheduler.finished`, which settles the fire:
   success, a denial (a decision: never retried), or a failure, retried with exponential backoff
   while retries remain, counted towards pausing the schedule after N failures in a row.

:meth:`Scheduler.recover` settles fires whose server died mid-run: their run was interrupted, so
the fire is retried under its policy, never simply started again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from runtime.errors import ScheduleError
from runtime.schedules.queue import FireQueue
from runtime.schedules.records import Fire, FireKind, FireStatus, Schedule
from runtime.schedules.timing import fire_id, fire_times, jitter_for
from runtime.store.schedules import ClaimLimits

if TYPE_CHECKING:
    from runtime.run.runner import RunResult
    from runtime.store.schedules import ScheduleRepository

__all__ = [
    "Enqueuer",
    "Launcher",
    "Notifier",
    "Outcome",
    "Scheduler",
    "TickReport",
    "anchor",
    "make_fire",
    "retry_delay_s",
]

log = logging.getLogger(__name__)

Notifier = Callable[[dict[str, Any]], Awaitable[None]]
"""Announces an event (the signed webhook in a server)."""

FIRE_TIMES_LIMIT = 10_000
"""Nominal times one tick considers per schedule; the rest come next tick."""

MAX_MISSED_ROWS = 100
"""Missed fires recorded per schedule and tick; older ones are only counted in the log."""

# Exit codes that a retry cannot change: bad input (2) and a denial (3).
_NOT_RETRIED = {2, 3}


class Launcher(Protocol):
    """What runs claimed fires: the server's worker pool."""

    def free_slots(self) -> int:
        """How many more runs may start now."""
        ...

    def launch(self, fire: Fire, schedule: Schedule) -> None:
        """Start the fire's run; its end comes back through :meth:`Scheduler.finished`."""
        ...

    def cancel(self, fire_id: str, reason: str) -> bool:
        """Cancel a fire's run if this launcher runs it."""
        ...


@runtime_checkable
class Enqueuer(Launcher, Protocol):
    """A launcher that hands claimed fires to a job queue that workers on any host take from.

    Its :meth:`enqueue` runs inside the transaction that claims the fire, so a fire is claimed
    if and only if its job exists; the claim records :attr:`claimant`, not this process, as the
    owner (the worker that takes the job writes its own identity over it).
    """

    claimant: str

    async def enqueue(self, conn: Any, fire: Fire, schedule: Schedule) -> None:
        """Add the job for ``fire``'s current attempt on ``conn`` (the claim's transaction)."""
        ...


@dataclass(frozen=True)
class Outcome:
    """How a fire's attempt ended: its run's status and exit code (see runtime.errors)."""

    status: str
    exit_code: int
    error: str | None = None

    @classmethod
    def of(cls, result: RunResult) -> Outcome:
        return cls(result.status, result.exit_code, result.error)


@dataclass
class TickReport:
    """What one tick did, for logs and tests."""

    queued: list[Fire] = field(default_factory=list)
    missed: int = 0
    started: list[Fire] = field(default_factory=list)
    skipped: list[Fire] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)


def retry_delay_s(schedule: Schedule, attempt: int) -> float:
    """The wait before attempt ``attempt + 1``: backoff doubling per attempt, capped."""
    policy = schedule.policy
    return float(min(policy.backoff_s * 2 ** max(attempt - 1, 0), policy.max_backoff_s))


def anchor(schedule: Schedule) -> datetime:
    """Where an interval schedule's grid starts: its start time, else its creation."""
    return schedule.timing.start_at or schedule.created_at


def make_fire(
    schedule: Schedule,
    at: datetime,
    profile: str,
    now: datetime,
    *,
    missed: bool = False,
    kind: FireKind = "scheduled",
) -> Fire:
    """The fire of ``schedule`` for nominal time ``at`` on ``profile``; its id is its identity,
    so every scheduler makes the same one. Only scheduled fires get jitter."""
    ident = fire_id(schedule.name, at, profile)
    jitter = jitter_for(schedule.timing, ident) if kind == "scheduled" else 0.0
    note = None
    if missed:
        note = (
            "missed: due while no server ran, older than the catch-up window "
            f"({schedule.policy.catchup_s:g}s)"
        )
    return Fire(
        id=ident,
        schedule=schedule.name,
        scheduled_at=at,
        profile=profile,
        kind=kind,
        origin=schedule.origin,
        due_at=at + timedelta(seconds=jitter),
        status="missed" if missed else "queued",
        finished_at=now if missed else None,
        note=note,
    )


class Scheduler:
    """Schedules to fires to runs, on an injected clock; see the module docstring."""

    def __init__(
        self,
        schedules: ScheduleRepository,
        queue: FireQueue,
        owner: str,
        now: Callable[[], datetime],
        notify: Notifier | None = None,
    ) -> None:
        self.schedules = schedules
        self.queue = queue
        self.owner = owner
        """Who claims: this server's identity (``host:pid:started``)."""
        self.now = now
        self._notify = notify
        self.draining = False
        """Set when the server stops: cancelled runs are then interruptions, retried later."""
        self._superseded: set[str] = set()

    async def tick(self, launcher: Launcher) -> TickReport:
        """Enqueue what is due, then start what may start."""
        report = TickReport()
        now = self.now()
        schedules = await self.schedules.all()
        for i, schedule in enumerate(schedules):
            try:
                await self._enqueue(schedule, now, report)
            except ScheduleError as exc:
                # A stored timing that no longer holds (e.g. a zone gone from the tz data):
                # this schedule stops, with the reason; the others go on.
                reason = f"paused: its timing no longer holds: {exc}"
                if await self.schedules.set_paused(schedule.name, True, reason, now):
                    log.error("schedule %s %s", schedule.name, reason)
                schedules[i] = schedule.model_copy(update={"paused": True, "paused_reason": reason})
        if not self.draining:
            await self.dispatch(launcher, now, report, schedules)
        return report

    # --- enqueue ---------------------------------------------------------------------------

    async def _enqueue(self, schedule: Schedule, now: datetime, report: TickReport) -> None:
        if now <= schedule.cursor:
            return
        if not schedule.paused:
            times = fire_times(
                schedule.timing,
                schedule.cursor,
                now,
                anchor=anchor(schedule),
                limit=FIRE_TIMES_LIMIT,
            )
            cutoff = now - timedelta(seconds=schedule.policy.catchup_s)
            missed = [t for t in times if t < cutoff]
            if len(missed) > MAX_MISSED_ROWS:
                log.warning(
                    "schedule %s: %d fires missed while no server ran; the latest %d recorded",
                    schedule.name,
                    len(missed),
                    MAX_MISSED_ROWS,
                )
            keep = set(missed[-MAX_MISSED_ROWS:])
            fires = [
                make_fire(schedule, t, profile, now, missed=t in keep)
                for t in times
                if t >= cutoff or t in keep
                for profile in schedule.profiles
            ]
            added = await self.queue.add_fires(fires)
            report.queued += [f for f in added if f.status == "queued"]
            report.missed += sum(f.status == "missed" for f in added)
            if len(times) == FIRE_TIMES_LIMIT:
                # Capped: go on from the last time next tick, so no fire is lost.
                now = times[-1]
        # Fires up to now exist (or were missed); another scheduler may have moved it first.
        await self.schedules.advance_cursor(schedule.name, schedule.cursor, now)

    # --- dispatch --------------------------------------------------------------------------

    async def dispatch(
        self,
        launcher: Launcher,
        now: datetime | None = None,
        report: TickReport | None = None,
        schedules: list[Schedule] | None = None,
    ) -> TickReport:
        """Claim and launch due fires while the launcher has room, by each schedule's policy
        (``schedules``: as the caller just read them)."""
        now = now or self.now()
        report = report or TickReport()
        if schedules is None:
            schedules = await self.schedules.all()
        by_name = {s.name: s for s in schedules}
        # A fire waiting for its retry still holds its place, as a running one does.
        busy = {(f.schedule, f.profile): f for f in await self.queue.active_fires()}
        waiting: set[tuple[str, str]] = set()  # pairs holding a buffered fire this round
        for fire in await self.queue.due_fires(now):
            schedule = by_name.get(fire.schedule)
            pair = (fire.schedule, fire.profile)
            if schedule is None:
                await self._skip(fire, "the schedule was removed", now, report)
                continue
            if schedule.paused and fire.kind == "scheduled":
                await self._skip(
                    fire, f"the schedule is paused: {schedule.paused_reason}", now, report
                )
                continue
            other = busy.get(pair)
            if other is not None and other.id == fire.id:
                other = None  # a retry coming due
            if other is not None or pair in waiting:
                verdict = await self._overlap(
                    schedule, fire, other, pair in waiting, launcher, now, report
                )
                if verdict == "wait":
                    waiting.add(pair)
                if verdict != "start":
                    continue
            if launcher.free_slots() <= 0:
                break
            limits = ClaimLimits(schedule.policy.concurrency, schedule.policy.origin_limit)
            claimed = await self._claim(fire, schedule, launcher, now, limits)
            if claimed is None:
                continue  # another server took it, or a limit is full: it stays queued
            busy[pair] = claimed
            report.started.append(claimed)
        return report

    async def _claim(
        self,
        fire: Fire,
        schedule: Schedule,
        launcher: Launcher,
        now: datetime,
        limits: ClaimLimits,
    ) -> Fire | None:
        """Claim ``fire`` and start it (or enqueue its job in the claim's transaction)."""
        if not isinstance(launcher, Enqueuer):
            if not await self.queue.claim(fire.id, self.owner, now, limits):
                return None
            claimed = await self.queue.get_fire(fire.id)
            assert claimed is not None
            launcher.launch(claimed, schedule)
            return claimed
        async with self.queue.transaction() as conn:
            if not await self.queue.claim(fire.id, launcher.claimant, now, limits):
                return None
            claimed = await self.queue.get_fire(fire.id)
            assert claimed is not None
            await launcher.enqueue(conn, claimed, schedule)
        return claimed

    async def _overlap(
        self,
        schedule: Schedule,
        fire: Fire,
        other: Fire | None,
        one_waits: bool,
        launcher: Launcher,
        now: datetime,
        report: TickReport,
    ) -> Literal["start", "wait", "skipped"]:
        """Apply the overlap policy to ``fire`` while ``other`` (running, or waiting for its
        retry) or an earlier buffered fire holds its schedule and profile."""
        overlap = schedule.policy.overlap
        if overlap == "allow":
            return "start"
        if overlap == "skip" or (overlap == "buffer_one" and one_waits):
            held = f"{other.id} still running" if other else "an earlier fire waits"
            await self._skip(fire, f"overlap {overlap}: {held}", now, report)
            return "skipped"
        if overlap == "cancel_other" and other is not None:
            note = f"cancelled: newer fire {fire.id} (overlap cancel_other)"
            if other.status == "queued":
                # A retry not started yet: the newer fire takes its place at once.
                if await self.queue.settle(other.id, "cancelled", note, now, from_status="queued"):
                    report.cancelled.append(other.id)
                return "wait" if one_waits else "start"
            if other.id not in self._superseded:
                self._superseded.add(other.id)
                launcher.cancel(other.id, note)
                report.cancelled.append(other.id)
        return "wait"  # buffer_one / buffer_all / cancel_other: starts once the pair is free

    async def _skip(self, fire: Fire, why: str, now: datetime, report: TickReport) -> None:
        if await self.queue.settle(fire.id, "skipped", why, now, from_status="queued"):
            report.skipped.append(fire)

    # --- outcomes --------------------------------------------------------------------------

    async def started(self, fire: Fire, run_id: str) -> None:
        """The launcher picked the run id of the fire's current attempt."""
        await self.queue.set_run(fire.id, run_id)

    async def finished(self, fire: Fire, outcome: Outcome) -> Fire:
        """Settle a fire from how its attempt ended: success, denial, retry, or failure
        (which may pause the schedule). Bad input (exit 2) and denials (3) are not retried."""
        now = self.now()
        current = await self.queue.get_fire(fire.id)
        if current is not None and (current.attempt, current.claimed_by) != (
            fire.attempt,
            fire.claimed_by,
        ):
            # Recovered meanwhile (this attempt's run was marked interrupted, e.g. while this
            # host was cut off) and maybe running again: that attempt is not this one's to settle.
            return current
        schedule = await self.schedules.get(fire.schedule)
        why = outcome.error or outcome.status
        if outcome.status == "cancelled" and not self.draining:
            # cancel_other's newer fire, or a person: a decision, not a failure.
            self._superseded.discard(fire.id)
            return await self._settle(fire, "cancelled", why, now)
        if outcome.status == "cancelled":
            # The server stopped (an operator's act, not the task's fault): the fire runs
            # again after the restart, without using a retry or counting as a failure.
            note = (
                f"attempt {fire.attempt} cut short by a server stop ({why}); it runs again "
                "after the restart (not counted as a failure)"
            )
            return await self._settle(fire, "queued", note, now, due_at=now, interrupted=True)
        if outcome.status == "succeeded":
            settled = await self._settle(fire, "succeeded", None, now)
            await self.schedules.count_outcome(fire.schedule, failed=False)
            return settled
        if outcome.status == "denied":
            return await self._settle(fire, "denied", why, now)
        if outcome.exit_code == 2:
            why = f"bad input: {why}"
        elif outcome.status in ("cancelled", "interrupted"):
            why = f"interrupted: {why}"
        retry = outcome.exit_code not in _NOT_RETRIED
        return await self._failed(fire, schedule, why, now, retry=retry)

    async def _failed(
        self, fire: Fire, schedule: Schedule | None, why: str, now: datetime, *, retry: bool
    ) -> Fire:
        failed_attempts = fire.attempt - fire.interruptions
        if retry and schedule is not None and failed_attempts <= schedule.policy.retries:
            delay = retry_delay_s(schedule, failed_attempts)
            note = (
                f"attempt {fire.attempt} failed ({why}); retry "
                f"{failed_attempts}/{schedule.policy.retries} in {delay:g}s"
            )
            due = now + timedelta(seconds=delay)
            return await self._settle(fire, "queued", note, now, due_at=due)
        settled = await self._settle(fire, "failed", why, now)
        if schedule is None:
            return settled
        failures = await self.schedules.count_outcome(schedule.name, failed=True)
        await self.announce(schedule, "fire.failed", settled, error=why)
        limit = schedule.policy.pause_after
        if limit is not None and failures >= limit:
            reason = f"paused after {failures} failed fires in a row (pause_after={limit})"
            if await self.schedules.set_paused(schedule.name, True, reason, now):
                await self.announce(schedule, "schedule.paused", settled, reason=reason)
        return settled

    async def _settle(
        self,
        fire: Fire,
        status: FireStatus,
        note: str | None,
        now: datetime,
        due_at: datetime | None = None,
        interrupted: bool = False,
    ) -> Fire:
        await self.queue.settle(
            fire.id,
            status,
            note,
            now,
            from_status="running",
            due_at=due_at,
            interrupted=interrupted,
        )
        settled = await self.queue.get_fire(fire.id)
        return settled or fire

    async def recover(
        self,
        is_gone: Callable[[str], bool],
        run_is_gone: Callable[[str], bool] = lambda _run_id: False,
    ) -> list[Fire]:
        """Settle running fires whose server is gone (``is_gone(claimed_by)``) or whose run is
        (``run_is_gone(run_id)``: marked interrupted, e.g. its host stopped renewing the profile
        lease): their run was interrupted, so each is retried under its policy or failed;
        never simply restarted."""
        settled = []
        for fire in await self.queue.active_fires():
            if fire.status != "running" or fire.claimed_by is None:
                continue
            if is_gone(fire.claimed_by):
                why = f"interrupted: the server running it ({fire.claimed_by}) ended"
            elif fire.run_id is not None and run_is_gone(fire.run_id):
                why = f"interrupted: its run {fire.run_id} was interrupted on {fire.claimed_by}"
            else:
                continue
            settled.append(await self.interrupted(fire, why))
        return settled

    async def interrupted(self, fire: Fire, why: str) -> Fire:
        """Settle a running fire whose attempt was cut off (its process or host died): retried
        under its policy, or failed; a settle that another server made first wins."""
        schedule = await self.schedules.get(fire.schedule)
        return await self._failed(fire, schedule, why, self.now(), retry=True)

    async def announce(self, schedule: Schedule, event: str, fire: Fire, **extra: Any) -> None:
        """Send ``event`` about ``fire`` if the schedule asks for that kind of notice."""
        kind = {"fire.failed": "failure", "schedule.paused": "pause"}.get(event, "approval")
        if self._notify is None or kind not in schedule.policy.notify:
            return
        try:
            await self._notify(
                {"event": event, "schedule": schedule.name, **fire.summary(), **extra}
            )
        except Exception:  # a notice never stops the scheduler
            log.exception("notification %s for %s failed", event, fire.id)
