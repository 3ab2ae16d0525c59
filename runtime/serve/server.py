"""``corral serve``: one process with the scheduler, a worker pool and the HTTP API.

It is the only process that opens the store and the master key when a team runs corral as a
service: people hold API tokens, the service account owns ``CORRAL_HOME``. The loop:

- at start, fires and runs left running by a server that died are settled (the run is marked
  interrupted, the fire retried under its schedule's policy, never simply restarted);
- every ``tick_s`` the scheduler queues due fires and claims what may start; the worker pool runs
  them on one shared browser pool (at most ``workers`` at once);
- every ``CORRAL_GC_INTERVAL`` seconds (default an hour) run data past its retention is deleted
  (``corral gc``);
- SIGTERM (or SIGINT) drains: no new fire or run starts, running ones get ``grace_s`` to finish,
  then are cancelled cleanly (state saved, browser closed, lease released; their fires wait to be
  retried after a restart), the API stops last (so a person can still approve during the grace),
  and the exit report says what happened to each run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import socket
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psutil
import uvicorn

from profiles import CorralError, UserError, identity_is_gone, process_identity
from runtime.api import create_app
from runtime.app import Runtime
from runtime.auth import utcnow
from runtime.run.runner import new_run_id
from runtime.schedules.records import Fire, Schedule
from runtime.schedules.scheduler import Scheduler
from runtime.serve.fires import FireRunner
from runtime.serve.pool import WorkerPool

if TYPE_CHECKING:
    from runtime.serve.queue import JobLauncher
from runtime.settings import Settings, parse_public_url
from runtime.webhook import Webhook

__all__ = ["FireLauncher", "QuietServer", "ServeOptions", "ServeReport", "listen", "serve"]

log = logging.getLogger(__name__)

RECOVER_EVERY_S = 5.0
"""How often a server looks for fires and runs of servers that died."""


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8780
    workers: int = 4
    grace_s: float = 30.0
    tick_s: float = 0.5
    public_url: str | None = None
    """Where people reach the server (``--public-url``); else CORRAL_PUBLIC_URL, else its own
    address."""


@dataclass
class ServeReport:
    """What a server did, printed when it exits."""

    url: str = ""
    runs: list[str] = field(default_factory=list)
    """One line per run that was going at the drain: how it ended."""


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the serve loop decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class FireLauncher:
    """Runs claimed fires in this server's worker pool; see ``Launcher``."""

    def __init__(self, rt: Runtime, pool: WorkerPool, scheduler: Scheduler) -> None:
        self.pool = pool
        self.runner = FireRunner(rt, scheduler)

    def free_slots(self) -> int:
        return self.pool.free_slots()

    def cancel(self, fire_id: str, reason: str) -> bool:
        return self.pool.cancel(fire_id, reason)

    def launch(self, fire: Fire, schedule: Schedule) -> None:
        run_id = new_run_id()
        self.pool.start(
            lambda: self.runner.run(fire, schedule, run_id), run_id, fire.profile, key=fire.id
        )


def listen(host: str, port: int) -> socket.socket:
    """A non-blocking listening socket (port 0: a free one); a taken port is a UserError."""
    try:
        sock = socket.create_server((host, port), reuse_port=False)
    except OSError as exc:
        raise UserError(f"--host {host} --port {port}: cannot listen: {exc.strerror}") from exc
    # Accepted connections inherit it: without it a response written in two parts (headers,
    # then body) waits for the client's delayed ACK, ~40 ms per request on a kept-alive one.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


async def serve(
    settings: Settings,
    options: ServeOptions,
    *,
    announce: Callable[[str], None] = print,
    now: Callable[[], datetime] = utcnow,
    stop: asyncio.Event | None = None,
) -> ServeReport:
    """Run the server until SIGTERM/SIGINT (or ``stop`` is set), then drain; see the module."""
    report = ServeReport()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    public = parse_public_url(options.public_url, "--public-url") if options.public_url else None
    async with Runtime.open(settings) as rt, contextlib.AsyncExitStack() as stack:
        if not await rt.store.users.any_user():
            announce(
                "corral serve: no users yet, so the API refuses every request (it answers only "
                "API tokens); schedules still run. Create the first admin on this host: "
                "corral users add NAME --role super_admin"
            )
        pool = WorkerPool(rt, options.workers)
        webhook = rt.webhook()
        scheduler = Scheduler(
            rt.store.schedules,
            rt.store.schedules,
            process_identity(),
            now,
            notify=functools.partial(_send, webhook) if webhook else None,
        )
        await scheduler.recover(identity_is_gone)
        launcher: FireLauncher | JobLauncher = FireLauncher(rt, pool, scheduler)
        if settings.database_url:
            # Many hosts: fires become jobs that `corral worker` processes take.
            from runtime.serve.queue import JobLauncher, ensure_queue_schema, queue_app

            jobs = queue_app(settings.database_url)
            await stack.enter_async_context(jobs.open_async())
            await ensure_queue_schema(jobs, rt.store)
            launcher = JobLauncher(jobs, rt.store)
        sock = listen(options.host, options.port)
        port = sock.getsockname()[1]
        report.url = f"http://{options.host}:{port}"
        # Approval webhooks link to a request's page in the console, where people reach it.
        rt.settings = rt.settings.model_copy(
            update={"public_url": public or settings.public_url or _own_address(options.host, port)}
        )
        app = create_app(rt, pool)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        server = QuietServer(config)
        api = asyncio.create_task(server.serve(sockets=[sock]))
        runs_where = (
            "fires go to the job queue for `corral worker` processes"
            if settings.database_url
            else f"{options.workers} workers"
        )
        announce(
            f"corral serve: listening on {report.url} (console: {report.url}/console/, "
            f"API: {report.url}/api/docs), {runs_where}"
        )
        recovered_at = loop.time()
        # Run data past its retention, deleted on the serving host (each pass is idempotent, so
        # servers sharing a store may overlap); owned here and cancelled at the drain.
        gc = (
            asyncio.create_task(_gc_every(rt, settings.gc_interval_s), name="retention gc")
            if settings.gc_interval_s > 0
            else None
        )
        try:
            while not stop.is_set():
                if api.done():
                    break  # the API failed to start (its error surfaces below)
                try:
                    await scheduler.tick(launcher)
                    if loop.time() - recovered_at > RECOVER_EVERY_S:
                        recovered_at = loop.time()
                        await _recover(rt, scheduler, launcher)
                except CorralError as exc:
                    # A busy store, a failed notice: this tick's work waits for the next one.
                    log.warning("scheduler tick: %s", rt.redactor.text(str(exc)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), options.tick_s)
        finally:
            if gc is not None:
                gc.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await gc
            scheduler.draining = True
            announce(f"corral serve: draining (grace {options.grace_s:g}s)")
            outcomes = await pool.drain(options.grace_s)
            report.runs = [str(o) for o in outcomes]
            # A fire claimed here whose job never got going is not lost: it waits for a retry.
            await scheduler.recover(lambda owner: owner == scheduler.owner)
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await api
        for line in report.runs:
            announce(f"  {line}")
        announce(f"corral serve: stopped; {len(report.runs)} run(s) were going at the drain")
    return report


async def _recover(rt: Runtime, scheduler: Scheduler, launcher: FireLauncher | JobLauncher) -> None:
    """Settle what dead processes and hosts left running."""
    # This host's runs whose process is gone are over (other hosts' by their heartbeats).
    await rt.store.mark_orphaned_runs(psutil.pid_exists)
    # Runs of hosts that died or were cut off: by their lease heartbeats.
    await rt.store.interrupt_stale_runs()
    gone = await rt.store.interrupted_fire_runs()
    await scheduler.recover(identity_is_gone, gone.__contains__)
    if not isinstance(launcher, FireLauncher):
        await launcher.recover(scheduler, rt.settings.heartbeat_timeout_s)


async def _gc_every(rt: Runtime, interval_s: float) -> None:
    """Delete expired run data now, then every ``interval_s`` (see ``corral gc``)."""
    from runtime.services.retention import GC_ACTOR

    while True:
        try:
            report = await rt.services.retention.gc(GC_ACTOR)
            if report.deletions:
                log.info(
                    "retention gc: deleted %d kind(s) of data of %d run(s), %d file(s)",
                    len(report.deletions),
                    len({d.run_id for d in report.deletions}),
                    report.files,
                )
        except CorralError as exc:
            log.warning("retention gc: %s", rt.redactor.text(str(exc)))
        await asyncio.sleep(interval_s)


def _own_address(host: str, port: int) -> str:
    """The server's address as others may reach it (its host name when it listens on all)."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    return f"http://{host}:{port}"


async def _send(webhook: Webhook, event: dict[str, Any]) -> None:
    await webhook.send(event)
