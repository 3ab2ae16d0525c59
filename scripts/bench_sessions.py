#!/usr/bin/env python3
"""Session benchmark: corral beside raw Playwright (and browser-use) in one run.

(a) Session start: lease + context with restored state + first page loaded, p50/p95 over N starts,
    corral and raw Playwright interleaved on one warm browser; browser-use 0.13 measured by
    scripts/bench_browser_use.py in its own virtualenv (scripts/bench_env.sh), if available.
(b) 1/4/8/16 parallel sessions, each running the same 10-step scripted task on the demo portal:
    wall time, failures, peak memory (PSS) of all browser processes, memory per extra session;
    raw Playwright doing the same 10 steps in the same number of contexts is the baseline.

Usage: .venv/bin/python scripts/bench_sessions.py [--starts 30] [--sizes 1,4,8,16] [--write]
``--write`` replaces the session section of BENCHMARKS.md with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
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


class MemorySampler:
    """Peak PSS of this process's Chromium descendants, sampled on a thread every 100 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> int:
        total = 0
        for proc in psutil.Process().children(recursive=True):
            try:
                if "chrom" in proc.name():
                    total += proc.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return total

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(0.1)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


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


async def bench_parallel(
    rt: Runtime, pool: BrowserPool, portal: str, size: int, round_no: int
) -> dict[str, Any]:
    """(b) ``size`` sessions at once: corral's runs, then raw Playwright's, each measured."""
    names = [f"p{round_no}-{size}-{i}" for i in range(size)]
    for i, name in enumerate(names):
        user = USERS[USERS_CYCLE[i % 2]]
        await rt.profiles.create(
            name, ProfileSettings(vars={"user": user.username, "password": user.password})
        )
    task = parse_task(ten_step_task(portal), "bench")
    await pool.close()  # a fresh browser per measurement, so memory peaks are comparable
    await pool.browser()
    with MemorySampler() as corral_mem:
        start = time.perf_counter()
        results = await run_many(rt, task, names)
        corral_wall = time.perf_counter() - start
    failures = [r.error for r in results if r.status != "succeeded"]
    await pool.close()
    browser = await pool.browser()
    with MemorySampler() as raw_mem:
        start = time.perf_counter()
        raw = await asyncio.gather(
            *(raw_ten_steps(browser, portal, USERS_CYCLE[i % 2]) for i in range(size)),
            return_exceptions=True,
        )
        raw_wall = time.perf_counter() - start
    return {
        "sessions": size,
        "corral_wall_s": round(corral_wall, 2),
        "raw_wall_s": round(raw_wall, 2),
        "corral_failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "raw_failures": sum(isinstance(r, BaseException) for r in raw),
        "corral_peak_mb": round(corral_mem.peak / 2**20),
        "raw_peak_mb": round(raw_mem.peak / 2**20),
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
        "| sessions | corral wall s | raw wall s | wall ratio | corral failures | raw failures "
        "| corral peak MB | raw peak MB | corral MB/extra session | raw MB/extra session |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in r["parallel"]:
        lines.append(
            f"| {p['sessions']} | {p['corral_wall_s']} | {p['raw_wall_s']} "
            f"| {p['corral_wall_s'] / p['raw_wall_s']:.2f} | {p['corral_failures']} "
            f"| {p['raw_failures']} | {p['corral_peak_mb']} | {p['raw_peak_mb']} "
            f"| {p.get('corral_mb_per_extra', '')} | {p.get('raw_mb_per_extra', '')} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=30)
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8, 16]
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
