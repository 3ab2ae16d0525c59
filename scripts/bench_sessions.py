#!/usr/bin/env python3
"""Session benchmark: corral beside raw Playwright (and browser-use) in one run.

(a) Session start: lease + context with restored state + first page loaded, p50/p95 over N starts,
    corral and raw Playwright interleaved on one warm browser; browser-use 0.13 measured by
    scripts/bench_browser_use.py in its own virtualenv (scripts/bench_env.sh), if available.
(b) 1/8/32/64 parallel sessions, each running the same 10-step scripted task on the demo portal:
    wall time, failures, peak memory (PSS) of all browser processes, memory per extra session;
    raw Playwright doing the same 10 steps in the same number of contexts is the baseline.
(c) The same task with parts of the recording off (screenshots, trace), at 32 sessions.
(d) One session at a time, repeated: raw Playwright and corral with each recording setting of
    (c), in turn, in one warm browser; the median of each round's ratio.

Usage: .venv/bin/python scripts/bench_sessions.py [--starts 30] [--sizes 1,8,32,64] [--one 8]
    [--write]
``--write`` replaces the session section of BENCHMARKS.md with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
from playwright.async_api import Browser

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _bench_common import summarize, write_section  # noqa: E402

from profiles import BrowserPool, ProfileSettings, open_session  # noqa: E402
from runtime import Runtime, Settings, parse_task, run_many  # noqa: E402
from runtime.demo.portal import USERS, PortalServer  # noqa: E402
from tools import Tabs  # noqa: E402

USERS_CYCLE = ("alice", "bob")


def ten_step_task(portal: str) -> dict[str, Any]:
    """The task every parallel session runs: sign in, read, open an invoice, visit settings."""
    return {
        "name": "bench-10-steps",
        "start_url": portal,
        "steps": [
            {"goto": "/login"},
            {"fill": {"label": "Username", "value": "{{var:user}}"}},
            {"fill": {"label": "Password", "value": "{{var:password}}"}},
            {"click": {"role": "button", "name": "Sign in"}},
            {"wait_for": {"role": "heading", "name": "Welcome"}},
            {"click": {"role": "link", "name": "View unpaid invoices"}},
            {"extract": {"as": "unpaid", "table": {"role": "table"}}},
            {"click": {"css": "table tbody a", "nth": 0}},
            {"wait_for": {"role": "link", "name": "Download PDF"}},
            {"goto": "/settings"},
        ],
        "output": "unpaid",
    }


async def raw_ten_steps(browser: Browser, portal: str, user: str) -> None:
    """The same ten steps with plain Playwright calls (the baseline)."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{portal}/login")
        await page.get_by_label("Username").fill(user)
        await page.get_by_label("Password").fill(USERS[user].password)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("heading", name="Welcome").wait_for()
        await page.get_by_role("link", name="View unpaid invoices").click()
        await page.get_by_role("table").evaluate(
            "t => Array.from(t.rows).map(r => Array.from(r.cells).map(c => c.innerText))"
        )
        await page.locator("table tbody a").nth(0).click()
        await page.get_by_role("link", name="Download PDF").wait_for()
        await page.goto(f"{portal}/settings")
    finally:
        await context.close()


def _kind(proc: psutil.Process) -> str | None:
    """What a process is, for the CPU table: chromium's by its --type, the driver, or None."""
    name = proc.name()
    if "chrom" in name:
        kind = next((a[7:] for a in proc.cmdline() if a.startswith("--type=")), "browser")
        return {"zygote": "browser", "utility": "browser"}.get(kind, kind)
    if name.startswith("node"):  # "node-MainThread" on Linux
        return "driver"
    return None


class MemorySampler:
    """Peak PSS of this process's Chromium descendants, sampled on a thread every 100 ms, and
    the CPU seconds every descendant used meanwhile (by kind: browser, renderer, gpu-process,
    Playwright's driver; a process that exits between samples loses at most 100 ms)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._cpu_start: dict[int, float] = {}
        self._cpu_last: dict[int, tuple[str, float]] = {}
        self._own_start = sum(psutil.Process().cpu_times()[:2])
        self._sampler_cpu = 0.0
        self.cpu: dict[str, float] = {}

    def _sample(self) -> int:
        total = 0
        for proc in psutil.Process().children(recursive=True):
            try:
                kind = _kind(proc)
                if kind is None:
                    continue
                used = sum(proc.cpu_times()[:2])
                self._cpu_start.setdefault(proc.pid, 0.0 if self._started else used)
                self._cpu_last[proc.pid] = (kind, used)
                if kind != "driver":
                    total += proc.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return total

    _started = False

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._started = True
            self._stop.wait(0.1)
        self._sampler_cpu = time.thread_time()

    def __enter__(self) -> MemorySampler:
        self._sample()  # what existed before: only its CPU from now on counts
        self._started = True
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())
        cpu: dict[str, float] = {}
        for pid, (kind, used) in self._cpu_last.items():
            cpu[kind] = cpu.get(kind, 0.0) + used - self._cpu_start.get(pid, 0.0)
        # This process, less the sampler's own thread (reading /proc costs it some CPU).
        own = sum(psutil.Process().cpu_times()[:2]) - self._own_start
        cpu["python"] = own - self._sampler_cpu
        self.cpu = {k: round(v, 2) for k, v in sorted(cpu.items())}


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return (time.perf_counter() - start) * 1000


async def bench_start(rt: Runtime, pool: BrowserPool, portal: str, n: int) -> dict[str, Any]:
    """(a) corral session start vs raw Playwright, interleaved, same warm browser and state."""
    await rt.profiles.create("start", ProfileSettings())
    # Sign in once so every start restores a real logged-in state.
    task = parse_task(ten_step_task(portal), "bench")
    [first] = await run_many(rt, task, ["start"], {"user": "alice", "password": "alice-pw-1"})
    assert first.status == "succeeded", first.error
    state = rt.profiles.open_state(await rt.profiles.get("start"))
    browser = await pool.browser()
    url = f"{portal}/dashboard"

    async def corral_start() -> None:
        async with open_session(rt.profiles, pool, "start", "bench", save_state=False) as s:
            tabs = Tabs(s)
            page = await tabs.active()
            await page.goto(url)
            assert "/dashboard" in page.url

    async def raw_start() -> None:
        context = await browser.new_context(storage_state=state)  # type: ignore[arg-type]
        try:
            page = await context.new_page()
            await page.goto(url)
            assert "/dashboard" in page.url
        finally:
            await context.close()

    for warm in (corral_start, raw_start):
        await warm()
    corral_ms, raw_ms = [], []
    for _ in range(n):
        corral_ms.append(await timed(corral_start))
        raw_ms.append(await timed(raw_start))
    state_file = Path(tempfile.mkstemp(suffix=".json")[1])
    state_file.write_text(json.dumps(state))
    try:
        browser_use = await asyncio.to_thread(run_browser_use, url, n, state_file, pool.executable)
    finally:
        state_file.unlink()
    return {
        "corral": summarize(corral_ms),
        "raw": summarize(raw_ms),
        "browser_use": browser_use,
    }


def run_browser_use(url: str, n: int, state: Path, executable: str) -> dict[str, Any]:
    """browser-use in its own virtualenv; an error dict if it cannot be installed or run."""
    env_script = ROOT / "scripts" / "bench_env.sh"
    setup = subprocess.run(["bash", str(env_script)], capture_output=True, text=True)
    if setup.returncode != 0:
        return {"error": "bench_env.sh failed: " + setup.stderr.strip()[-300:]}
    python = setup.stdout.strip().splitlines()[-1]
    proc = subprocess.run(
        [
            python,
            str(ROOT / "scripts" / "bench_browser_use.py"),
            "--url",
            url,
            "--n",
            str(n),
            "--storage-state",
            str(state),
            "--executable",
            executable,
            "--warmup",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-300:]}
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


async def _profiles(rt: Runtime, prefix: str, size: int) -> list[str]:
    names = [f"{prefix}-{i}" for i in range(size)]
    for i, name in enumerate(names):
        user = USERS[USERS_CYCLE[i % 2]]
        await rt.profiles.create(
            name, ProfileSettings(vars={"user": user.username, "password": user.password})
        )
    return names


async def corral_runs(
    rt: Runtime, pool: BrowserPool, portal: str, names: list[str], **task: Any
) -> dict[str, Any]:
    """One corral run of the ten-step task per profile, all at once, in a fresh browser."""
    parsed = parse_task({**ten_step_task(portal), **task}, "bench")
    await pool.close()  # a fresh browser per measurement, so memory peaks are comparable
    await pool.browser()
    with MemorySampler() as mem:
        start = time.perf_counter()
        results = await run_many(rt, parsed, names)
        wall = time.perf_counter() - start
    failures = [r.error for r in results if r.status != "succeeded"]
    return {
        "wall_s": round(wall, 2),
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "peak_mb": round(mem.peak / 2**20),
        "cpu_s": mem.cpu,
    }


async def raw_runs(pool: BrowserPool, portal: str, size: int) -> dict[str, Any]:
    """The baseline: the same ten steps in ``size`` contexts at once, in a fresh browser."""
    await pool.close()
    browser = await pool.browser()
    with MemorySampler() as mem:
        start = time.perf_counter()
        raw = await asyncio.gather(
            *(raw_ten_steps(browser, portal, USERS_CYCLE[i % 2]) for i in range(size)),
            return_exceptions=True,
        )
        wall = time.perf_counter() - start
    return {
        "wall_s": round(wall, 2),
        "failures": sum(isinstance(r, BaseException) for r in raw),
        "peak_mb": round(mem.peak / 2**20),
        "cpu_s": mem.cpu,
    }


async def bench_parallel(
    rt: Runtime, pool: BrowserPool, portal: str, size: int, round_no: int
) -> dict[str, Any]:
    """(b) ``size`` sessions at once: corral's runs, then raw Playwright's, each measured; and
    when ``size`` is above the pool's session slots, corral with a slot for every session."""
    names = await _profiles(rt, f"p{round_no}-{size}", size)
    corral = await corral_runs(rt, pool, portal, names)
    raw = await raw_runs(pool, portal, size)
    unlimited = None
    if size > pool.max_sessions:
        async with (
            BrowserPool.start(pool.executable, max_sessions=size) as wide,
            Runtime.open(rt.settings, pool=wide) as wide_rt,
        ):
            names = await _profiles(wide_rt, f"u{round_no}-{size}", size)
            unlimited = await corral_runs(wide_rt, wide, portal, names)
    return {
        "slots": pool.max_sessions,
        "unlimited": unlimited,
        "sessions": size,
        "corral_wall_s": corral["wall_s"],
        "raw_wall_s": raw["wall_s"],
        "corral_failures": corral["failures"],
        "first_failure": corral["first_failure"],
        "raw_failures": raw["failures"],
        "corral_peak_mb": corral["peak_mb"],
        "raw_peak_mb": raw["peak_mb"],
        "corral_cpu_s": corral["cpu_s"],
        "raw_cpu_s": raw["cpu_s"],
    }


ABLATIONS: dict[str, dict[str, Any]] = {
    "corral (defaults)": {},
    "corral, `screenshots: on_failure`": {"screenshots": "on_failure"},
    "corral, `trace: off`": {"trace": "off"},
    "corral, both": {"screenshots": "on_failure", "trace": "off"},
}


async def bench_ablation(rt: Runtime, pool: BrowserPool, portal: str, size: int) -> dict[str, Any]:
    """(c) What each part of a recorded run costs at ``size`` sessions: the task with parts of
    the recording turned off, beside raw Playwright, with CPU seconds by process."""
    rows: dict[str, Any] = {"raw Playwright": await raw_runs(pool, portal, size)}
    for i, (label, task) in enumerate(ABLATIONS.items()):
        names = await _profiles(rt, f"a{i}-{size}", size)
        rows[label] = await corral_runs(rt, pool, portal, names, **task)
    return {"sessions": size, "rows": rows}


async def bench_one(rt: Runtime, pool: BrowserPool, portal: str, rounds: int) -> dict[str, Any]:
    """(d) One session at a time, repeated: each round runs raw Playwright's ten steps and
    corral's run of each recording setting of table (c) once, in turn (the order rotates), in
    one warm browser; the first round only warms up. A single run of one session takes about
    a second, so one sample says little on a shared machine."""
    browser = await pool.browser()
    labels = ["raw Playwright", *ABLATIONS]
    walls: dict[str, list[float]] = {label: [] for label in labels}
    ratios: dict[str, list[float]] = {label: [] for label in ABLATIONS}
    for round_no in range(rounds + 1):
        shift = round_no % len(labels)
        got: dict[str, float] = {}
        for label in labels[shift:] + labels[:shift]:
            if label == "raw Playwright":
                user = USERS_CYCLE[round_no % 2]
                got[label] = await timed(functools.partial(raw_ten_steps, browser, portal, user))
                continue
            names = await _profiles(rt, f"o{round_no}-{labels.index(label)}", 1)
            task = parse_task({**ten_step_task(portal), **ABLATIONS[label]}, "bench")
            started = time.perf_counter()
            results = await run_many(rt, task, names)
            got[label] = (time.perf_counter() - started) * 1000
            if results[0].status != "succeeded":
                raise RuntimeError(f"(d) {label}: {results[0].error}")
        if round_no == 0:
            continue
        for label, ms in got.items():
            walls[label].append(ms)
            if label in ratios:
                ratios[label].append(ms / got["raw Playwright"])
    return {
        "rounds": rounds,
        "rows": {
            label: {
                "median_ms": round(statistics.median(walls[label])),
                "min_ms": round(min(walls[label])),
                "ratio": round(statistics.median(ratios[label]), 2) if label in ratios else 1.0,
            }
            for label in labels
        },
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="corral-bench-"))
    settings = Settings(home=home, browser=os.environ.get("CORRAL_BROWSER"))
    server = PortalServer(port=0, db_path=home / "portal.db")
    server.start()
    try:
        async with (
            BrowserPool.start(settings.browser) as pool,
            Runtime.open(settings, pool=pool) as rt,
        ):
            start = await bench_start(rt, pool, server.url, args.starts)
            parallel = [
                await bench_parallel(rt, pool, server.url, size, i)
                for i, size in enumerate(args.sizes)
            ]
            ablation = (
                await bench_ablation(rt, pool, server.url, args.ablate) if args.ablate else None
            )
            one = await bench_one(rt, pool, server.url, args.one) if args.one else None
    finally:
        server.stop()
    base = next((p for p in parallel if p["sessions"] == 1), None)
    for p in parallel:
        if base and p["sessions"] > 1:
            extra = p["sessions"] - 1
            p["corral_mb_per_extra"] = round((p["corral_peak_mb"] - base["corral_peak_mb"]) / extra)
            p["raw_mb_per_extra"] = round((p["raw_peak_mb"] - base["raw_peak_mb"]) / extra)
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "browser": f"{pool.executable}",
        "start": start,
        "parallel": parallel,
        "ablation": ablation,
        "one": one,
    }


def to_markdown(r: dict[str, Any]) -> str:
    s = r["start"]
    bu = s["browser_use"]
    lines = [
        "## Sessions (`scripts/bench_sessions.py`)",
        "",
        f"Machine: {r['machine']}; browser {r['browser']}; demo portal on 127.0.0.1.",
        "",
        f"### (a) Session start, {s['corral']['n']} starts each (lease + context with restored "
        "state + first page loaded)",
        "",
        "| | p50 ms | p95 ms | p50 ratio to raw Playwright |",
        "|---|---|---|---|",
        f"| raw Playwright `new_context`+`new_page`+`goto` | {s['raw']['p50_ms']:.0f} "
        f"| {s['raw']['p95_ms']:.0f} | 1.00 |",
        f"| corral `open_session` + first page | {s['corral']['p50_ms']:.0f} "
        f"| {s['corral']['p95_ms']:.0f} | {s['corral']['p50_ms'] / s['raw']['p50_ms']:.2f} |",
    ]
    if bu.get("p50_ms"):
        lines.append(
            f"| browser-use {bu.get('version', '')} `BrowserSession` start + navigate "
            f"| {bu['p50_ms']:.0f} | {bu['p95_ms']:.0f} | {bu['p50_ms'] / s['raw']['p50_ms']:.2f} |"
        )
    else:
        lines.append(f"| browser-use | not measured: {bu.get('error', 'unknown')[:120]} | | |")
    lines += [
        "",
        "### (b) Parallel sessions, each running the same 10-step scripted task",
        "",
        f"corral runs at most {r['parallel'][0]['slots']} sessions at once on this machine "
        "(`CORRAL_MAX_SESSIONS`, default 4 per core): the others wait for a slot; raw "
        "Playwright opens every context at once. *corral without slots*: corral with a slot "
        "for every session (all at once, like the raw baseline). "
        "*MB each*: the peak PSS of all browser processes over the sessions; *MB/extra*: what "
        "each session beyond the first added; *CPU s each*: CPU seconds of every process "
        "involved (browser, renderers, GPU process, Playwright's driver, this Python process) "
        "over the sessions.",
        "",
        "| sessions | corral wall s | raw wall s | wall ratio | corral failures | raw failures "
        "| corral peak MB | raw peak MB | corral MB each | raw MB each "
        "| corral MB/extra | raw MB/extra | corral CPU s each | raw CPU s each |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in r["parallel"]:
        n = p["sessions"]
        lines.append(
            f"| {n} | {p['corral_wall_s']} | {p['raw_wall_s']} "
            f"| {p['corral_wall_s'] / p['raw_wall_s']:.2f} | {p['corral_failures']} "
            f"| {p['raw_failures']} | {p['corral_peak_mb']} | {p['raw_peak_mb']} "
            f"| {p['corral_peak_mb'] / n:.0f} | {p['raw_peak_mb'] / n:.0f} "
            f"| {p.get('corral_mb_per_extra', '')} | {p.get('raw_mb_per_extra', '')} "
            f"| {sum(p['corral_cpu_s'].values()) / n:.2f} "
            f"| {sum(p['raw_cpu_s'].values()) / n:.2f} |"
        )
    for p in r["parallel"]:
        u = p.get("unlimited")
        if u:
            n = p["sessions"]
            lines.append(
                f"| {n}, corral without slots | {u['wall_s']} | {p['raw_wall_s']} "
                f"| {u['wall_s'] / p['raw_wall_s']:.2f} | {u['failures']} | {p['raw_failures']} "
                f"| {u['peak_mb']} | {p['raw_peak_mb']} | {u['peak_mb'] / n:.0f} "
                f"| {p['raw_peak_mb'] / n:.0f} | | | {sum(u['cpu_s'].values()) / n:.2f} "
                f"| {sum(p['raw_cpu_s'].values()) / n:.2f} |"
            )
            if u["first_failure"]:
                lines.append(
                    f"\nFirst failure of {n} corral sessions without slots: "
                    f"{u['first_failure'][:200]}"
                )
    failed = [p for p in r["parallel"] if p["first_failure"]]
    for p in failed:
        lines.append(f"\nFirst corral failure at {p['sessions']}: {p['first_failure'][:200]}")
    a = r.get("ablation")
    if a:
        kinds = sorted({k for row in a["rows"].values() for k in row["cpu_s"]})
        raw = a["rows"]["raw Playwright"]
        lines += [
            "",
            f"### (c) What a recorded run costs, {a['sessions']} sessions at once",
            "",
            "The same task with parts of corral's recording turned off (task settings), beside raw "
            "Playwright; CPU seconds per session by process.",
            "",
            "| | wall s | wall ratio to raw | failures | peak MB | CPU s each | "
            + " | ".join(kinds)
            + " |",
            "|---|---|---|---|---|---|" + "---|" * len(kinds),
        ]
        for label, row in a["rows"].items():
            n = a["sessions"]
            per = " | ".join(f"{row['cpu_s'].get(k, 0) / n:.3f}" for k in kinds)
            lines.append(
                f"| {label} | {row['wall_s']} | {row['wall_s'] / raw['wall_s']:.2f} "
                f"| {row['failures']} | {row['peak_mb']} "
                f"| {sum(row['cpu_s'].values()) / n:.2f} | {per} |"
            )
    one = r.get("one")
    if one:
        lines += [
            "",
            f"### (d) One session at a time, {one['rounds']} rounds",
            "",
            "The 1-session row of (b) is one run in a fresh browser. Here each round runs raw "
            "Playwright's ten steps and corral's run with each recording setting of (c) once, in "
            "turn (the order rotates each round), in one warm browser, after a round that only "
            "warms up; *ratio*: the median over the rounds of the run's wall time over that "
            "round's raw run.",
            "",
            "| | median ms | min ms | ratio to raw |",
            "|---|---|---|---|",
        ]
        for label, row in one["rows"].items():
            lines.append(f"| {label} | {row['median_ms']} | {row['min_ms']} | {row['ratio']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=30)
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32, 64]
    )
    parser.add_argument(
        "--ablate", type=int, default=32, help="sessions for table (c); 0 leaves it out"
    )
    parser.add_argument(
        "--one", type=int, default=8, help="rounds of table (d), one session; 0 leaves it out"
    )
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument("--json", action="store_true", help="print raw JSON results")
    args = parser.parse_args()
    results = asyncio.run(main(args))
    if args.json:
        print(json.dumps(results, indent=2))
    markdown = to_markdown(results)
    print(markdown)
    if args.write:
        write_section(ROOT / "BENCHMARKS.md", "bench_sessions", markdown)
