#!/usr/bin/env python3
"""Agent-loop overhead per step, beside raw Playwright doing the same clicks, in one run.

corral: a goal task whose planner is a zero-latency FunctionModel that pages through bob's
invoices (Next, Next, ..., then Previous, ...), so each turn pays observe (AI snapshot + compact
text + the icon probe, redaction) + validate + the gate's check + act + record (step row,
screenshot). raw: the same clicks with page.get_by_role(...).click() and nothing else. Both on one
warm browser, interleaved. Each phase is timed by wrapping the loop's phase functions
(``runtime.agent.loop``'s observe, decide, check, act; ``runtime.agent.phases``' record_step).

With ``--before REV`` the same measurement also runs on that commit's code (its files from
``git archive``, imported instead of this checkout's), round by round in turn with today's, each
round a fresh process: the ratios of both to raw Playwright come from the same run.

Usage: .venv/bin/python scripts/bench_loop.py [--steps 16] [--rounds 5] [--before REV] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CODE = Path(os.environ.get("CORRAL_BENCH_CODE") or ROOT)  # whose corral is measured
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(CODE))

from _bench_common import checkout, write_section  # noqa: E402

from profiles import BrowserPool, ProfileSettings  # noqa: E402
from runtime import Runtime, Settings, parse_task, run_task  # noqa: E402
from runtime.demo.portal import USERS, PortalServer  # noqa: E402
from runtime.models import Message, ModelResponse, ToolSpec  # noqa: E402
from runtime.testing import FunctionModel, call, reply  # noqa: E402

PAGES = 9  # bob has 87 invoices: 9 pages of 10
# A page whose controls change it in place (a tab widget): a click leaves the document.
TABS_PAGE = b"""<!doctype html><title>Tabs</title><main><h1>Account</h1>
<div role=tablist><button role=tab id=one>First tab</button>
<button role=tab id=two>Second tab</button></div>
<section id=panel><p>Overview of the account.</p></section></main><script>
const panel = document.getElementById('panel');
for (const [id, text] of [['one', 'Overview of the account.'], ['two', 'Recent activity.']])
  document.getElementById(id).onclick = () => { panel.innerHTML = '<p>' + text + '</p>'; };
</script>"""
TAB_NAMES = ("Second tab", "First tab")
PHASES = ("observe", "decide", "check", "act", "record")
# The turns measured: their task settings, and how long the planner takes to answer (seconds).
# *thinking* gives the model a latency, so the step record (screenshot, row) of the previous
# step runs while the model is asked, as with a real model; its figure is the turn without it.
TURNS: dict[str, tuple[dict[str, str], float]] = {
    "on_failure": ({"screenshots": "on_failure"}, 0.0),
    "always": ({"screenshots": "always"}, 0.0),
    "bare": ({"screenshots": "on_failure", "trace": "off"}, 0.0),
    "thinking": ({"screenshots": "always"}, 0.3),
}


def pager(steps: int, latency: float = 0.0) -> FunctionModel:
    """Click Next until the last page, then Previous; done after ``steps`` clicks; each answer
    takes ``latency`` seconds."""
    state = {"clicks": 0}

    async def decide(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        await asyncio.sleep(latency)
        text = "\n".join(p.text for m in messages for p in m.content if p.type == "text")
        if state["clicks"] >= steps:
            return reply(call("done", result={"clicks": state["clicks"]}))
        forward = (state["clicks"] // (PAGES - 1)) % 2 == 0
        name = "Next" if forward else "Previous"
        # The last whole page sent (each click loads a new page, so every page is whole).
        found = re.findall(rf"^\[(\w+)\] (?:link )?{name}$", text, re.MULTILINE)
        assert found, text[-2000:]
        state["clicks"] += 1
        return reply(call("click", ref=found[-1]))

    return FunctionModel(decide, name="pager")


def toggler(steps: int) -> FunctionModel:
    """Click the tab widget's two buttons in turn; done after ``steps`` clicks."""
    state = {"clicks": 0}

    def decide(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        if state["clicks"] >= steps:
            return reply(call("done", result={"clicks": state["clicks"]}))
        name = TAB_NAMES[state["clicks"] % 2]
        text = "\n".join(p.text for m in messages for p in m.content if p.type == "text")
        # The page stays: the ref is in the first whole page or a later delta.
        found = re.findall(rf"^\[(\w+)\] (?:tab )?{name}\b", text, re.MULTILINE)
        assert found, text[-2000:]
        state["clicks"] += 1
        return reply(call("click", ref=found[-1]))

    return FunctionModel(decide, name="toggler")


@contextlib.contextmanager
def tabs_site() -> Iterator[str]:
    """The tab widget page on 127.0.0.1, for the ``with`` block."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(TABS_PAGE)))
            self.end_headers()
            self.wfile.write(TABS_PAGE)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/tabs"
    finally:
        server.shutdown()
        server.server_close()


def timing(spans: dict[str, list[float]]) -> Callable[[Any, str, str], None]:
    """Wraps ``module.name`` so each call's wall time is added to ``spans[label]``."""

    def wrap(module: Any, name: str, label: str) -> None:
        inner: Callable[..., Awaitable[Any]] = getattr(module, name)

        @functools.wraps(inner)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await inner(*args, **kwargs)
            finally:
                spans[label].append((time.perf_counter() - start) * 1000)

        setattr(module, name, timed)

    return wrap


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


async def raw_toggles(pool: BrowserPool, url: str, steps: int) -> float:
    browser = await pool.browser()
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(url)
        start = time.perf_counter()
        for i in range(steps):
            await page.get_by_role("tab", name=TAB_NAMES[i % 2], exact=True).click()
        return (time.perf_counter() - start) * 1000 / steps
    finally:
        await context.close()


def turn_gaps(records: list[Any]) -> float:
    """The mean time from one click's start to the next's: one turn (the click, its record and
    screenshot, observe + compact, the model hop, validate, check)."""
    starts = [s.started_at for s in records if s.kind == "click"]
    gaps = [(b - a).total_seconds() * 1000 for a, b in itertools.pairwise(starts)]
    return statistics.mean(gaps)


async def measure(steps: int, rounds: int) -> dict[str, Any]:
    """``rounds`` rounds in this process: corral's turn (both screenshot settings), raw clicks,
    and corral's phases (with the default screenshots)."""
    import runtime.agent.loop as loop
    import runtime.agent.phases as phases

    spans: dict[str, list[float]] = defaultdict(list)
    wrap = timing(spans)
    for phase in PHASES[:-1]:
        wrap(loop, phase, phase)
    wrap(phases, "record_step", "record")
    home = Path(tempfile.mkdtemp(prefix="corral-bench-loop-"))
    server = PortalServer(port=0, db_path=home / "portal.db")
    server.start()
    turn_ms: dict[str, list[float]] = {name: [] for name in TURNS}
    phase_ms: dict[str, list[float]] = defaultdict(list)
    raw_ms: list[float] = []
    inplace_ms: list[float] = []
    raw_inplace_ms: list[float] = []
    site = contextlib.ExitStack()
    tabs_url = site.enter_context(tabs_site())
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
                name: parse_task(
                    {
                        "name": "pager",
                        "start_url": f"{server.url}/invoices",
                        "goal": "Page through the invoices.",
                        "budget": {"max_steps": steps + 5},
                        "vision": "never",
                        **settings,
                    },
                    "pager",
                )
                for name, (settings, _) in TURNS.items()
            }
            toggles = parse_task(
                {
                    "name": "toggler",
                    "start_url": tabs_url,
                    "goal": "Switch between the tabs.",
                    "budget": {"max_steps": steps + 5},
                    "vision": "never",
                },
                "toggler",
            )
            for _ in range(rounds):
                for name, task in tasks.items():
                    spans.clear()
                    latency = TURNS[name][1]
                    model = pager(steps, latency)
                    result = await run_task(rt, task, "bob", models={"planner": [model]})
                    assert result.status == "succeeded", result.error
                    records = await rt.store.runs.list_steps(str(result.run_id))
                    turn_ms[name].append(turn_gaps(records) - latency * 1000)
                    if name == "always":
                        for phase in PHASES:
                            phase_ms[phase].append(statistics.mean(spans[phase]))
                raw_ms.append(await raw_clicks(pool, server.url, state, steps))
                result = await run_task(rt, toggles, "bob", models={"planner": [toggler(steps)]})
                assert result.status == "succeeded", result.error
                inplace_ms.append(turn_gaps(await rt.store.runs.list_steps(str(result.run_id))))
                raw_inplace_ms.append(await raw_toggles(pool, tabs_url, steps))
    finally:
        server.stop()
        site.close()
    return {
        "turn_ms": turn_ms,
        "raw_ms": raw_ms,
        "phase_ms": dict(phase_ms),
        "inplace_ms": inplace_ms,
        "raw_inplace_ms": raw_inplace_ms,
    }


def median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def in_process(code: Path, steps: int) -> dict[str, Any]:
    """One round in a fresh process importing corral from ``code``."""
    env = {**os.environ, "CORRAL_BENCH_CODE": str(code)}
    proc = subprocess.run(
        [sys.executable, __file__, "--one-round", "--steps", str(steps)],
        env=env,
        capture_output=True,
        text=True,
        cwd=code,
    )
    if proc.returncode != 0:
        raise SystemExit(f"a round on {code} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(args: argparse.Namespace) -> dict[str, Any]:
    trees = {"now": ROOT}
    if args.before:
        trees["before"] = checkout(ROOT, args.before, Path(tempfile.mkdtemp()) / "before")
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, code in trees.items():
            rounds[name].append(in_process(code, args.steps))
    out: dict[str, Any] = {"rounds": args.rounds, "steps": args.steps, "rev": args.before}
    for name, got in rounds.items():
        out[name] = {
            "raw_ms": median([x for r in got for x in r["raw_ms"]]),
            "turn_ms": {t: median([x for r in got for x in r["turn_ms"][t]]) for t in TURNS},
            "phase_ms": {p: median([x for r in got for x in r["phase_ms"][p]]) for p in PHASES},
            **{k: median([x for r in got for x in r[k]]) for k in ("inplace_ms", "raw_inplace_ms")},
            # Each round's turn over that round's raw click (the machine's load drifts between
            # rounds; within one it is much the same), the median over the rounds.
            "ratio": {
                **{t: ratio(got, "turn_ms", t, "raw_ms") for t in TURNS},
                "inplace": ratio(got, "inplace_ms", None, "raw_inplace_ms"),
            },
        }
    return out


def ratio(rounds: list[dict[str, Any]], key: str, turn: str | None, raw: str) -> float:
    """The median over ``rounds`` of each round's figure over its own raw figure."""
    values = [(r[key][turn] if turn else r[key])[0] / r[raw][0] for r in rounds]
    return round(statistics.median(values), 2)


def to_markdown(r: dict[str, Any]) -> str:
    now = r["now"]
    raw = now["raw_ms"]
    rows = [
        f"| raw Playwright `get_by_role(...).click()` | {raw} | 1.00 |",
        f"| corral turn, `screenshots: on_failure` | {now['turn_ms']['on_failure']} "
        f"| {now['ratio']['on_failure']:.2f} |",
        f"| corral turn, `screenshots: always` (default) | {now['turn_ms']['always']} "
        f"| {now['ratio']['always']:.2f} |",
        f"| corral turn, `screenshots: on_failure`, `trace: off` | {now['turn_ms']['bare']} "
        f"| {now['ratio']['bare']:.2f} |",
        f"| corral turn, default, the model answering in {TURNS['thinking'][1] * 1000:.0f} ms "
        f"(the turn without those) | {now['turn_ms']['thinking']} "
        f"| {now['ratio']['thinking']:.2f} |",
    ]
    if "before" in r:
        b = r["before"]
        rows += [
            f"| before (`{r['rev']}`): raw click, its own rounds | {b['raw_ms']} | "
            f"{b['raw_ms'] / raw:.2f} |",
            f"| before: corral turn, `on_failure` | {b['turn_ms']['on_failure']} "
            f"| {b['ratio']['on_failure']:.2f} (to its raw) |",
            f"| before: corral turn, default | {b['turn_ms']['always']} "
            f"| {b['ratio']['always']:.2f} (to its raw) |",
            f"| before: `on_failure`, `trace: off` | {b['turn_ms']['bare']} "
            f"| {b['ratio']['bare']:.2f} (to its raw) |",
            f"| before: default, the model answering in "
            f"{TURNS['thinking'][1] * 1000:.0f} ms | {b['turn_ms']['thinking']} "
            f"| {b['ratio']['thinking']:.2f} (to its raw) |",
        ]
    phases = " | ".join(PHASES)
    inplace = [
        f"| now | {now['raw_inplace_ms']} | {now['inplace_ms']} | {now['ratio']['inplace']:.2f} |"
    ]
    if "before" in r:
        b = r["before"]
        inplace.append(
            f"| before (`{r['rev']}`) | {b['raw_inplace_ms']} | {b['inplace_ms']} "
            f"| {b['ratio']['inplace']:.2f} |"
        )
    phase_rows = [f"| now | {' | '.join(str(now['phase_ms'][p]) for p in PHASES)} |"]
    if "before" in r:
        b = r["before"]
        phase_rows.append(f"| before | {' | '.join(str(b['phase_ms'][p]) for p in PHASES)} |")
    return (
        "## Agent loop overhead per step (`scripts/bench_loop.py`)\n\n"
        f"{r['rounds']} rounds (each a fresh process) of {r['steps']} clicks paging through bob's "
        "invoices on the demo portal (each click loads a page); corral's planner is a "
        "zero-latency `FunctionModel`; ms: medians of per-round averages; ratios: the median "
        "over the rounds of each round's figure over that round's raw click (the machine's load "
        "drifts between rounds). A corral turn is one click "
        "plus observe (AI snapshot, the icon probe, compact text, redaction), the model hop, "
        "validation, the gate's check (the node a click would reach, read where the page cannot "
        "forge it; looked for first where the observation saw the ref's element), the wait for "
        "the navigation the click asked for, the wire guard routing every request, and the step "
        "record; with "
        "`screenshots: always` (the default) also a JPEG of the freshly loaded page, taken once "
        "the next turn has read the page, while the model answers and the call is checked, and "
        "awaited before the click (so with a real model's latency it costs nothing "
        "extra; here it competes for the two cores). The Playwright trace (`trace: on`, the "
        "default) takes a DOM snapshot of the page before each click, on the click's path. "
        "Two more rows take the recording apart: with `screenshots: on_failure` and `trace: off` "
        "a turn records only its step row; with a planner that answers in "
        f"{TURNS['thinking'][1] * 1000:.0f} ms (default recording), the figure is the turn "
        "less that time: what corral adds to a turn when the model takes as long as a fast "
        "real one."
        + (
            f" *before*: commit `{r['rev']}` (its files from `git archive`), measured in the "
            "same run, round by round in turn."
            if r.get("rev")
            else ""
        )
        + "\n\n| | ms per step | ratio |\n|---|---|---|\n"
        + "\n".join(rows)
        + "\n\nWhere a default turn's time goes (ms per turn, each phase timed by wrapping the "
        "loop's phase functions; *record* is the previous step's screenshot and row, which runs "
        "beside *decide* and *check* (in *before*: beside *observe*), so the phases add up to more "
        "than the turn):\n\n"
        + f"| | {phases} |\n|---|{'---|' * len(PHASES)}\n"
        + "\n".join(phase_rows)
        + "\n\nA click that leaves the page in place (a tab widget on a page of its own: two "
        "tabs that swap a panel's text; no document is loaded), the same number of clicks, "
        "default screenshots; raw Playwright clicks the same tabs with "
        "`get_by_role(...).click()`:\n\n"
        "| | raw ms per click | corral ms per turn | ratio |\n|---|---|---|---|\n"
        + "\n".join(inplace)
        + "\n"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", default=None, help="a commit to compare with (git rev)")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--one-round", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_round:
        print(json.dumps(asyncio.run(measure(args.steps, 1))))
        raise SystemExit(0)
    results = main(args)
    markdown = to_markdown(results)
    print(markdown)
    if args.write:
        write_section(ROOT / "BENCHMARKS.md", "bench_loop", markdown)
