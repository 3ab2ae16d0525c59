"""Fires as jobs on Procrastinate, for many hosts sharing one PostgreSQL store.

With ``CORRAL_DATABASE_URL`` set, ``corral serve`` does not run fires itself: its scheduler claims
each due fire and, in the same transaction, adds a Procrastinate job for that attempt
(:class:`JobLauncher`); ``corral worker`` processes on any host take the jobs and run them
(:func:`work`). Procrastinate's tables live in the same database as corral's, which is what lets
a fire be claimed if and only if its job exists. What each part guarantees:

- **one run per fire attempt**: the job's ``queueing_lock`` is the fire's id and attempt, so the
  same attempt is never queued twice; the worker takes the attempt over with one conditional
  ``UPDATE`` (:meth:`~runtime.store.schedules.ScheduleRepository.take_over`), so a job that
  outlived its attempt (settled, retried) does nothing;
- **one run per profile at a time**: jobs carry the profile as Procrastinate's ``lock``, so a
  profile's jobs run one after another across every worker (the profile lease still decides);
- **a dead worker**: Procrastinate workers send heartbeats; :meth:`JobLauncher.recover` finds jobs
  of workers silent for longer than the heartbeat timeout, fails those jobs (freeing their
  profile's lock) and settles their fires as interrupted, so they are retried under their
  schedule's policy on whichever worker takes the new job;
- **shutdown**: SIGTERM stops taking jobs, gives running runs the grace period, then cancels them;
  their fires are queued again without counting as a failure.

Procrastinate is imported only here (``pip install 'corral[postgres]'``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any

from profiles import UserError, process_identity
from runtime.app import Runtime
from runtime.auth import utcnow
from runtime.run.runner import new_run_id
from runtime.schedules.records import Fire, Schedule
from runtime.schedules.scheduler import Scheduler
from runtime.serve.fires import FireRunner
from runtime.settings import Settings
from runtime.store import Store

try:
    import procrastinate
    from procrastinate.jobs import Status
except ImportError as exc:  # pragma: no cover - depends on the install
    raise UserError(
        "running on PostgreSQL with workers needs Procrastinate: pip install 'corral[postgres]'"
    ) from exc

__all__ = [
    "CLAIMANT",
    "QUEUE",
    "TASK_NAME",
    "JobLauncher",
    "ensure_queue_schema",
    "queue_app",
    "work",
]

log = logging.getLogger(__name__)

TASK_NAME = "corral.run_fire"
QUEUE = "corral_fires"
CLAIMANT = "queue"
"""``claimed_by`` of a fire whose job waits for a worker (not a process: no host owns it)."""


def queue_app(url: str) -> procrastinate.App:
    """A Procrastinate app on the store's database (not opened yet)."""
    connector = procrastinate.PsycopgConnector(conninfo=url, min_size=1, max_size=4)
    return procrastinate.App(connector=connector)


async def ensure_queue_schema(app: procrastinate.App, store: Store) -> None:
    """Procrastinate's tables in the store's database, created once (under the store's
    migration lock, so hosts starting together do not race)."""
    async with store.migrating():
        row = await store.fetch_one(
            "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present"
        )
        if row is None or not row["present"]:
            await app.schema_manager.apply_schema_async()


def _job_args(job: Any) -> tuple[str, int] | None:
    kwargs = getattr(job, "task_kwargs", None) or {}
    fire_id, attempt = kwargs.get("fire_id"), kwargs.get("attempt")
    if isinstance(fire_id, str) and isinstance(attempt, int):
        return fire_id, attempt
    return None


class JobLauncher:
    """The scheduler's launcher in the cluster mode: a claimed fire becomes a job (an
    :class:`~runtime.schedules.scheduler.Enqueuer`)."""

    claimant = CLAIMANT

    def __init__(self, app: procrastinate.App, store: Store) -> None:
        self.app = app
        self.store = store
        self._aborts: set[asyncio.Task[None]] = set()

    def free_slots(self) -> int:
        # Jobs wait in the queue for a worker; a tick claims at most the due fires it read.
        return 1_000_000

    def launch(self, fire: Fire, schedule: Schedule) -> None:
        raise RuntimeError("fires reach workers through enqueue(), in the claim's transaction")

    async def enqueue(self, conn: Any, fire: Fire, schedule: Schedule) -> None:
        await self.app.configure_task(
            TASK_NAME,
            connection=conn.raw,
            queue=QUEUE,
            lock=f"profile:{fire.profile}",
            queueing_lock=f"{fire.id}#{fire.attempt}",
        ).defer_async(fire_id=fire.id, attempt=fire.attempt)

    def cancel(self, fire_id: str, reason: str) -> bool:
        """Ask the worker running ``fire_id`` to cancel it (Procrastinate's abort cancels the
        run's task there)."""
        task = asyncio.get_running_loop().create_task(self._abort(fire_id, reason))
        self._aborts.add(task)
        task.add_done_callback(self._aborts.discard)
        return True

    async def _abort(self, fire_id: str, reason: str) -> None:
        fire = await self.store.schedules.get_fire(fire_id)
        if fire is None:
            return
        rows = await self.store.fetch_all(
            "SELECT id FROM procrastinate_jobs WHERE queueing_lock = ? "
            "AND status IN ('todo', 'doing')",
            (f"{fire.id}#{fire.attempt}",),
        )
        for row in rows:
            log.info("fire %s: aborting job %s (%s)", fire_id, row["id"], reason)
            await self.app.job_manager.cancel_job_by_id_async(int(row["id"]), abort=True)

    async def recover(self, scheduler: Scheduler, heartbeat_timeout_s: float) -> list[Fire]:
        """Jobs of workers silent for ``heartbeat_timeout_s``: fail the job, settle its fire as
        interrupted (retried under its policy); returns the fires settled here."""
        stalled = await self.app.job_manager.get_stalled_jobs(
            task_name=TASK_NAME, seconds_since_heartbeat=heartbeat_timeout_s
        )
        settled: list[Fire] = []
        for job in stalled:
            assert job.id is not None
            await self.app.job_manager.finish_job_by_id_async(
                job.id, status=Status.FAILED, delete_job=False
            )
            args = _job_args(job)
            if args is None:
                continue
            fire = await self.store.schedules.get_fire(args[0])
            if fire is None or fire.status != "running" or fire.attempt != args[1]:
                continue
            why = (
                f"interrupted: the worker running it ({fire.claimed_by}) stopped sending heartbeats"
            )
            if fire.run_id:
                await self.store.interrupt_runs([fire.run_id], why)
            settled.append(await scheduler.interrupted(fire, why))
        return settled


async def work(
    settings: Settings,
    concurrency: int,
    grace_s: float,
    *,
    announce: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
) -> None:
    """``corral worker``: run fires' jobs from the queue until SIGTERM/SIGINT (or ``stop``)."""
    if not settings.database_url:
        raise UserError(
            "corral worker takes fires from the store shared by every host: set "
            "CORRAL_DATABASE_URL=postgresql://... (the same as corral serve's)"
        )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    identity = process_identity()
    async with Runtime.open(settings) as rt:
        app = queue_app(settings.database_url)
        async with app.open_async():
            await ensure_queue_schema(app, rt.store)
            webhook = rt.webhook()

            async def notify(event: dict[str, Any]) -> None:
                if webhook is not None:
                    await webhook.send(event)

            scheduler = Scheduler(
                rt.store.schedules, rt.store.schedules, identity, utcnow, notify=notify
            )
            runner = FireRunner(rt, scheduler)

            async def run_fire(fire_id: str, attempt: int) -> None:
                fire = await rt.store.schedules.take_over(fire_id, attempt, CLAIMANT, identity)
                if fire is None:
                    log.info("fire %s attempt %d: no longer waiting; job skipped", fire_id, attempt)
                    return
                schedule = await rt.store.schedules.get(fire.schedule)
                if schedule is None:
                    await scheduler.interrupted(fire, "the schedule was removed")
                    return
                await runner.run(fire, schedule, new_run_id())

            app.task(name=TASK_NAME, queue=QUEUE)(run_fire)
            timeout = settings.heartbeat_timeout_s
            worker = asyncio.create_task(
                app.run_worker_async(
                    queues=[QUEUE],
                    name=identity,
                    concurrency=concurrency,
                    install_signal_handlers=False,
                    shutdown_graceful_timeout=grace_s,
                    update_heartbeat_interval=max(0.5, timeout / 4),
                    stalled_worker_timeout=timeout,
                    delete_jobs="successful",
                )
            )
            announce(
                f"corral worker: {identity} takes fires from {rt.store.where} "
                f"({concurrency} at once)"
            )
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            # Runs cut short from here on are a stop, not a failure: their fires run again.
            scheduler.draining = True
            if not worker.done():
                announce(f"corral worker: stopping (grace {grace_s:g}s)")
                worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            announce("corral worker: stopped")
