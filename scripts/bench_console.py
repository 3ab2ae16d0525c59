#!/usr/bin/env python3
"""Console benchmark: the runs list with 10,000 runs in the store, beside the JSON API.

A store is filled in one transaction with ``--runs`` runs spread over 30 days, 12 tasks, 20
profiles, 6 schedules (40% of runs by hand) and every status (mostly succeeded; failed runs carry
an error). Then ``corral serve`` is started on it as its own process, exactly as a team runs it,
and this process signs in to the console (an admin, and a user granted 3 profiles) and measures,
round after round with the cases interleaved so noise hits them alike:

- ``GET /console/runs``: the first page (50 rows), as the admin and as the user;
- filtered pages: one profile (beside ``GET /api/runs?limit=50&profile=...``, the same rows as
  JSON), one status, a task within a week, and a page deep in the list (``offset=5000``);
- baseline: ``GET /api/runs?limit=50`` with the admin's API token (the same 50 runs as JSON).

p50/p95 per case and the ratio to its API baseline; with ``--write`` the "Console: runs list"
section of BENCHMARKS.md is replaced. Each query's plan is printed, to show which index it uses.

Usage: .venv/bin/python scripts/bench_console.py [--runs 10000] [--rounds 200] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _bench_common import summarize, write_section  # noqa: E402

from runtime import Runtime, Settings  # noqa: E402
from runtime.auth import LOCAL_ACTOR, Actor  # noqa: E402
from runtime.records import RunRecord  # noqa: E402
from runtime.store.runs import RUNS  # noqa: E402

CORRAL = str(Path(sys.executable).parent / "corral")
TASKS = [f"task-{name}" for name in ("invoices", "pay", "export", "sync", "report", "login")]
TASKS += [f"task-extra-{i}" for i in range(6)]
PROFILES = [f"p{i:02d}" for i in range(20)]
SCHEDULES = ["nightly", "hourly", "weekly", "month-end", "sync-eu", "sync-us"]
STATUSES = [
    ("succeeded", 80),
    ("failed", 10),
    ("denied", 3),
    ("cancelled", 3),
    ("interrupted", 2),
    ("running", 1),
    ("waiting_approval", 1),
]
USER_PROFILES = ["p03", "p07", "p11"]
DAYS = 30
ERROR = "step 4 click: the element did not appear within 10 s"


def fake_runs(count: int, now: datetime, pid: int) -> list[RunRecord]:
    """``count`` runs over the last 30 days, newest last; a fixed seed, so every run is alike."""
    rng = random.Random(12)
    names, weights = zip(*STATUSES, strict=True)
    runs = []
    for i in range(count):
        started = now - timedelta(seconds=rng.uniform(0, DAYS * 86_400))
        status = rng.choices(names, weights)[0]
        live = status in ("running", "waiting_approval")
        scheduled = rng.random() < 0.6
        runs.append(
            RunRecord(
                id=started.strftime("%Y%m%d-%H%M%S-") + f"{i:06x}",
                task_name=rng.choice(TASKS),
                task_path=None,
                profile=rng.choice(PROFILES),
                status=status,  # type: ignore[arg-type]
                started_at=started,
                finished_at=None if live else started + timedelta(seconds=rng.uniform(2, 400)),
                error=ERROR if status == "failed" else None,
                result={"rows": rng.randint(0, 40)} if status == "succeeded" else None,
                run_dir=f"/nonexistent/runs/{i}",
                pid=pid,  # this process: live rows stay live (serve marks dead pids' interrupted)
                schedule=rng.choice(SCHEDULES) if scheduled else None,
                fire_id=f"fire-{i}" if scheduled else None,
                attempt=1 if scheduled else None,
            )
        )
    return runs


async def prepare(home: Path, count: int) -> dict[str, str]:
    """Users (root, an admin, a user granted 3 profiles), profiles and ``count`` runs; tokens."""
    async with Runtime.open(Settings.from_env({"CORRAL_HOME": str(home)})) as rt:
        users = rt.services.users
        tokens = {"root": (await users.add_user_with_token(LOCAL_ACTOR, "root", "super_admin"))}
        root = Actor("root", "super_admin")
        tokens["ada"] = await users.add_user_with_token(root, "ada", "admin")
        tokens["bob"] = await users.add_user_with_token(root, "bob", "user")
        for name in PROFILES:
            await rt.services.profiles.create(root, name)
        for name in USER_PROFILES:
            await users.grant(root, "bob", name)
        runs = fake_runs(count, datetime.now(UTC), os.getpid())
        async with rt.store.tx() as db:
            sql = RUNS.insert(runs[0])[0]
            await db.executemany(sql, [RUNS.row(r) for r in runs])
        return {name: token.value for name, token in tokens.items()}


def plans(db_path: Path, now: datetime) -> list[str]:
    """The query plan of each measured list query (which index SQLite picks)."""
    since = (now - timedelta(days=7)).isoformat()
    queries = {
        "first page": ("", ()),
        "profile": ("WHERE profile = ?", ("p03",)),
        "status": ("WHERE status = ?", ("failed",)),
        "task + week": ("WHERE task_name = ? AND started_at >= ?", ("task-pay", since)),
        "user's profiles": (
            f"WHERE profile IN ({', '.join('?' for _ in USER_PROFILES)})",
            tuple(USER_PROFILES),
        ),
    }
    out = []
    with sqlite3.connect(db_path) as conn:
        for name, (where, args) in queries.items():
            rows = conn.execute(
                f"EXPLAIN QUERY PLAN SELECT * FROM runs {where} ORDER BY started_at DESC "
                "LIMIT 51 OFFSET 0",
                args,
            ).fetchall()
            out.append(f"{name}: " + "; ".join(r[-1] for r in rows))
    return out


class Served:
    """``corral serve`` on a free port, in its own process group."""

    def __init__(self, home: Path, log: Path) -> None:
        self.log = log
        env = {**os.environ, "CORRAL_HOME": str(home)}
        with log.open("w") as err:
            self.proc = subprocess.Popen(
                [CORRAL, "serve", "--port", "0", "--workers", "1"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )

    def url(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = re.search(r"listening on (http://\S+)", self.log.read_text())
            if found:
                return found.group(1)
            if self.proc.poll() is not None:
                raise SystemExit(f"serve exited: {self.log.read_text()}")
            time.sleep(0.1)
        raise SystemExit("serve did not start within 60 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(60)


def signed_in(url: str, token: str, headers: dict[str, str] | None = None) -> httpx.Client:
    """A client with a console session made from ``token`` (sending ``headers`` too)."""
    http = httpx.Client(base_url=url, follow_redirects=False, timeout=30, headers=headers)
    form = http.get("/console/login").text
    nonce = re.search(r'name="nonce" value="([^"]+)"', form)
    assert nonce, form
    answer = http.post("/console/login", data={"token": token, "nonce": nonce.group(1)})
    assert answer.status_code == 303, answer.text
    return http


def measure(
    cases: dict[str, Callable[[], httpx.Response]], rounds: int, warmup: int
) -> dict[str, dict[str, Any]]:
    """Every case once per round, in a rotating order; milliseconds per request."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    sizes: dict[str, int] = {}
    names = list(cases)
    for i in range(warmup + rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            start = time.perf_counter()
            answer = cases[name]()
            elapsed = (time.perf_counter() - start) * 1000
            assert answer.status_code == 200, (name, answer.status_code, answer.text[:300])
            sizes[name] = len(answer.content)
            if i >= warmup:
                samples[name].append(elapsed)
    return {name: {**summarize(s), "bytes": sizes[name]} for name, s in samples.items()}


CASES: list[tuple[str, str, str]] = [
    # (name, who, path); the API rows are the baselines.
    ("API: /api/runs?limit=50", "api", "/api/runs?limit=50"),
    ("API: /api/runs?limit=50&profile=p03", "api", "/api/runs?limit=50&profile=p03"),
    ("console: first page (admin)", "ada", "/console/runs"),
    ("console: first page (user, 3 profiles)", "bob", "/console/runs"),
    ("console: profile=p03 (admin)", "ada", "/console/runs?profile=p03"),
    ("console: status=failed (admin)", "ada", "/console/runs?status=failed"),
    ("console: task + a week (admin)", "ada", "/console/runs?task=task-pay&since={week}"),
    ("console: offset=5000 (admin)", "ada", "/console/runs?offset=5000"),
    ("console: live refresh of the table (admin)", "ada-refresh", "/console/runs"),
]
BASELINE = {
    "console: profile=p03 (admin)": "API: /api/runs?limit=50&profile=p03",
}


def _getter(http: httpx.Client, path: str) -> Callable[[], httpx.Response]:
    return lambda: http.get(path)


def run_cases(url: str, tokens: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    week = (datetime.now(UTC) - timedelta(days=7)).date().isoformat()
    clients = {
        "ada": signed_in(url, tokens["ada"]),
        "bob": signed_in(url, tokens["bob"]),
        "ada-refresh": signed_in(url, tokens["ada"], {"X-Console-Part": "runs"}),
        "api": httpx.Client(
            base_url=url, timeout=30, headers={"Authorization": f"Bearer {tokens['ada']}"}
        ),
    }
    try:
        cases = {name: _getter(clients[who], path.format(week=week)) for name, who, path in CASES}
        first = cases["console: first page (admin)"]().text
        rows = first.split('id="runs"')[1].count("<tr>") - 1
        assert rows == 50, rows
        return measure(cases, args.rounds, args.warmup)
    finally:
        for http in clients.values():
            http.close()


def markdown(results: dict[str, Any], plan: list[str], args: argparse.Namespace) -> str:
    lines = [
        "| request | p50 ms | p95 ms | bytes | p50 / API p50 | p95 / API p95 |",
        "|---|---|---|---|---|---|",
    ]
    for name, *_ in CASES:
        r = results[name]
        base = results[BASELINE.get(name, "API: /api/runs?limit=50")]
        ratio = (
            ""
            if name.startswith("API")
            else (f"{r['p50_ms'] / base['p50_ms']:.2f}x | {r['p95_ms'] / base['p95_ms']:.2f}x")
        )
        lines.append(
            f"| {name} | {r['p50_ms']} | {r['p95_ms']} | {r['bytes']:,} | "
            + (ratio if ratio else "baseline | baseline")
            + " |"
        )
    return (
        "## Console: runs list (`scripts/bench_console.py`)\n\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}. A store with {args.runs:,} runs over {DAYS} days "
        f"({len(TASKS)} tasks, {len(PROFILES)} profiles, {len(SCHEDULES)} schedules, every "
        "status), served by `corral serve` as its own process; this process signs in and sends "
        f"each request {args.rounds} times (after {args.warmup} warm-up rounds), the cases "
        "interleaved. Baseline: the JSON API for the same runs (`GET /api/runs?limit=50`, and "
        "with `profile=` for the profile filter), same server, same run.\n\n"
        + "\n".join(lines)
        + "\n\nQuery plans (SQLite, the list's query as the store sends it):\n\n"
        + "".join(f"- {p}\n" for p in plan)
        + "\nEach list is one indexed query (migration 7's indexes on task, profile, status and "
        "schedule, each with started_at, serve every filter; no index was added). A user's list "
        "reads the runs of its granted profiles through the profile index and sorts them (the "
        "temp B-tree above): that sort grows with the user's own runs, not with the store. The "
        "rest of a console page is its other reads (the session; the profile and schedule names "
        "the filter form suggests: one read per profile for its lease and, for a user, its "
        "grant) and rendering 50 rows; the live refresh (the page fetched again with "
        "`X-Console-Part: runs`, which swaps only the table) skips the form's names. The JSON "
        "baseline reads the same rows and serializes them, nothing else.\n"
        "\nWhile writing this benchmark every request on a kept-alive connection took ~44 ms, "
        "the API's too: `corral serve`'s listening socket lacked TCP_NODELAY, so a response "
        "written as headers then body waited for the client's delayed ACK. The socket sets it "
        "now (accepted connections inherit it), and the figures above are with it.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        started = time.perf_counter()
        tokens = asyncio.run(prepare(home, args.runs))
        print(f"store filled: {args.runs} runs in {time.perf_counter() - started:.1f} s")
        plan = plans(home / "corral.db", datetime.now(UTC))
        for line in plan:
            print("plan", line)
        served = Served(home, Path(tmp) / "serve.log")
        try:
            results = run_cases(served.url(), tokens, args)
        finally:
            served.stop()
    for name, r in results.items():
        print(f"{name:45} p50 {r['p50_ms']:8.2f} ms  p95 {r['p95_ms']:8.2f} ms  {r['bytes']} B")
    text = markdown(results, plan, args)
    print(text)
    if args.write:
        write_section(ROOT / "BENCHMARKS.md", "bench_console", text)


if __name__ == "__main__":
    main()
