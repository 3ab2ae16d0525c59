#!/usr/bin/env python3
"""Scheduler benchmark: ``corral serve`` running 200 fires over 50 profiles, 16 at a time.

One schedule (every ``--every`` seconds, 50 profiles, overlap buffer_all so no fire is dropped)
runs a short scripted task on the demo portal (open the sign-in page, wait for it) for 4 fires:
200 runs. The server runs in this process with its real loop (scheduler tick, worker pool of 16
on one browser, HTTP API), exactly as ``corral serve`` does. Measured per fire from the store:

- lateness: due time (scheduled time + jitter, 0 here) to the claim that starts it, p50/p95/max;
  with 50 runs per fire and 16 slots, most of it is waiting for a slot (the concurrency cap);
- claim to first page (the first step's end), and due time to first page;
- duplicates (runs per fire > 1) and lost fires (grid times without a succeeded fire).

Baseline in the same run: the same task through ``run_task`` directly, 200 runs, 16 at a time
(an asyncio semaphore), from the call to the first page.

Usage: .venv/bin/python scripts/bench_scheduler.py [--profiles 50] [--fires 4] [--every 60]
[--workers 16] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _bench_common import summarize, write_section  # noqa: E402

from runtime import Runtime, Settings, run_task  # noqa: E402
from runtime.auth import LOCAL_ACTOR  # noqa: E402
from runtime.demo.portal import PortalServer  # noqa: E402
from runtime.records import StepRecord  # noqa: E402
from runtime.schedules import SchedulePolicy, Timing  # noqa: E402
from runtime.serve.server import ServeOptions, serve  # noqa: E402
from runtime.services import ScheduleInput  # noqa: E402
from runtime.task import load_task_text  # noqa: E402


def task_yaml(portal: str) -> str:
    return (
        "name: bench-open\n"
        f"start_url: {portal}/login\n"
        "trace: off\n"
        "steps:\n"
        "  - wait_for: {role: button, name: Sign in}\n"
    )


def first_page_at(steps: list[StepRecord]) -> float | None:
    """When the run's first page was loaded (unix seconds): the end of its first step."""
    if not steps:
        return None
    first = min(steps, key=lambda s: s.idx)
    return first.started_at.timestamp() + first.duration_ms / 1000


async def scheduled(settings: Settings, portal: str, args: argparse.Namespace) -> dict[str, object]:
    names = [f"p{i:02d}" for i in range(args.profiles)]
    async with Runtime.open(settings) as rt:
        for name in names:
            await rt.profiles.create(name)
        schedule = await rt.services.schedules.add(
            LOCAL_ACTOR,
            ScheduleInput(
                name="bench",
                task_yaml=task_yaml(portal),
                task_source="bench",
                profiles=names,
                timing=Timing(every_s=args.every),
                policy=SchedulePolicy(overlap="buffer_all", pause_after=None),
            ),
        )
    created = schedule.created_at
    window_end = created + timedelta(seconds=args.fires * args.every)
    expected = args.fires * args.profiles
    stop = asyncio.Event()
    options = ServeOptions(port=0, workers=args.workers, grace_s=30)
    server = asyncio.create_task(serve(settings, options, announce=lambda _l: None, stop=stop))
    started = time.monotonic()
    async with Runtime.open(settings) as rt:
        while True:
            await asyncio.sleep(1)
            fires = await rt.store.schedules.list_fires("bench", limit=10_000)
            in_window = [f for f in fires if f.scheduled_at <= window_end]
            if sum(f.status == "succeeded" for f in in_window) >= expected:
                break
            if time.monotonic() - started > args.fires * args.every + 600:
                break
        stop.set()
        await server
        fires = [
            f
            for f in await rt.store.schedules.list_fires("bench", limit=10_000)
            if f.scheduled_at <= window_end
        ]
        runs = [r for r in await rt.store.runs.list_runs(limit=100_000) if r.schedule == "bench"]
        per_fire = Counter(r.fire_id for r in runs)
        # The first wave of each scheduled time (as many fires as workers) finds slots free:
        # its lateness is the scheduler's own; later waves wait for a slot (the concurrency cap).
        waves: dict[datetime, list[float]] = {}
        for fire in fires:
            if fire.claimed_at is not None:
                waves.setdefault(fire.scheduled_at, []).append(
                    (fire.claimed_at - fire.due_at).total_seconds() * 1000
                )
        first_wave = [ms for late in waves.values() for ms in sorted(late)[: args.workers]]
        lateness, to_page, claim_to_page = [], [], []
        for fire in fires:
            if fire.status != "succeeded" or fire.claimed_at is None or fire.run_id is None:
                continue
            lateness.append((fire.claimed_at - fire.due_at).total_seconds() * 1000)
            page = first_page_at(await rt.store.runs.list_steps(fire.run_id))
            if page is not None:
                to_page.append((page - fire.due_at.timestamp()) * 1000)
                claim_to_page.append((page - fire.claimed_at.timestamp()) * 1000)
    return {
        "fires": len(fires),
        "expected": expected,
        "succeeded": sum(f.status == "succeeded" for f in fires),
        "duplicates": sum(n - 1 for n in per_fire.values() if n > 1),
        "lost": expected - sum(f.status == "succeeded" for f in fires),
        "lateness": summarize(lateness) | {"max_ms": round(max(lateness), 1) if lateness else None},
        "first_wave": summarize(first_wave)
        | {"max_ms": round(max(first_wave), 1) if first_wave else None},
        "claim_to_page": summarize(claim_to_page),
        "due_to_page": summarize(to_page),
    }


async def direct(settings: Settings, portal: str, args: argparse.Namespace) -> dict[str, object]:
    """The baseline: run_task called directly, the same number of runs, as many at once."""
    names = [f"d{i:02d}" for i in range(args.profiles)]
    task = load_task_text(task_yaml(portal), "bench")
    gate = asyncio.Semaphore(args.workers)
    samples: list[float] = []
    async with Runtime.open(settings) as rt:
        for name in names:
            await rt.profiles.create(name)

        async def one(profile: str) -> None:
            async with gate:
                called = time.time()
                result = await run_task(rt, task, profile)
                assert result.status == "succeeded", result.error
                assert result.run_id is not None
                page = first_page_at(await rt.store.runs.list_steps(result.run_id))
                if page is not None:
                    samples.append((page - called) * 1000)

        async with asyncio.TaskGroup() as group:
            for _ in range(args.fires):
                for name in names:
                    group.create_task(one(name))
    return {"runs": len(samples), "call_to_page": summarize(samples)}


def markdown(s: dict[str, Any], b: dict[str, Any], args: argparse.Namespace) -> str:
    late, page, claim = s["lateness"], s["due_to_page"], s["claim_to_page"]
    solo, solo_direct = s["solo"], b["solo"]["call_to_page"]
    solo_page = solo["due_to_page"]
    solo_ratio = (
        solo["claim_to_page"]["p50_ms"] / solo_direct["p50_ms"]
        if solo_direct["p50_ms"]
        else float("nan")
    )
    wave = s["first_wave"]
    direct_page = b["call_to_page"]
    ratio = claim["p50_ms"] / direct_page["p50_ms"] if direct_page["p50_ms"] else float("nan")
    rows = [
        ("fires recorded / expected", f"{s['fires']} / {s['expected']}"),
        ("succeeded", s["succeeded"]),
        ("duplicate runs of a fire", s["duplicates"]),
        ("lost fires", s["lost"]),
        (
            "lateness (due -> claim) p50 / p95 / max",
            f"{late['p50_ms']} / {late['p95_ms']} / {late['max_ms']} ms",
        ),
        (
            f"lateness of each time's first {args.workers} fires (slots free) p50 / p95 / max",
            f"{wave['p50_ms']} / {wave['p95_ms']} / {wave['max_ms']} ms",
        ),
        ("due -> first page p50 / p95", f"{page['p50_ms']} / {page['p95_ms']} ms"),
        ("claim -> first page p50 / p95 (scheduled)", f"{claim['p50_ms']} / {claim['p95_ms']} ms"),
        (
            f"call -> first page p50 / p95 (direct `run_task`, {args.workers} at once)",
            f"{direct_page['p50_ms']} / {direct_page['p95_ms']} ms",
        ),
        ("scheduled / direct, start to first page (p50)", f"{ratio:.2f}x"),
        (
            f"one at a time ({args.solo} fires, 1 worker): due -> first page p50 / p95",
            f"{solo_page['p50_ms']} / {solo_page['p95_ms']} ms",
        ),
        (
            "one at a time: lateness (due -> claim) p50 / max",
            f"{solo['lateness']['p50_ms']} / {solo['lateness']['max_ms']} ms",
        ),
        (
            "one at a time: claim -> first page p50, beside direct `run_task` call -> first page",
            f"{solo['claim_to_page']['p50_ms']} ms vs {solo_direct['p50_ms']} ms "
            f"({solo_ratio:.2f}x)",
        ),
    ]
    table = "| figure | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
    return (
        "## Scheduler (`scripts/bench_scheduler.py`)\n\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; demo portal on 127.0.0.1. One schedule every "
        f"{args.every:g}s on {args.profiles} profiles, {args.fires} fires ({s['expected']} runs), "
        f"overlap buffer_all; the `corral serve` loop in-process with {args.workers} workers on "
        "one browser. Baseline: the same task through `run_task` directly, as many at once.\n\n"
        + table
        + "\nLateness (due -> claim) over all fires is mostly the concurrency cap: each time "
        f"starts {args.profiles} runs and {args.workers} slots take them in waves, so its last "
        "wave starts long after the due time (on this 2-core machine a run takes seconds with "
        f"{args.workers} at once). The first wave finds slots free: its lateness is the "
        "scheduler's own (a tick is 0.5 s). With 16 at once, claim -> first page swings "
        "between runs of this script (1.1x to 1.8x of direct here): each fire time starts 16 "
        "contexts in one burst, where direct runs start staggered after the first wave. The "
        "one-at-a-time rows compare the two paths without that contention.\n"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", type=int, default=50)
    parser.add_argument("--fires", type=int, default=4)
    parser.add_argument("--every", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--solo", type=int, default=12, help="fires of the one-at-a-time run")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, PortalServer(port=0) as portal:
        home = Path(tmp)
        settings = Settings.from_env({"CORRAL_HOME": str(home / "scheduled")})
        result = await scheduled(settings, portal.url, args)
        base_settings = Settings.from_env({"CORRAL_HOME": str(home / "direct")})
        base = await direct(base_settings, portal.url, args)
        # One fire at a time on one worker, beside run_task one at a time: the serve path's
        # own cost from fire to first page, without 16 runs competing for 2 cores.
        one = argparse.Namespace(
            **{**vars(args), "profiles": 1, "fires": args.solo, "every": 3.0, "workers": 1}
        )
        solo = await scheduled(
            Settings.from_env({"CORRAL_HOME": str(home / "s1")}), portal.url, one
        )
        solo_base = await direct(
            Settings.from_env({"CORRAL_HOME": str(home / "d1")}), portal.url, one
        )
    print(result)
    print(base)
    print(solo)
    print(solo_base)
    result["solo"], base["solo"] = solo, solo_base
    text = markdown(result, base, args)
    print(text)
    if args.write:
        write_section(ROOT / "BENCHMARKS.md", "bench_scheduler", text)


if __name__ == "__main__":
    asyncio.run(main())
