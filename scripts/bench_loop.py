#!/usr/bin/env python3
"""Agent-loop overhead per step, beside raw Playwright doing the same actions, in one run.

corral: a goal task whose planner is a zero-latency FunctionModel that pages through bob's
invoices (Next, Next, ..., then Previous, ...), so each turn pays observe (AI snapshot + compact
text, redaction) + validate + policy + act + record (step row, screenshot). raw: the same clicks
with page.get_by_role(...).click() and nothing else. Both on one warm browser, interleaved.

Usage: .venv/bin/python scripts/bench_loop.py [--steps 16] [--rounds 5] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _bench_common import write_section  # noqa: E402

from profiles import BrowserPool, ProfileSettings  # noqa: E402
from runtime import Runtime, Settings, parse_task, run_task  # noqa: E402
from runtime.demo.portal import USERS, PortalServer  # noqa: E402
from runtime.models import Message, ModelResponse, ToolSpec  # noqa: E402
from runtime.testing import FunctionModel, call, reply  # noqa: E402

PAGES = 9  # bob has 87 invoices: 9 pages of 10


def pager(steps: int) -> FunctionModel:
    """Click Next until the last page, then Previous; done after ``steps`` clicks."""
    state = {"clicks": 0}

    def decide(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        page = "\n".join(p.text for p in messages[-1].content if p.type == "text")
        page = page.split("Current page:")[-1]
        if state["clicks"] >= steps:
            return reply(call("done", result={"clicks": state["clicks"]}))
        forward = (state["clicks"] // (PAGES - 1)) % 2 == 0
        name = "Next" if forward else "Previous"
        m = re.search(rf"^\[(\w+)\] (?:link )?{name}$", page, re.MULTILINE)
        assert m, page
        state["clicks"] += 1
        return reply(call("click", ref=m.group(1)))

    return FunctionModel(decide, name="pager")


async def raw_clicks(pool: BrowserPool, portal: str, state: Any, steps: int) -> float:
    browser = await pool.browser()
    context = await browser.new_context(storage_state=state)
    try:
        page = await context.new_page()
        await page.goto(f"{portal}/invoices")
        start = time.perf_counter()
        for i in range(steps):
            forward = (i // (PAGES - 1)) % 2 == 0
            await page.get_by_role(
                "link", name="Next" if forward else "Previous", exact=True
            ).click()
        return (time.perf_counter() - start) * 1000 / steps
    finally:
        await context.close()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="corral-bench-loop-"))
    server = PortalServer(port=0, db_path=home / "portal.db")
    server.start()
    corral_ms: dict[str, list[float]] = {"always": [], "on_failure": []}
    raw_ms: list[float] = []
    try:
        async with (
            BrowserPool.start(os.environ.get("CORRAL_BROWSER")) as pool,
            Runtime.open(Settings(home=home), pool=pool) as rt,
        ):
            await rt.profiles.create("bob", ProfileSettings(vars={"user": "bob"}))
            await rt.vault.set("bob.password", USERS["bob"].password, [server.url], ["bob"])
            login = parse_task(
                {
                    "name": "login",
                    "start_url": server.url,
                    "secrets": ["bob.password"],
                    "steps": [
                        {"goto": "/login"},
                        {"fill": {"label": "Username", "value": "bob"}},
                        {"fill": {"label": "Password", "value": "{{secret:bob.password}}"}},
                        {"click": {"role": "button", "name": "Sign in"}},
                    ],
                },
                "login",
            )
            assert (await run_task(rt, login, "bob")).status == "succeeded"
            state = rt.profiles.open_state(await rt.profiles.get("bob"))
            tasks = {
                shots: parse_task(
                    {
                        "name": "pager",
                        "start_url": f"{server.url}/invoices",
                        "goal": "Page through the invoices.",
                        "budget": {"max_steps": args.steps + 5},
                        "vision": "never",
                        "screenshots": shots,
                    },
                    "pager",
                )
                for shots in corral_ms
            }
            for _ in range(args.rounds):
                for shots, task in tasks.items():
                    model = pager(args.steps)
                    result = await run_task(rt, task, "bob", models={"planner": [model]})
                    assert result.status == "succeeded", result.error
                    steps = await rt.store.runs.list_steps(str(result.run_id))
                    starts = [s.started_at for s in steps if s.kind == "click"]
                    # One turn = from one click's start to the next: the click, its record
                    # (and screenshot), observe + compact, the model hop, validate, policy.
                    gaps = [(b - a).total_seconds() * 1000 for a, b in itertools.pairwise(starts)]
                    corral_ms[shots].append(statistics.mean(gaps))
                raw_ms.append(await raw_clicks(pool, server.url, state, args.steps))
    finally:
        server.stop()
    return {
        "corral_ms": {k: round(statistics.median(v), 1) for k, v in corral_ms.items()},
        "raw_ms": round(statistics.median(raw_ms), 1),
        "rounds": args.rounds,
        "steps": args.steps,
    }


def to_markdown(r: dict[str, Any]) -> str:
    raw = r["raw_ms"]
    shots, no_shots = r["corral_ms"]["always"], r["corral_ms"]["on_failure"]
    return (
        "## Agent loop overhead per step (`scripts/bench_loop.py`)\n\n"
        f"{r['rounds']} rounds of {r['steps']} clicks paging through bob's invoices on the demo "
        "portal (each click loads a page); corral's planner is a zero-latency `FunctionModel`; "
        "medians of per-round averages. A corral turn is one click plus observe (AI snapshot, "
        "compact text, redaction), the model hop, validation, the risk check (the gate) "
        "and the step record; with `screenshots: always` (the default) also a JPEG of the "
        "freshly loaded page, which is taken while the next turn observes and asks the model, "
        "so with a real model's latency it costs nothing extra. That screenshot makes Chromium "
        "paint the page "
        "it just loaded, work the raw baseline never asks for. Since the safety work of issue 9 "
        "a corral turn also carries the checked click (the node a click would reach, read where "
        "the page cannot forge it) and the wire guard routing every request of the session "
        "(before it: 1.40x on_failure, 1.70x default).\n\n"
        "| | ms per step | ratio |\n|---|---|---|\n"
        f"| raw Playwright `get_by_role(...).click()` | {raw} | 1.00 |\n"
        f"| corral turn, `screenshots: on_failure` | {no_shots} | {no_shots / raw:.2f} |\n"
        f"| corral turn, `screenshots: always` (default) | {shots} | {shots / raw:.2f} |\n"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(main(args))
    markdown = to_markdown(results)
    print(markdown)
    if args.write:
        write_section(ROOT / "BENCHMARKS.md", "bench_loop", markdown)
