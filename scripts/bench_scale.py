#!/usr/bin/env python3
"""Scale benchmark: fires on PostgreSQL with 1, 2 and 3 ``corral worker`` processes, beside the
embedded mode (SQLite, one ``corral serve --workers C``), in one run on this machine.

Every mode gets a fresh store (a new SQLite home, or a new database on one throwaway PostgreSQL
server), the same 100 profiles, the same short scripted task on the demo portal (open the sign-in
page, wait for its button; ``trace: off``) and the same total concurrency ``C`` (embedded:
``--workers C``; PostgreSQL: ``corral serve`` plus N workers with ``--concurrency C/N``). The hosts
are real processes, each with a CORRAL_HOME of its own. A short warm-up (one fire per slot, not
measured) launches each process's browser first. Then two phases:

- **burst** (throughput): ``--fires`` fires (default 500 = 5 times x 100 profiles) created at once
  by a backfill, all due at the same moment, overlap ``buffer_all`` (a profile's fires run one
  after another). Wall = the backfill's due time to the last fire settled; runs/s; lateness (run
  start - due time) there is mostly the wait for a free slot (the drain order);
- **paced** (lateness): ``--paced-fires`` fires of an interval schedule over the same profiles,
  spread by jitter at ``--rate`` fires/s (default: half the embedded mode's burst throughput, so
  below what the modes sustain; every mode gets the same rate), so a fire usually finds a free
  slot: lateness = run start (``runs.started_at``) - the fire's due time (scheduled + jitter) is
  the dispatch path itself: scheduler tick, claim, (job queue, worker pick-up), run set-up.

Queue overhead per run: paced claim -> run start beside the embedded mode's (both claim when a
slot is free), and burst slot time per run (wall x C / runs) less the mean run time. Verified
from the store per mode: every fire exists once and succeeded (0 lost), one run per fire and
attempt 1 (0 duplicates), and on PostgreSQL one Procrastinate job per attempt (a trigger in the
benchmark's database logs every job row inserted and every status change: successful jobs are
deleted by the worker). CPU seconds of the processes involved (corral processes, their browsers,
PostgreSQL) are sampled per mode.

Usage: PYTHONPATH=. .venv/bin/python scripts/bench_scale.py [--fires 500] [--profiles 100]
[--paced-fires 100] [--rate R] [--concurrency 6] [--workers 1,2,3] [--timeout 900] [--write]
Quick try: --fires 60 --profiles 12 --paced-fires 12. `--render DIR/results.json [--write]` prints
(or writes) a finished run's section again from its saved figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _bench_common import summarize, write_section  # noqa: E402

from runtime import Runtime, Settings  # noqa: E402
from runtime.auth import LOCAL_ACTOR  # noqa: E402
from runtime.demo.portal import PortalServer  # noqa: E402
from runtime.demo.postgres import PgServer, pg_server  # noqa: E402
from runtime.records import RunRecord  # noqa: E402
from runtime.schedules import Fire, SchedulePolicy, Timing  # noqa: E402
from runtime.services import ScheduleInput  # noqa: E402

CORRAL = [str(Path(sys.executable).parent / "corral")]
BURST, PACED, WARM = "burst", "paced", "warm"
BURST_EVERY_S = 60.0

# Logs each Procrastinate job row as it is inserted and as its status changes (the worker
# deletes successful jobs, so the table alone cannot show how many there were).
JOB_LOG_SQL = """
CREATE TABLE bench_job_log (
    job_id bigint, queueing_lock text, status text, at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION bench_job_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_job_log (job_id, queueing_lock, status)
    VALUES (NEW.id, NEW.queueing_lock, NEW.status::text);
    RETURN NEW;
END $$;
CREATE TRIGGER bench_job_log AFTER INSERT OR UPDATE OF status ON procrastinate_jobs
    FOR EACH ROW EXECUTE FUNCTION bench_job_log();
"""


def task_yaml(portal: str) -> str:
    return (
        "name: bench-open\n"
        f"start_url: {portal}/login\n"
        "trace: off\n"
        "steps:\n"
        "  - wait_for: {role: button, name: Sign in}\n"
    )


@dataclass(frozen=True)
class Mode:
    """One way to run the fires: embedded (``workers == 0``) or PostgreSQL with N workers."""

    workers: int
    concurrency: int  # total runs at once

    @property
    def label(self) -> str:
        if not self.workers:
            return f"embedded (SQLite, serve --workers {self.concurrency})"
        each = self.concurrency // self.workers
        return f"PostgreSQL, serve + {self.workers} worker{'s' * (self.workers > 1)} x {each}"

    @property
    def key(self) -> str:
        return "embedded" if not self.workers else f"pg-{self.workers}w"


# --- processes -------------------------------------------------------------------------------


class Host:
    """One ``corral`` process in a session (process group) of its own, logging to a file."""

    def __init__(
        self, root: Path, name: str, env: dict[str, str], *args: str, home: Path | None = None
    ) -> None:
        self.name = name
        self.log = root / f"{name}.log"
        root.mkdir(parents=True, exist_ok=True)
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [*CORRAL, *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**env, "CORRAL_HOME": str(home or root / name)},
                start_new_session=True,
            )
        self.seen: dict[int, psutil.Process] = {}
        self._terminated = False

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def ready(self, marker: str, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while marker not in self.text():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n{self.text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready in {timeout_s:g}s:\n{self.text()}")
            await asyncio.sleep(0.2)

    def tree(self) -> list[psutil.Process]:
        """The process and its descendants now (remembered, to end them all at the end)."""
        try:
            root = psutil.Process(self.proc.pid)
            found = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        self.seen.update({p.pid: p for p in found})
        return found

    def terminate(self) -> None:
        """SIGTERM, once (a second one while it shuts down would kill it outright)."""
        self.tree()
        if self.proc.poll() is None and not self._terminated:
            self._terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout_s: float) -> int | None:
        """SIGTERM, wait; None if it had to be killed."""
        self.terminate()
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.reap()
            return None

    def reap(self) -> None:
        """Kill its process group and every descendant ever seen (a browser may have left the
        group)."""
        self.tree()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for proc in self.seen.values():
            with contextlib.suppress(psutil.Error):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    proc.kill()


@contextlib.contextmanager
def hosts() -> Iterator[list[Host]]:
    started: list[Host] = []
    try:
        yield started
    finally:
        for host in started:
            host.reap()


def host_env() -> dict[str, str]:
    """This environment without corral's own settings (but the browser), with this checkout
    first on the import path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    if os.environ.get("CORRAL_BROWSER"):
        env["CORRAL_BROWSER"] = os.environ["CORRAL_BROWSER"]
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


class CpuSampler:
    """CPU seconds used by the hosts' process trees and the PostgreSQL server, by kind
    (corral, chromium, Playwright's driver, postgres), sampled on a thread every 0.5 s (a
    process that ends between samples loses at most that much)."""

    def __init__(self, started: list[Host], pg_pid: int | None) -> None:
        self.started = started
        self.pg_pid = pg_pid
        self._first: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.cpu: dict[str, float] = {}

    def _procs(self) -> list[psutil.Process]:
        procs = [p for h in self.started for p in h.tree()]
        if self.pg_pid:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(self.pg_pid)
                procs += [root, *root.children(recursive=True)]
        return procs

    def sample(self) -> None:
        with self._lock:
            for proc in self._procs():
                try:
                    name = proc.name()
                    used = sum(proc.cpu_times()[:2])
                except psutil.Error:
                    continue
                kind = "chromium" if "chrom" in name else None
                kind = kind or ("postgres" if "postgres" in name else None)
                kind = kind or ("driver" if name.startswith("node") else "corral")
                self._first.setdefault(proc.pid, 0.0)  # a process new since: all of it counts
                self._last[proc.pid] = (kind, used)

    def rebase(self) -> None:
        """Count only the CPU time used from now on."""
        self.sample()
        with self._lock:
            self._first = {pid: used for pid, (_kind, used) in self._last.items()}

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def __enter__(self) -> CpuSampler:
        self.rebase()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
        cpu: dict[str, float] = {}
        for pid, (kind, used) in self._last.items():
            cpu[kind] = cpu.get(kind, 0.0) + used - self._first.get(pid, 0.0)
        self.cpu = {k: round(v, 1) for k, v in sorted(cpu.items())}


# --- one mode --------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    expected: int
    started: float = 0.0  # monotonic
    finished: bool = False
    elapsed_s: float = 0.0


@dataclass
class ModeResult:
    mode: Mode
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    rate: float | None = None
    """The paced phase's fires per second."""
    load: list[float] = field(default_factory=list)
    """The machine's 1-minute load average at the mode's start and end (shared machine)."""


def _ts(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ms(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() * 1000


async def settled_count(rt: Runtime, schedule: str) -> int:
    row = await rt.store.fetch_one(
        "SELECT COUNT(*) AS n FROM fires WHERE schedule = ? AND status NOT IN ('queued', "
        "'running')",
        (schedule,),
    )
    return int(row["n"]) if row else 0


async def wait_settled(rt: Runtime, phase: Phase, timeout_s: float, watch: list[Host]) -> None:
    """Until ``phase.expected`` fires of its schedule settled, a host died, or the timeout."""
    while True:
        done = await settled_count(rt, phase.name)
        phase.elapsed_s = time.monotonic() - phase.started
        if done >= phase.expected:
            phase.finished = True
            return
        dead = [h for h in watch if h.proc.poll() is not None]
        if dead or phase.elapsed_s > timeout_s:
            why = f"{dead[0].name} exited" if dead else f"timeout {timeout_s:g}s"
            print(f"  {phase.name}: {done}/{phase.expected} settled ({why})", flush=True)
            return
        await asyncio.sleep(0.5)


async def add_schedule(rt: Runtime, name: str, task: str, profiles: list[str], t: Timing) -> None:
    await rt.services.schedules.add(
        LOCAL_ACTOR,
        ScheduleInput(
            name=name,
            task_yaml=task,
            task_source="bench",
            profiles=profiles,
            timing=t,
            policy=SchedulePolicy(overlap="buffer_all", pause_after=None),
        ),
    )


class _Unfinished(Exception):
    """A phase did not finish in time: the next one is not started."""


async def run_mode(
    mode: Mode,
    pg: PgServer | None,
    portal: str,
    args: argparse.Namespace,
    root: Path,
    rate: float | None,
) -> ModeResult:
    result = ModeResult(mode, load=[os.getloadavg()[0]])
    home = root / mode.key
    url = pg.fresh_database() if pg is not None and mode.workers else None
    settings = Settings(home=home / "bench", database_url=url)
    names = [f"p{i:03d}" for i in range(args.profiles)]
    warm = [f"w{i:02d}" for i in range(mode.concurrency)]
    task = task_yaml(portal)
    times = max(1, args.fires // args.profiles)
    paced_times = max(1, args.paced_fires // args.profiles)
    async with Runtime.open(settings) as rt:
        for name in [*names, *warm]:
            await rt.profiles.create(name)
        env = host_env()
        if url is not None:
            assert pg is not None
            from runtime.serve.queue import ensure_queue_schema, queue_app

            app = queue_app(url)
            async with app.open_async():
                await ensure_queue_schema(app, rt.store)
            pg.sql(JOB_LOG_SQL, urlsplit(url).path.lstrip("/"))
            env |= {
                "CORRAL_DATABASE_URL": url,
                "CORRAL_MASTER_KEY": (settings.home / "master.key").read_text().strip(),
            }
        # The burst: past grid times, backfilled (due at once); nothing fires by itself.
        now = datetime.now(UTC).replace(microsecond=0)
        base = now - timedelta(seconds=BURST_EVERY_S * (times + 2))
        last = base + timedelta(seconds=BURST_EVERY_S * (times - 1))
        await add_schedule(
            rt,
            BURST,
            task,
            names,
            Timing(every_s=BURST_EVERY_S, start_at=base, end_at=last + timedelta(seconds=1)),
        )
        await add_schedule(
            rt, WARM, task, warm, Timing(every_s=3600, start_at=now + timedelta(days=300))
        )
        ran: list[Phase] = []
        with hosts() as started, contextlib.ExitStack() as stack:
            if url is None:
                # Embedded: the server works in the benchmark's home (its SQLite store).
                workers = str(mode.concurrency)
                serve = ("serve", "--port", "0", "--workers", workers)
                started.append(Host(home, "serve", env, *serve, home=settings.home))
            else:
                each = mode.concurrency // mode.workers
                for i in range(mode.workers):
                    started.append(
                        Host(home, f"worker-{i}", env, "worker", "--concurrency", str(each))
                    )
                started.append(Host(home, "serve", env, "serve", "--port", "0"))
            for host in started:
                worker = host.name.startswith("worker")
                await host.ready("takes fires from" if worker else "listening on")
            pg_pid = _postmaster_pid(pg) if pg is not None and url is not None else None
            sampler = stack.enter_context(CpuSampler(started, pg_pid))
            try:
                # Warm-up: a fire per slot, so each process has launched its browser.
                await rt.services.schedules.run_now(LOCAL_ACTOR, WARM)
                await wait_settled(rt, Phase(WARM, len(warm), time.monotonic()), 180, started)
                sampler.rebase()  # the warm-up (browser launches) is not counted

                burst = Phase(BURST, times * len(names), time.monotonic())
                ran.append(burst)
                await rt.services.schedules.backfill(
                    LOCAL_ACTOR, BURST, base - timedelta(seconds=1), last
                )
                await wait_settled(rt, burst, args.timeout, started)
                print(f"  burst: {burst.elapsed_s:.1f}s", flush=True)
                paced = Phase(PACED, paced_times * len(names))
                if not burst.finished:
                    raise _Unfinished
                if rate is None:
                    # Half this mode's burst throughput: a rate it sustains.
                    done = (await measure(rt, burst, mode, None)).get("runs_per_s") or 2.0
                    rate = max(0.05, round(done / 2, 2))
                result.rate = rate

                every = args.profiles / rate
                start_at = datetime.now(UTC) + timedelta(seconds=2)
                await add_schedule(
                    rt,
                    PACED,
                    task,
                    names,
                    Timing(
                        every_s=every,
                        jitter_s=every * 0.8,
                        start_at=start_at,
                        end_at=start_at + timedelta(seconds=every * (paced_times - 1) + 0.5),
                    ),
                )
                paced.started = time.monotonic()
                ran.append(paced)
                await wait_settled(rt, paced, every * paced_times + args.timeout, started)
                print(f"  paced: {paced.elapsed_s:.1f}s", flush=True)
            except _Unfinished:
                result.error = "the burst did not finish: the paced phase was not run"
            finally:
                for host in started:
                    host.terminate()
                codes = {h.name: h.stop(90) for h in started}
            result.checks["exit_codes"] = codes
            if any(c != 0 for c in codes.values()):
                stopped = ", ".join(f"{n} {c}" for n, c in codes.items() if c != 0)
                result.error = f"{result.error or ''} a host did not stop cleanly: {stopped}"
        result.cpu = sampler.cpu
        result.load.append(os.getloadavg()[0])
        jobs = await job_log(rt) if url is not None else None
        for phase in ran:
            result.phases[phase.name] = await measure(rt, phase, mode, jobs)
        result.checks |= await verify(rt, ran, jobs)
    return result


def _postmaster_pid(pg: PgServer) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((pg.data / "postmaster.pid").read_text().splitlines()[0])
    # As root the data folder is the postgres user's: find the server by its port.
    for proc in psutil.process_iter(["name", "cmdline", "ppid"]):
        cmd = proc.info["cmdline"] or []
        if "postgres" in (proc.info["name"] or "") and str(pg.port) in cmd:
            return proc.pid
    return None


async def job_log(rt: Runtime) -> list[dict[str, Any]]:
    rows = await rt.store.fetch_all(
        "SELECT job_id, queueing_lock, status, at FROM bench_job_log ORDER BY at"
    )
    return [dict(r) for r in rows]


async def fires_and_runs(rt: Runtime, schedule: str) -> tuple[list[Fire], list[RunRecord]]:
    fires = await rt.store.schedules.list_fires(schedule, limit=1_000_000)
    runs = await rt.store.runs.list_runs(limit=1_000_000, schedule=schedule)
    return fires, runs


async def measure(
    rt: Runtime, phase: Phase, mode: Mode, jobs: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """A phase's figures from the store."""
    fires, runs = await fires_and_runs(rt, phase.name)
    by_id = {r.id: r for r in runs}
    done = [f for f in fires if f.status == "succeeded" and f.run_id in by_id]
    picked: dict[str, datetime] = {}
    for row in jobs or []:
        if row["status"] == "doing":
            picked.setdefault(row["queueing_lock"], _ts(row["at"]))
    lateness, due_claim, claim_start, claim_pick, pick_start, run_s = [], [], [], [], [], []
    for fire in done:
        run = by_id[fire.run_id]  # type: ignore[index]
        start = _ts(run.started_at)
        lateness.append(_ms(_ts(fire.due_at), start))
        if fire.claimed_at is not None:
            due_claim.append(_ms(_ts(fire.due_at), _ts(fire.claimed_at)))
            claim_start.append(_ms(_ts(fire.claimed_at), start))
            pick = picked.get(f"{fire.id}#{fire.attempt}")
            if pick is not None:
                claim_pick.append(_ms(_ts(fire.claimed_at), pick))
                pick_start.append(_ms(pick, start))
        if run.finished_at is not None:
            run_s.append((_ts(run.finished_at) - start).total_seconds())
    out: dict[str, Any] = {
        "expected": phase.expected,
        "succeeded": len(done),
        "finished": phase.finished,
        "lateness": summarize(lateness),
        "due_to_claim": summarize(due_claim),
        "claim_to_start": summarize(claim_start),
        "claim_to_pickup": summarize(claim_pick),
        "pickup_to_start": summarize(pick_start),
        "run_s": summarize([s * 1000 for s in run_s]),
    }
    if done:
        first_due = min(_ts(f.due_at) for f in done)
        ends = [_ts(f.finished_at) for f in done if f.finished_at is not None]
        wall = (max(ends) - first_due).total_seconds() if ends else phase.elapsed_s
        out["wall_s"] = round(wall, 2)
        out["runs_per_s"] = round(len(done) / wall, 2) if wall > 0 else None
        slot = wall * mode.concurrency / len(done)
        out["slot_s_per_run"] = round(slot, 3)
        mean_run = sum(run_s) / len(run_s) if run_s else 0.0
        out["overhead_s_per_run"] = round(slot - mean_run, 3)
    return out


async def verify(
    rt: Runtime, phases: list[Phase], jobs: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """Exactly once, from the store: one fire per (time, profile), each succeeded once, one
    run per fire, one job per attempt."""
    expected = attempts = succeeded = duplicates = retried = twins = 0
    not_ok: Counter[str] = Counter()
    locks: set[str] = set()
    for phase in phases:
        fires, runs = await fires_and_runs(rt, phase.name)
        expected += phase.expected
        twins += sum(n - 1 for n in Counter((f.scheduled_at, f.profile) for f in fires).values())
        per_fire = Counter(r.fire_id for r in runs)
        duplicates += sum(n - 1 for n in per_fire.values() if n > 1)
        for fire in fires:
            attempts += fire.attempt
            retried += fire.attempt > 1
            if fire.status == "succeeded" and per_fire[fire.id] == 1:
                succeeded += 1
            else:
                not_ok[fire.status] += 1
            locks |= {f"{fire.id}#{a}" for a in range(1, fire.attempt + 1)}
        not_ok["run not succeeded"] += sum(r.status != "succeeded" for r in runs)
    out: dict[str, Any] = {
        "expected": expected,
        "succeeded_once": succeeded,
        "lost": expected - succeeded,
        "duplicate_runs": duplicates,
        "duplicate_fires": twins,
        "retried": retried,
        "not_succeeded": {k: v for k, v in not_ok.items() if v},
    }
    if jobs is not None:
        inserted = Counter(r["queueing_lock"] for r in jobs if r["status"] == "todo")
        mine = {k: v for k, v in inserted.items() if k in locks}
        out["jobs"] = sum(mine.values())
        out["attempts"] = len(locks)
        out["jobs_per_attempt_max"] = max(mine.values(), default=0)
        out["attempts_without_job"] = len(locks - set(mine))
        left = await rt.store.fetch_all(
            "SELECT status, COUNT(*) AS n FROM procrastinate_jobs GROUP BY status"
        )
        out["jobs_left"] = {str(r["status"]): int(r["n"]) for r in left}
    return out


# --- all modes -------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="corral-bench-scale-"))
    modes = [Mode(0, args.concurrency)] + [Mode(n, args.concurrency) for n in args.workers]
    bad = [m.workers for m in modes if m.workers and args.concurrency % m.workers]
    if bad:
        raise SystemExit(f"--concurrency {args.concurrency} is not divisible by workers {bad}")
    results: list[ModeResult] = []
    started = time.monotonic()
    with PortalServer(port=0, db_path=root / "portal.db") as portal, contextlib.ExitStack() as es:
        pg = es.enter_context(pg_server()) if any(m.workers for m in modes) else None
        rate = args.rate
        for mode in modes:
            print(f"{mode.label} ...", flush=True)
            try:
                results.append(await run_mode(mode, pg, portal.url, args, root, rate))
            except Exception as exc:  # a mode that breaks is reported, the others still run
                results.append(ModeResult(mode, error=f"{type(exc).__name__}: {exc}"[:400]))
                print(f"  failed: {results[-1].error}", flush=True)
            # Every mode is paced at the rate the first (embedded) mode chose.
            rate = rate or results[-1].rate
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "load": os.getloadavg(),
        "args": vars(args),
        "total_s": round(time.monotonic() - started),
        "results": results,
        "root": str(root),
    }


def _f(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def to_markdown(r: dict[str, Any]) -> str:
    a = r["args"]
    results: list[ModeResult] = r["results"]
    base = results[0] if results and not results[0].mode.workers else None
    rate = a["rate"] or next((res.rate for res in results if res.rate), 1.0)
    how = "" if a["rate"] else ", half the embedded mode's burst throughput"
    lines = [
        "## Scale: workers on PostgreSQL beside the embedded mode (`scripts/bench_scale.py`)",
        "",
        f"Machine: {r['machine']}; load average at the end {r['load'][0]:.1f} (shared with "
        f"other work); whole run {r['total_s']} s. {a['profiles']} profiles, a short scripted "
        "task on the demo portal (open the sign-in page, wait for its button; `trace: off`), "
        f"{a['concurrency']} runs at once in every mode: embedded = one `corral serve --workers "
        f"{a['concurrency']}` on SQLite (the baseline); PostgreSQL = one `corral serve` + N "
        f"`corral worker --concurrency {a['concurrency']}/N`. Each mode a fresh store, separate "
        "processes, a warm-up fire per slot first (not counted).",
        "",
        *summary(results, base),
        "",
        targets(results),
        "",
        f"**Burst** (throughput): {a['fires']} fires backfilled at once (all due at the same "
        "moment, overlap buffer_all: a profile's fires one after another). Wall = due time to "
        "the last fire settled. Lateness = run start (`runs.started_at`) - due time: in a burst "
        "it is the wait for a slot. *slot s/run* = wall x concurrency / runs; *overhead s/run* "
        "= that less the mean run time (run start to end): what each run costs the slots "
        "besides the run itself (dispatch, queue, settling, idle slots at the end).",
        "",
        "| mode | finished | wall s | runs/s | ratio to embedded | lateness p50 / p95 s "
        "| run p50 ms | slot s/run | overhead s/run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        p = res.phases.get(BURST)
        if not p:
            lines.append(f"| {res.mode.label} | no: {res.error} | | | | | | | |")
            continue
        ratio = "baseline"
        if res is not base and base and base.phases.get(BURST, {}).get("runs_per_s"):
            ratio = f"{p.get('runs_per_s', 0) / base.phases[BURST]['runs_per_s']:.2f}x"
        fin = "yes" if p["finished"] else f"no ({p['succeeded']}/{p['expected']})"
        lines.append(
            f"| {res.mode.label} | {fin} | {_f(p.get('wall_s'), 1)} | {_f(p.get('runs_per_s'), 2)} "
            f"| {ratio} | {_f(_s(p['lateness']['p50_ms']), 1)} / "
            f"{_f(_s(p['lateness']['p95_ms']), 1)} | {_f(p['run_s']['p50_ms'])} "
            f"| {_f(p.get('slot_s_per_run'), 3)} | {_f(p.get('overhead_s_per_run'), 3)} |"
        )
    lines += [
        "",
        f"**Paced** (lateness): {a['paced_fires']} fires of an interval schedule (every "
        f"{a['profiles'] / rate:g} s over the {a['profiles']} profiles, jitter 80% of it: "
        f"about {rate:g} fires/s{how}), so a fire usually finds a free "
        "slot and lateness is the dispatch path: due -> claim (the scheduler's 0.5 s tick, "
        "both modes), claim -> run start (embedded: the server's own pool; PostgreSQL: the job "
        "through Procrastinate to a worker, which takes the fire over and sets the run up). "
        "*queue overhead* = claim -> run start p50 less the embedded mode's. Due -> claim "
        "depends on how busy the serving process's event loop is: in the embedded mode the "
        "same process also drives every browser session, and on a shared machine its tick "
        "slips with the load (see *run p50*, the same task's run time, and the load averages "
        "below): read claim -> start for the queue's own cost.",
        "",
        "| mode | finished | lateness p50 / p95 ms | ratio p50 to embedded "
        "| due -> claim p50 / p95 ms | claim -> start p50 / p95 ms | claim -> job picked p50 ms "
        "| picked -> start p50 ms | queue overhead per run ms | run p50 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        p = res.phases.get(PACED)
        if not p:
            lines.append(f"| {res.mode.label} | no: {res.error} | | | | | | | | |")
            continue
        bp = base.phases.get(PACED) if base else None
        ratio = overhead = "baseline"
        if res is not base:
            ratio = overhead = "-"
            if bp and bp["lateness"]["p50_ms"] and p["lateness"]["p50_ms"]:
                ratio = f"{p['lateness']['p50_ms'] / bp['lateness']['p50_ms']:.2f}x"
            if bp and bp["claim_to_start"]["p50_ms"] is not None and p["claim_to_start"]["p50_ms"]:
                overhead = f"{p['claim_to_start']['p50_ms'] - bp['claim_to_start']['p50_ms']:+.0f}"
        fin = "yes" if p["finished"] else f"no ({p['succeeded']}/{p['expected']})"
        lines.append(
            f"| {res.mode.label} | {fin} | {_f(p['lateness']['p50_ms'])} / "
            f"{_f(p['lateness']['p95_ms'])} | {ratio} | {_f(p['due_to_claim']['p50_ms'])} / "
            f"{_f(p['due_to_claim']['p95_ms'])} "
            f"| {_f(p['claim_to_start']['p50_ms'])} / {_f(p['claim_to_start']['p95_ms'])} "
            f"| {_f(p['claim_to_pickup']['p50_ms'])} | {_f(p['pickup_to_start']['p50_ms'])} "
            f"| {overhead} | {_f(p['run_s']['p50_ms'])} |"
        )
    kinds = sorted({k for res in results for k in res.cpu})
    lines += [
        "",
        "**Exactly once**, checked in the store after each mode (both phases): fires that "
        "succeeded with exactly one run / expected; lost = expected fires without that; "
        "duplicate runs = runs beyond one per fire; duplicate fires = fires beyond one per "
        "(time, profile); jobs = Procrastinate jobs inserted (a trigger logs every insert) / "
        "fire attempts, with the most jobs one attempt got. CPU seconds over both phases by "
        "process kind, per succeeded run.",
        "",
        "| mode | succeeded once / expected | lost | duplicate runs | duplicate fires | retried "
        "| jobs / attempts (max per attempt) | jobs left | hosts' exit codes "
        "| load avg start, end | " + " | ".join(f"{k} CPU s/run" for k in kinds) + " |",
        "|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(kinds),
    ]
    for res in results:
        c = res.checks
        if "expected" not in c:
            lines.append(
                f"| {res.mode.label} | not checked: {res.error} |" + " |" * (9 + len(kinds))
            )
            continue
        jobs = "-"
        if "jobs" in c:
            jobs = f"{c['jobs']} / {c['attempts']} ({c['jobs_per_attempt_max']})"
        left = ", ".join(f"{k} {v}" for k, v in c.get("jobs_left", {}).items()) or "none"
        codes = ", ".join(str(v) for v in c.get("exit_codes", {}).values())
        n = max(c["succeeded_once"], 1)
        cpu = " | ".join(f"{res.cpu.get(k, 0) / n:.3f}" for k in kinds)
        lines.append(
            f"| {res.mode.label} | {c['succeeded_once']} / {c['expected']} | {_lost(res)} "
            f"| {c['duplicate_runs']} | {c['duplicate_fires']} | {c['retried']} | {jobs} "
            f"| {left if res.mode.workers else '-'} | {codes} "
            f"| {', '.join(f'{x:.1f}' for x in res.load)} | {cpu} |"
        )
    notes = [res for res in results if res.error or res.checks.get("not_succeeded")]
    for res in notes:
        odd = res.checks.get("not_succeeded") or ""
        lines.append(f"\n{res.mode.label}: {res.error or ''} {odd}".rstrip())
    return "\n".join(lines) + "\n"


def targets(results: list[ModeResult]) -> str:
    """Whether the issue's target holds: zero duplicates and zero lost runs, in every mode."""
    misses = []
    for res in results:
        c = res.checks
        if "lost" not in c:
            misses.append(f"{res.mode.label}: not checked ({res.error})")
        elif c["lost"] or c["duplicate_runs"] or c["duplicate_fires"]:
            misses.append(
                f"{res.mode.label}: lost {_lost(res)}, {c['duplicate_runs']} duplicate runs, "
                f"{c['duplicate_fires']} duplicate fires"
            )
        elif c.get("jobs_per_attempt_max", 1) > 1 or c.get("attempts_without_job"):
            misses.append(f"{res.mode.label}: not one job per attempt")
    if not misses:
        return "Target *zero duplicates and zero lost runs*: **met** in every mode."
    return "Target *zero duplicates and zero lost runs*: **not met**: " + "; ".join(misses) + "."


def _lost(res: ModeResult) -> str:
    """Fires without their one succeeded run; in a mode that ran out of time, not lost but
    not run yet (still queued when the benchmark stopped it)."""
    if "lost" not in res.checks:
        return "-"
    if all(p.get("finished") for p in res.phases.values()):
        return str(res.checks["lost"])
    return f"{res.checks['lost']} not run in time"


def _ratio(value: float | None, baseline: float | None, same: bool = False) -> str:
    if same:
        return "baseline"
    if value is None or not baseline:
        return "-"
    return f"{value / baseline:.2f}x"


def _overhead_cpu(res: ModeResult) -> float | None:
    """CPU ms per succeeded run of corral's own processes and PostgreSQL (not the browsers)."""
    n = int(res.checks.get("succeeded_once") or 0)
    if not n:
        return None
    return (res.cpu.get("corral", 0.0) + res.cpu.get("postgres", 0.0)) * 1000 / n


def summary(results: list[ModeResult], base: ModeResult | None) -> list[str]:
    """The headline table: each mode beside the embedded one."""
    lines = [
        "| mode | burst runs/s | ratio | paced lateness p50 ms | ratio | queue overhead per run "
        "(claim -> start p50, extra ms) | corral + PostgreSQL CPU ms/run | ratio "
        "| duplicate runs | lost |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    b_burst = base.phases.get(BURST, {}) if base else {}
    b_paced = base.phases.get(PACED, {}) if base else {}
    b_cpu = _overhead_cpu(base) if base else None
    for res in results:
        burst, paced = res.phases.get(BURST, {}), res.phases.get(PACED, {})
        late = paced.get("lateness", {}).get("p50_ms")
        start = paced.get("claim_to_start", {}).get("p50_ms")
        b_start = b_paced.get("claim_to_start", {}).get("p50_ms")
        extra = "baseline" if res is base else "-"
        if res is not base and start is not None and b_start is not None:
            extra = f"{start - b_start:+.0f}"
        cpu = _overhead_cpu(res)
        c = res.checks
        same = res is base
        lines.append(
            f"| {res.mode.label} | {_f(burst.get('runs_per_s'), 2)} "
            f"| {_ratio(burst.get('runs_per_s'), b_burst.get('runs_per_s'), same)} "
            f"| {_f(late)} | {_ratio(late, b_paced.get('lateness', {}).get('p50_ms'), same)} "
            f"| {extra} | {_f(cpu)} | {_ratio(cpu, b_cpu, same)} "
            f"| {c.get('duplicate_runs', '-')} "
            f"| {_lost(res)} |"
        )
    return lines


def _s(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fires", type=int, default=500, help="burst fires (times x profiles)")
    parser.add_argument("--profiles", type=int, default=100)
    parser.add_argument("--paced-fires", type=int, default=100, help="paced fires")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="paced fires per second (default: half the embedded mode's burst runs/s)",
    )
    parser.add_argument("--concurrency", type=int, default=6, help="runs at once in every mode")
    parser.add_argument(
        "--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 3]
    )
    parser.add_argument("--timeout", type=float, default=900, help="per phase, seconds")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument("--render", type=Path, help="print a saved results.json instead of running")
    args = parser.parse_args()
    if args.fires % args.profiles or args.paced_fires % args.profiles:
        parser.error("--fires and --paced-fires must be whole multiples of --profiles")
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so the hosts and the PostgreSQL server are stopped on the way out


def save(outcome: dict[str, Any], path: Path) -> None:
    data = outcome | {"results": [dataclasses.asdict(r) for r in outcome["results"]]}
    path.write_text(json.dumps(data, indent=1, default=str))


def load(path: Path) -> dict[str, Any]:
    """A saved run's results, to print (or --write) its section again without running it."""
    data: dict[str, Any] = json.loads(path.read_text())
    results = []
    for r in data["results"]:
        results.append(ModeResult(**(r | {"mode": Mode(**r["mode"])})))
    return data | {"results": results}


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    arguments = parse_args()
    if arguments.render:
        outcome = load(arguments.render)
    else:
        outcome = asyncio.run(main(arguments))
        save(outcome, Path(outcome["root"]) / "results.json")
    markdown = to_markdown(outcome)
    print(markdown)
    print(f"(logs, stores and results.json in {outcome['root']})")
    if arguments.write:
        write_section(ROOT / "BENCHMARKS.md", "scale", markdown)
