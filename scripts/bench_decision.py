#!/usr/bin/env python3
"""Console benchmark: from a decision to the run's next step.

A run on the demo portal clicks Pay (gated: it waits for a person), then waits for the
confirmation page (its next step). The server (the HTTP API, the console and a worker pool in
this process, as ``corral serve`` runs them) runs it; once the run waits, the request is
approved, and two intervals are timed from the moment the decision is sent:

- *leaves waiting*: until the run's row is no longer ``waiting_approval`` (the store is polled
  every 2 ms from a connection of its own);
- *next step*: until the step after the gated one starts (its row's ``started_at``; the gated
  click itself happens in between).

Two ways to decide, alternating run by run:

- *console*: a signed-in admin's POST to ``/console/approvals/{id}/decide`` (CSRF, the service's
  check and audit row, then the waiting run is woken in the same process);
- *another process* (baseline): a second Runtime on the same store decides through the service
  (as ``corral approvals approve`` or a second server would); the run only sees it on its next
  poll of the store (every 0.25 s).

Usage: .venv/bin/python scripts/bench_decision.py [--runs 20] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _bench_common import summarize, write_section  # noqa: E402

from profiles import ProfileSettings  # noqa: E402
from runtime import Runtime, Settings, parse_task  # noqa: E402
from runtime.api import create_app  # noqa: E402
from runtime.approvals import ApprovalRequest  # noqa: E402
from runtime.auth import LOCAL_ACTOR, Actor  # noqa: E402
from runtime.demo.portal import USERS, PortalServer  # noqa: E402
from runtime.demo.portal.data import invoices_for  # noqa: E402
from runtime.serve import WorkerPool  # noqa: E402
from tests.support.api import serving  # noqa: E402

ADMIN = Actor("root", "super_admin")
POLL_S = 0.002
SETTLE_S = (0.3, 0.55)
"""How long the run has been waiting when the decision is sent: well into its wait loop, at a
random point of its 0.25 s poll (the baseline's delay depends on it)."""
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_NONCE = re.compile(r'name="nonce" value="([^"]+)"')


def task(portal: str) -> Any:
    invoice = next(i for i in invoices_for("alice") if not i.paid)
    return parse_task(
        {
            "name": "bench-decision",
            "start_url": f"{portal}/login",
            "secrets": ["alice.password"],
            "trace": "off",
            "steps": [
                {"goto": f"/invoices/{invoice.number}"},
                {
                    "fill": {"label": "Username", "value": "alice"},
                    "when": {"url_contains": "/login"},
                },
                {
                    "fill": {"label": "Password", "value": "{{secret:alice.password}}"},
                    "when": {"url_contains": "/login"},
                },
                {
                    "click": {"role": "button", "name": "Sign in"},
                    "when": {"url_contains": "/login"},
                },
                {"click": {"role": "button", "name": "Pay"}},  # gated
                {"wait_for": {"role": "heading", "name": "Confirm payment"}},  # the next step
            ],
        },
        "bench-decision.yaml",
    )


async def signed_in(http: httpx.AsyncClient, token: str) -> None:
    form = await http.get("/console/login")
    nonce = _NONCE.search(form.text)
    assert nonce, form.text
    answer = await http.post("/console/login", data={"token": token, "nonce": nonce.group(1)})
    assert answer.status_code == 303, answer.text


async def pending(rt: Runtime, run_id: str) -> ApprovalRequest:
    while True:
        found = await rt.approvals.list_requests("pending", run_id)
        if found:
            return found[0]
        await asyncio.sleep(0.02)


async def when_status(observer: Runtime, run_id: str, reached: Callable[[str], bool]) -> float:
    """When (``time.time()``) the run's status first satisfied ``reached``."""
    while True:
        run = await observer.store.runs.get_run(run_id)
        assert run is not None
        if reached(run.status):
            return time.time()
        await asyncio.sleep(POLL_S)


async def one(
    rt: Runtime,
    other: Runtime,
    pool: WorkerPool,
    http: httpx.AsyncClient,
    how: str,
    t: Any,
    rng: random.Random,
) -> tuple[float, float]:
    """One run decided ``how``: ms to leaving waiting_approval, ms to the next step's start."""
    [run] = await pool.submit(ADMIN, t, ["alice"])
    request = await pending(rt, run.run_id)
    await when_status(other, run.run_id, lambda status: status == "waiting_approval")
    await asyncio.sleep(rng.uniform(*SETTLE_S))
    page = (await http.get(f"/console/approvals/{request.id}")).text
    csrf = _CSRF.search(page)
    assert csrf, page
    watch = asyncio.create_task(
        when_status(other, run.run_id, lambda status: status != "waiting_approval")
    )
    sent = time.time()
    if how == "console":
        answer = await http.post(
            f"/console/approvals/{request.id}/decide",
            data={"csrf": csrf.group(1), "decision": "approve", "comment": "bench"},
        )
        assert answer.status_code == 303, answer.text
    else:
        await other.services.approvals.decide(ADMIN, request.id, True, "bench")
    left = await watch
    result = await pool.wait(run.run_id)
    assert result is not None and result.status == "succeeded", result and result.error
    steps = await rt.store.runs.list_steps(run.run_id)
    after = next(s for s in steps if s.idx == request.step_idx + 1)
    return (left - sent) * 1000, (after.started_at.timestamp() - sent) * 1000


async def bench(runs: int) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {
        how: {"left": [], "next": []} for how in ("console", "other")
    }
    with (
        tempfile.TemporaryDirectory() as tmp,
        PortalServer(port=0, db_path=Path(tmp) / "portal.db") as portal,
    ):
        settings = Settings(home=Path(tmp) / "home", lease_timeout_s=30)
        async with Runtime.open(settings) as rt, Runtime.open(settings) as other:
            await rt.services.users.add_user_with_token(LOCAL_ACTOR, "root", "super_admin")
            token = (await rt.services.users.add_user_with_token(ADMIN, "ada", "admin")).value
            await rt.profiles.create("alice", ProfileSettings(vars={"user": "alice"}))
            await rt.vault.set("alice.password", USERS["alice"].password, [portal.url], ["alice"])
            pool = WorkerPool(rt, 2)
            t = task(portal.url)
            try:
                async with (
                    serving(create_app(rt, pool)) as url,
                    httpx.AsyncClient(base_url=url, timeout=60) as http,
                ):
                    await signed_in(http, token)
                    rng = random.Random(7)
                    await one(rt, other, pool, http, "console", t, rng)  # warm-up: signs in
                    for i in range(runs * 2):
                        how = ("console", "other")[i % 2]
                        left, after = await one(rt, other, pool, http, how, t, rng)
                        samples[how]["left"].append(left)
                        samples[how]["next"].append(after)
                        print(f"  {how:8} leaves waiting {left:7.1f} ms, next step {after:7.1f} ms")
            finally:
                await pool.drain(0)
    return samples


def markdown(samples: dict[str, dict[str, list[float]]], runs: int) -> str:
    stats = {how: {k: summarize(v) for k, v in s.items()} for how, s in samples.items()}
    rows = []
    for key, label in (
        ("left", "decision to leaving waiting_approval"),
        ("next", "decision to the next step's start"),
    ):
        c, o = stats["console"][key], stats["other"][key]
        ratio = (o["p50_ms"] or 0) / (c["p50_ms"] or 1)
        rows.append(
            f"| {label} | {c['p50_ms']:.1f} | {c['p95_ms']:.1f} | {o['p50_ms']:.1f} "
            f"| {o['p95_ms']:.1f} | {ratio:.1f}x |"
        )
    return (
        "## Console: decision to next step (`scripts/bench_decision.py`)\n\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; demo portal on 127.0.0.1; {datetime.now():%Y-%m-%d}. "
        f"{runs} runs decided each way, alternating: a run clicks Pay (gated), is approved "
        f"{SETTLE_S[0]:g}-{SETTLE_S[1]:g} s into its wait (uniformly at random), then waits for "
        "the confirmation page. *Console*: an "
        "admin's POST to `/console/approvals/{id}/decide` on the server that runs the run (it "
        "wakes the waiting run at once). *Another process* (baseline): a second Runtime on the "
        "same store decides through the service; the run sees it on its next poll (every "
        "0.25 s). Times from sending the decision; the next step's start includes the approved "
        "click itself.\n\n"
        "| interval | console p50 ms | console p95 ms | other process p50 ms "
        "| other process p95 ms | p50 ratio (other / console) |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        "A decision taken on the server that runs the run reaches it at once (the service wakes "
        "the wait in the same process); one taken elsewhere waits for the run's next poll, half "
        "the 0.25 s interval on average. The rest of the time to the next step is the approved "
        "click itself (the target checked again, the click, the page it opens, the step's "
        "screenshot and row), the same either way.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs decided each way")
    parser.add_argument("--write", action="store_true", help="write BENCHMARKS.md's section")
    args = parser.parse_args()
    samples = asyncio.run(bench(args.runs))
    text = markdown(samples, args.runs)
    print(text)
    if args.write:
        write_section(ROOT / "BENCHMARKS.md", "bench_decision", text)


if __name__ == "__main__":
    main()
