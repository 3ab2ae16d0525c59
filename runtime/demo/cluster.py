"""``scripts/cluster``: many hosts on one machine, to try the multi-host mode end to end.

It starts a throwaway PostgreSQL (:mod:`runtime.demo.postgres`), an S3-compatible server (moto's,
from PyPI) with a bucket, and the demo portal; creates an admin with an API token, the demo
profiles ``alice`` and ``bob`` with their passwords in the vault, and a schedule that reads their
unpaid invoices every few seconds; then one ``corral serve`` and two ``corral worker`` processes,
each with a ``CORRAL_HOME`` of its own (as if on three hosts) and the same store, bucket and master
key. It prints each fire as it ends and which worker ran it, until Ctrl-C or ``--for SECONDS``.

Stopping pauses the schedule, sends SIGTERM to the workers (they drain), then checks, through the
serve's HTTP API with the workers' folders moved away, that a run made on each worker still shows
its replay with its screenshots (so they came from the object store), sends SIGTERM to the serve,
and stops the portal, S3 and PostgreSQL and removes the temporary folder. The exit code is 0 only
if fires succeeded on both workers, no fire attempt ran twice (one run per attempt, at most one
successful run per fire) and those replays were complete.

Not for production: durability is off in this PostgreSQL and moto keeps the bucket in memory.
See docs/scale.md for a deployment on several hosts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, unquote

import click
import httpx

from profiles import ProfileSettings
from runtime.app import Runtime
from runtime.auth import LOCAL_ACTOR, Actor
from runtime.demo import DEMO_TASK
from runtime.demo.portal import USERS, PortalServer
from runtime.demo.postgres import PgServer, pg_server
from runtime.objects import run_key
from runtime.records import RunRecord
from runtime.schedules.records import Fire, FireStatus, SchedulePolicy, Timing
from runtime.services import ScheduleInput
from runtime.settings import Settings

__all__ = ["Host", "Summary", "main", "summarize"]

SCHEDULE = "invoices"
PROFILES = ("alice", "bob")
WORKERS = ("worker-1", "worker-2")
BUCKET = "corral-demo"
ADMIN = "demo-admin"
SETTLED: tuple[FireStatus, ...] = (
    "succeeded",
    "failed",
    "denied",
    "missed",
    "skipped",
    "cancelled",
)


def say(line: str) -> None:
    click.echo(line)


def clock() -> str:
    return datetime.now().strftime("%H:%M:%S")


# --- the parts ------------------------------------------------------------------------------


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3-compatible server on a free port of 127.0.0.1; yields its endpoint URL."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise click.ClickException(
            "the cluster demo's object store is moto's server: pip install 'moto[server]' "
            "(scripts/cluster installs it)"
        ) from exc
    # Its HTTP server would log every request to the terminal.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def aws_env() -> dict[str, str]:
    """Credentials for the local S3 server (random for each demo), and no look-ups elsewhere."""
    return {
        "AWS_ACCESS_KEY_ID": "AKIACORRALDEMO",
        "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(24),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def create_bucket(endpoint: str, env: dict[str, str]) -> None:
    import boto3  # type: ignore[import-untyped]

    boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    ).client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)


def corral_command() -> list[str]:
    """The ``corral`` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "corral"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from runtime.cli import main; main()"]


class Host:
    """One ``corral serve`` or ``corral worker`` process, as if on a host of its own."""

    def __init__(self, root: Path, name: str, env: dict[str, str], *args: str) -> None:
        self.name = name
        self.home = root / name
        self.log = root / f"{name}.log"
        self.exited_seen = False
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(
                [*corral_command(), *args],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                env={**env, "CORRAL_HOME": str(self.home)},
                # Its own session: Ctrl-C reaches this script, which stops the hosts in order.
                start_new_session=True,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 15) -> str:
        return "\n".join("    " + line for line in self.text().splitlines()[-lines:])

    async def ready(self, marker: str, stop: asyncio.Event, timeout_s: float = 120) -> str:
        """Wait until its log has a line with ``marker``; returns that line."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not stop.is_set():
            for line in self.text().splitlines():
                if marker in line:
                    return line
            if self.proc.poll() is not None:
                raise click.ClickException(
                    f"{self.name} exited {self.proc.returncode} while starting:\n{self.tail()}"
                )
            await asyncio.sleep(0.2)
        if stop.is_set():
            raise click.ClickException(f"stopped while {self.name} was starting")
        raise click.ClickException(f"{self.name} did not start in {timeout_s:g}s:\n{self.tail()}")

    async def stop(self, timeout_s: float) -> int:
        """SIGTERM (it drains), then SIGKILL to its whole process group after ``timeout_s``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(self.proc.wait, timeout_s)
        self.reap()
        return int(self.proc.returncode)

    def reap(self) -> None:
        """Nothing of it left running: its process group (browsers included) is killed."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # Its browsers are in its process group; a drained worker has closed them already.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


# --- what happened --------------------------------------------------------------------------


@dataclass
class Summary:
    """What the fires and runs in the store say, and what the check found wrong."""

    succeeded: Counter[str] = field(default_factory=Counter)
    """Succeeded fires per host that ran them."""
    failed: int = 0
    runs_per_attempt: int = 0
    successes_per_fire: int = 0
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        per_host = ", ".join(f"{h}: {n}" for h, n in sorted(self.succeeded.items())) or "none"
        return [
            f"summary: {sum(self.succeeded.values())} fires succeeded ({per_host}); "
            f"{self.failed} failed",
            f"summary: at most {self.runs_per_attempt} run per fire attempt and "
            f"{self.successes_per_fire} successful run per fire",
        ]


def host_of(run: RunRecord, homes: dict[Path, str]) -> str:
    """The host whose CORRAL_HOME holds the run's folder (``HOME/runs/RUN_ID``)."""
    return homes.get(Path(run.run_dir).parent.parent, "?")


async def summarize(rt: Runtime, homes: dict[Path, str], workers: list[str]) -> Summary:
    """Count what the store says; a problem is any fire attempt that ran twice, or a worker with
    no successful fire."""
    summary = Summary()
    fires = await rt.store.schedules.list_fires(SCHEDULE, limit=100_000)
    runs = [r for r in await rt.store.runs.list_runs(limit=100_000) if r.fire_id]
    by_id = {r.id: r for r in runs}
    for fire in fires:
        if fire.status == "succeeded" and fire.run_id in by_id:
            summary.succeeded[host_of(by_id[fire.run_id], homes)] += 1
        elif fire.status == "failed":
            summary.failed += 1
    per_attempt = Counter((r.fire_id, r.attempt) for r in runs)
    summary.runs_per_attempt = max(per_attempt.values(), default=0)
    wins = Counter(r.fire_id for r in runs if r.status == "succeeded")
    summary.successes_per_fire = max(wins.values(), default=0)
    if summary.runs_per_attempt > 1:
        summary.problems.append(f"a fire attempt ran {summary.runs_per_attempt} times")
    if summary.successes_per_fire > 1:
        summary.problems.append(f"a fire succeeded {summary.successes_per_fire} times")
    for name in workers:
        if not summary.succeeded[name]:
            summary.problems.append(f"no fire succeeded on {name}")
    return summary


@contextlib.asynccontextmanager
async def console_session(url: str, token: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in to the serve's console with ``token`` (as a person does)."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        form = await client.get("/console/login")
        nonce = _NONCE.search(form.text)
        signed = await client.post(
            "/console/login",
            data={"token": token, "nonce": nonce.group(1) if nonce else "", "next": ""},
        )
        if signed.status_code != 303:
            raise click.ClickException(f"signing in to the console failed ({signed.status_code})")
        yield client


_NONCE = re.compile(r'name="nonce" value="([^"]+)"')


async def check_replay(
    rt: Runtime, api: httpx.AsyncClient, console: httpx.AsyncClient, name: str, run: RunRecord
) -> str | None:
    """With the worker's folder gone, the serve shows the run's replay with every screenshot,
    each the object store's copy: its console page links them and serves them, its replay
    file embeds them. Returns the problem found, if any."""
    review = await api.get(f"/api/runs/{run.id}/review")
    if review.status_code != 200:
        return f"run {run.id} ({name}): the serve answered {review.status_code} for its review"
    shots = sorted({s["screenshot"] for s in review.json()["steps"] if s.get("screenshot")})
    if not shots:
        return f"run {run.id} ({name}): no screenshots recorded"
    stored = {shot: await rt.objects.get(run_key(run.id, shot)) for shot in shots}
    missing = [shot for shot, data in stored.items() if data is None]
    if missing:
        return f"run {run.id} ({name}): not in the object store: {', '.join(missing)}"
    page = await console.get(f"/console/runs/{run.id}")
    base = f"/console/runs/{quote(run.id, safe='')}/files/"
    linked = {
        unquote(html.unescape(m)) for m in re.findall(re.escape(base) + r'([^"]+)', page.text)
    }
    if page.status_code != 200 or not set(shots) <= linked:
        return (
            f"run {run.id} ({name}): the console's run page ({page.status_code}) links "
            f"{len(set(shots) & linked)} of its {len(shots)} screenshots"
        )
    for shot in shots:
        image = await console.get(base + quote(shot))
        if image.status_code != 200 or image.content != stored[shot]:
            return (
                f"run {run.id} ({name}): the console serves screenshot {shot} "
                f"({image.status_code}) unlike the object store's copy"
            )
    replay = await api.get(f"/api/runs/{run.id}/replay")
    embedded = {
        shot
        for shot, data in stored.items()
        if data is not None and base64.b64encode(data).decode() in replay.text
    }
    if replay.status_code != 200 or embedded != set(shots):
        return (
            f"run {run.id} ({name}): its replay file ({replay.status_code}) embeds "
            f"{len(embedded)} of its {len(shots)} screenshots"
        )
    say(
        f"replay: run {run.id} ran on {name}; with {name}'s folder moved away, the serve's "
        f"console shows its replay with all {len(shots)} screenshots, from the object store"
    )
    return None


async def check_replays(
    rt: Runtime, url: str, token: str, runs: dict[str, RunRecord], root: Path
) -> list[str]:
    """:func:`check_replay` for each worker's last successful run (``runs``: host -> run), once
    that worker's CORRAL_HOME is moved away. Returns the problems found."""
    for name in runs:
        home = root / name
        if home.exists():
            home.rename(root / f"{name}.moved")
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as api,
        console_session(url, token) as console,
    ):
        found = [await check_replay(rt, api, console, n, r) for n, r in sorted(runs.items())]
    return [p for p in found if p is not None]


# --- the demo -------------------------------------------------------------------------------


@dataclass
class Options:
    duration_s: float | None
    every_s: float
    port: int
    concurrency: int
    heartbeat_s: float
    keep: bool


def fire_line(fire: Fire, run: RunRecord | None, homes: dict[Path, str]) -> str:
    where = f" on {host_of(run, homes)}" if run is not None else ""
    took = ""
    if run is not None and run.finished_at is not None:
        took = f" in {(run.finished_at - run.started_at).total_seconds():.1f}s"
    detail = f" (run {run.id})" if run is not None else ""
    note = f": {fire.note}" if fire.status != "succeeded" and fire.note else ""
    due = fire.scheduled_at.astimezone().strftime("%H:%M:%S")
    attempt = f", attempt {fire.attempt}" if fire.attempt > 1 else ""
    return f"{clock()} fire {fire.profile}@{due}{attempt} {fire.status}{where}{took}{detail}{note}"


async def report_settled(rt: Runtime, homes: dict[Path, str], seen: set[str]) -> None:
    """Print each fire that ended since the last call (``seen``: the fires printed so far)."""
    fires = await rt.store.schedules.list_fires(SCHEDULE, SETTLED, limit=1000)
    for fire in reversed(fires):
        if fire.id in seen:
            continue
        seen.add(fire.id)
        run = await rt.store.runs.get_run(fire.run_id) if fire.run_id else None
        say(fire_line(fire, run, homes))


async def watch(
    rt: Runtime, hosts: list[Host], homes: dict[Path, str], stop: asyncio.Event, seen: set[str]
) -> None:
    """Print each fire as it ends, and any host that exits, until ``stop`` is set."""
    while not stop.is_set():
        await report_settled(rt, homes, seen)
        for host in hosts:
            if host.proc.poll() is not None and not host.exited_seen:
                host.exited_seen = True
                say(f"{clock()} {host.name} exited ({host.proc.returncode}):\n{host.tail(5)}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def set_up(rt: Runtime, portal: str, every_s: float) -> tuple[Actor, str]:
    """An admin with a token, the demo profiles with their passwords, the schedule."""
    made = await rt.services.users.add_user_with_token(LOCAL_ACTOR, ADMIN, "super_admin")
    admin = Actor(ADMIN, "super_admin")
    for name in PROFILES:
        user = USERS[name]
        await rt.services.profiles.create(
            admin, name, ProfileSettings(vars={"user": user.username})
        )
        await rt.services.secrets.set(admin, f"{name}.password", user.password, [portal], [name])
    await rt.services.schedules.add(
        admin,
        ScheduleInput(
            name=SCHEDULE,
            task_yaml=DEMO_TASK.read_text(),
            task_source=str(DEMO_TASK),
            profiles=list(PROFILES),
            vars={"portal": portal},
            timing=Timing(every_s=every_s),
            policy=SchedulePolicy(retries=1, backoff_s=2),
        ),
    )
    return admin, made.value


async def run_cluster(options: Options, root: Path, pg: PgServer, endpoint: str) -> int:
    aws = aws_env()
    os.environ.update(aws)  # this process reads the bucket too (the replay check)
    create_bucket(endpoint, aws)
    pg.sql("CREATE DATABASE corral TEMPLATE template0")
    database = pg.url("corral")
    artifacts = f"s3://{BUCKET}/cluster?endpoint={endpoint}"
    master_key = base64.b64encode(secrets.token_bytes(32)).decode()
    shared = {
        "CORRAL_DATABASE_URL": database,
        "CORRAL_ARTIFACTS_URL": artifacts,
        "CORRAL_MASTER_KEY": master_key,
        "CORRAL_HEARTBEAT_TIMEOUT": f"{options.heartbeat_s:g}",
        **aws,
    }
    outside = {k: v for k, v in os.environ.items() if k not in ("CORRAL_SERVER", "CORRAL_TOKEN")}
    env = {**outside, **shared}
    settings = Settings.from_env({**env, "CORRAL_HOME": str(root / "setup")})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)

    portal = PortalServer(port=0, db_path=root / "portal.db")
    await asyncio.to_thread(portal.start)
    hosts: list[Host] = []
    try:
        async with Runtime.open(settings) as rt:
            admin, token = await set_up(rt, portal.url, options.every_s)
            serve = Host(root, "serve", env, "serve", "--port", str(options.port))
            hosts.append(serve)
            workers = [
                Host(root, name, env, "worker", "--concurrency", str(options.concurrency))
                for name in WORKERS
            ]
            hosts.extend(workers)
            listening = await serve.ready("listening on", stop)
            url = listening.split("listening on ", 1)[1].split()[0]
            for w in workers:
                await w.ready("takes fires from", stop)
            homes = {h.home: h.name for h in hosts}
            say(
                f"PostgreSQL    {database}\n"
                f"object store  {artifacts} (moto)\n"
                f"demo portal   {portal.url}\n"
                f"serve         pid {serve.proc.pid}: console {url}/console/ "
                f"(sign in with the token {token})\n"
                + "".join(f"{w.name}      pid {w.proc.pid}\n" for w in workers)
                + f"every host: CORRAL_HOME under {root}, the same CORRAL_DATABASE_URL, "
                f"CORRAL_ARTIFACTS_URL and CORRAL_MASTER_KEY\n"
                f"schedule '{SCHEDULE}': {DEMO_TASK.name} every {options.every_s:g}s on "
                f"{', '.join(PROFILES)}; "
                + (
                    f"running for {options.duration_s:g}s"
                    if options.duration_s is not None
                    else "Ctrl-C stops everything"
                )
                + f" (kill -9 a worker: its fires are retried on the other after "
                f"{options.heartbeat_s:g}s)"
            )
            if options.duration_s is not None:
                loop.call_later(options.duration_s, stop.set)
            seen: set[str] = set()
            await watch(rt, hosts, homes, stop, seen)

            say(f"{clock()} stopping: schedule paused, SIGTERM to the workers")
            await rt.services.schedules.pause(admin, SCHEDULE, "the cluster demo is stopping")
            for w in workers:
                await w.stop(60)
            await report_settled(rt, homes, seen)
            summary = await summarize(rt, homes, list(WORKERS))
            last: dict[str, RunRecord] = {}
            for run in await rt.store.runs.list_runs(limit=100_000):
                name = host_of(run, homes)
                if run.status == "succeeded" and name in WORKERS and name not in last:
                    last[name] = run
            problems = list(summary.problems)
            if serve.proc.poll() is None:
                try:
                    problems += await check_replays(rt, url, token, last, root)
                except (httpx.HTTPError, click.ClickException) as exc:
                    problems.append(f"the replay check failed: {exc}")
            else:
                problems.append("the serve exited before the replay check")
            say(f"{clock()} SIGTERM to the serve")
            code = await serve.stop(60)
            if code != 0:
                problems.append(f"the serve exited {code}:\n{serve.tail()}")
            for line in summary.lines():
                say(line)
            for problem in problems:
                say(f"problem: {problem}")
            say("cluster check: " + ("FAILED" if problems else "ok"))
            return 1 if problems else 0
    finally:
        for host in hosts:
            host.reap()
        await asyncio.to_thread(portal.stop)


def cluster(options: Options) -> int:
    """Start everything, run, stop everything; returns the exit code."""
    root = Path(tempfile.mkdtemp(prefix="corral-cluster-"))
    try:
        with pg_server() as pg, s3_server() as endpoint:
            return asyncio.run(run_cluster(options, root, pg, endpoint))
    finally:
        if options.keep:
            say(f"kept {root} (homes and logs of every host)")
        else:
            shutil.rmtree(root, ignore_errors=True)


@click.command("cluster")
@click.option(
    "--for",
    "duration",
    type=click.FloatRange(1),
    help="run this many seconds, then stop and check (exit 0: fires succeeded on both workers, "
    "none ran twice, their replays show from the object store); default: until Ctrl-C",
)
@click.option("--every", default=5.0, show_default=True, type=click.FloatRange(1), help="seconds")
@click.option("--port", default=0, show_default=True, type=int, help="the serve's port (0: free)")
@click.option("--concurrency", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--heartbeat-timeout",
    default=15.0,
    show_default=True,
    type=click.FloatRange(1),
    help="CORRAL_HEARTBEAT_TIMEOUT of every host: a silent worker's fires are retried after it",
)
@click.option("--keep", is_flag=True, help="keep the temporary folder (homes, logs)")
def main(
    duration: float | None,
    every: float,
    port: int,
    concurrency: int,
    heartbeat_timeout: float,
    keep: bool,
) -> None:
    """PostgreSQL, an S3 server, the demo portal, one `corral serve` and two `corral worker`s."""
    options = Options(duration, every, port, concurrency, heartbeat_timeout, keep)
    sys.exit(cluster(options))


if __name__ == "__main__":
    main()
