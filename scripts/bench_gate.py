#!/usr/bin/env python3
"""What the safety layer costs, beside the same work without it, in one run.

(a) Egress allowlist: page loads (navigation to a portal page, then 5 fetch() calls from it)
    in a context that goes through the per-session filtering proxy, beside a context on the same
    browser without it; interleaved rounds, p50 per page load. Also the cost of starting the proxy
    and opening the context.
(b) Risk check: the gate's verdict for a submit-class action (reading the target's facts in the
    page, then the rules), beside a raw Playwright click on a link of the same page.
(c) Wire guard: page loads (navigation, then 5 GET and 5 POST fetch() calls) in a context whose
    every request is routed through ``profiles.WireGuard`` (inside an action window whose check
    runs the risk rules on each POST), beside a context on the same browser without it; both
    with service workers blocked, as in a run; interleaved rounds, p50 per page load.

Usage: .venv/bin/python scripts/bench_gate.py [--rounds 5] [--loads 20] [--write]
``--write`` replaces the gate section of BENCHMARKS.md with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _bench_common import summarize, write_section  # noqa: E402

from policies import ActionFacts, classify  # noqa: E402
from profiles import PROXY_BYPASS, BrowserPool, EgressProxy, WireGuard, open_session  # noqa: E402
from runtime import Runtime, Settings  # noqa: E402
from runtime.demo.portal import PortalServer  # noqa: E402
from runtime.run.wirecheck import request_check  # noqa: E402
from tools import Click, Tabs  # noqa: E402
from tools.facts import action_facts  # noqa: E402

_FETCHES = """async () => { for (let i = 0; i < 5; i++) await (await fetch('/healthz')).text(); }"""
_POSTS = """async () => { for (let i = 0; i < 5; i++) {
  await (await fetch('/healthz')).text();
  await (await fetch('/healthz', {method: 'POST', body: 'n=' + i})).text();
} }"""


async def page_loads(context: Any, portal: str, loads: int, script: str = _FETCHES) -> list[float]:
    page = await context.new_page()
    out = []
    for i in range(loads):
        t0 = time.perf_counter()
        await page.goto(f"{portal}/login?n={i}")
        await page.evaluate(script)
        out.append((time.perf_counter() - t0) * 1000)
    await page.close()
    return out


async def egress(pool: BrowserPool, portal: str, rounds: int, loads: int) -> dict[str, Any]:
    browser = await pool.browser()
    direct: list[float] = []
    proxied: list[float] = []
    open_direct: list[float] = []
    open_proxied: list[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        context = await browser.new_context()
        open_direct.append((time.perf_counter() - t0) * 1000)
        direct += await page_loads(context, portal, loads)
        await context.close()
        t0 = time.perf_counter()
        async with EgressProxy.start(["127.0.0.1"]) as proxy:
            context = await browser.new_context(
                proxy={"server": proxy.url, "bypass": PROXY_BYPASS}, service_workers="block"
            )
            open_proxied.append((time.perf_counter() - t0) * 1000)
            proxied += await page_loads(context, portal, loads)
            await context.close()
            assert proxy.allowed_total > 0, "the proxied context did not use the proxy"
    return {
        "direct": summarize(direct),
        "proxied": summarize(proxied),
        "open_direct": summarize(open_direct),
        "open_proxied": summarize(open_proxied),
    }


async def wire(pool: BrowserPool, portal: str, rounds: int, loads: int) -> dict[str, Any]:
    browser = await pool.browser()
    plain: list[float] = []
    guarded: list[float] = []
    check = request_check(None, "bench", "bench", ["127.0.0.1"])
    for _ in range(rounds):
        context = await browser.new_context(service_workers="block")
        plain += await page_loads(context, portal, loads, _POSTS)
        await context.close()
        guard = WireGuard()
        context = await browser.new_context(service_workers="block")
        await guard.install(context)
        async with guard.window(check):
            guarded += await page_loads(context, portal, loads, _POSTS)
        await context.close()
        assert guard.passed_total == 5 * loads and not guard.held, "the guard did not route"
    return {"plain": summarize(plain), "guarded": summarize(guarded)}


async def risk_check(rt: Runtime, pool: BrowserPool, portal: str, n: int) -> dict[str, Any]:
    await rt.profiles.create("bench")
    async with open_session(rt.profiles, pool, "bench", "bench-run", save_state=False) as session:
        tabs = Tabs(session)
        page = await tabs.active()
        await page.goto(f"{portal}/popup-test")
        button = Click(role="button", name="Open window")
        checks, clicks = [], []
        for _ in range(n):
            t0 = time.perf_counter()
            facts = await action_facts(tabs, button, ["127.0.0.1"])
            verdict = classify(ActionFacts.model_validate(facts))
            checks.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            await page.get_by_role("button", name="Open window").click(trial=True)
            clicks.append((time.perf_counter() - t0) * 1000)
    return {"check": summarize(checks), "click": summarize(clicks), "verdict": verdict.decision}


def markdown(r: dict[str, Any]) -> str:
    e, c, w = r["egress"], r["risk"], r["wire"]
    ratio = e["proxied"]["p50_ms"] / e["direct"]["p50_ms"]
    return (
        "## Safety layer cost (`scripts/bench_gate.py`)\n\n"
        f"Run {r['when']} on {r['machine']}; rounds={r['rounds']}, loads per round="
        f"{r['loads']}.\n\n"
        "| | baseline (same run) | with corral's check | ratio |\n|---|---|---|---|\n"
        f"| page load + 5 fetches, p50 | direct {e['direct']['p50_ms']} ms | through the "
        f"egress proxy {e['proxied']['p50_ms']} ms | {ratio:.2f}x |\n"
        f"| open a context, p50 | {e['open_direct']['p50_ms']} ms | proxy start + context "
        f"{e['open_proxied']['p50_ms']} ms | "
        f"{e['open_proxied']['p50_ms'] / e['open_direct']['p50_ms']:.2f}x |\n"
        f"| risk check of a button (facts + rules), p50 | a trial click on the button "
        f"{c['click']['p50_ms']} ms | {c['check']['p50_ms']} ms | "
        f"{c['check']['p50_ms'] / c['click']['p50_ms']:.2f}x |\n"
        f"| page load + 5 GET and 5 POST fetches, p50 | no interception "
        f"{w['plain']['p50_ms']} ms | every request through the wire guard, POSTs classified "
        f"{w['guarded']['p50_ms']} ms | {w['guarded']['p50_ms'] / w['plain']['p50_ms']:.2f}x |\n\n"
        "The demo portal's listening socket sets TCP_NODELAY since this benchmark was "
        "written: before, every keep-alive request to it stalled ~42 ms (Nagle against delayed "
        "ACKs), which made direct loads look 4x slower than proxied ones (the proxy opens a "
        "fresh upstream connection per request). Benchmarks run before that fix carry the stall "
        "on both sides of their ratios. "
        "The proxy only parses the request head and then pipes bytes, on loopback. The risk check "
        "waits until the element is actionable (the wait a click does anyway; most of its cost), "
        "finds the node a click at its centre would reach, and reads role and name from the "
        "accessibility tree and form facts in an isolated world; the click that follows is a "
        "plain mouse click at the checked point, so a checked click costs about 10 ms more than "
        "an unchecked one. The check was 0.18x a trial click when it was one main-world "
        "evaluate that a page could forge and that allowed what it could not read. The wire "
        "guard routes every request of the context through Playwright (a round trip to the "
        "driver per request, GETs included: a route cannot match on the method); only "
        "state-changing ones are classified. Approval "
        "waits are a person's time and are not part of any figure here.\n\n"
        f"```json\n{json.dumps(r, indent=1)}\n```\n"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, PortalServer(db_path=Path(tmp) / "p.db") as portal:
        settings = Settings(home=Path(tmp) / "home")
        async with BrowserPool.start() as pool, Runtime.open(settings, pool=pool) as rt:
            await egress(pool, portal.url, 1, 3)  # warm-up
            result = {
                "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "machine": f"{platform.machine()}, {platform.python_version()}",
                "rounds": args.rounds,
                "loads": args.loads,
                "egress": await egress(pool, portal.url, args.rounds, args.loads),
                "risk": await risk_check(rt, pool, portal.url, args.rounds * args.loads),
                "wire": await wire(pool, portal.url, args.rounds, args.loads),
            }
    text = markdown(result)
    print(text)
    if args.write:
        write_section(ROOT / "BENCHMARKS.md", "bench_gate", text)


if __name__ == "__main__":
    asyncio.run(main())
