#!/usr/bin/env python3
"""Replay benchmark: the replay file of a 200-step run, its size and the time to write it.

A 200-step goal-like run is recorded into a real store and run folder with corral's own
``Recorder``: a distinct screenshot per step, taken by Chromium from the demo portal signed in as
bob (invoice pages, invoice lists of several page sizes, print views; JPEG quality 70 at
1280x800, as a run's are), step rows with full detail (target, box, verdict, the model's call and
reason, a page excerpt, blocked hosts, an approval every 25 steps) and one model call per step (a
failed fallback every 10). Then, N times each, in the same process:

- replay: ``rt.services.runs.review`` + ``render_replay`` + writing the file (owner-only);
- baseline: copying what a person would otherwise be sent, the run folder's screenshots and
  ``steps.jsonl``, into a fresh folder.

Usage: .venv/bin/python scripts/bench_replay.py [--steps 200] [--repeat 7] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _bench_common import write_section  # noqa: E402

from profiles import BrowserPool, ProfileSettings, Redactor, write_private  # noqa: E402
from runtime import Runtime, Settings  # noqa: E402
from runtime.auth import LOCAL_ACTOR  # noqa: E402
from runtime.demo.portal import USERS, PortalServer  # noqa: E402
from runtime.demo.portal.data import invoices_for  # noqa: E402
from runtime.records import ModelCallRecord, RunRecord, StepRecord  # noqa: E402
from runtime.review.replay import render_replay  # noqa: E402
from runtime.run.recorder import Recorder  # noqa: E402


def page_paths(n: int) -> list[str]:
    """``n`` distinct portal pages (bob's invoices, lists, print views), interleaved."""
    numbers = [i.number for i in invoices_for("bob")]
    lists = [
        f"/invoices?page={k}&per_page={per}"
        for per in (5, 10, 20)
        for k in range(1, -(-len(numbers) // per) + 1)
    ]
    pool = [f"/invoices/{x}" for x in numbers] + lists + [f"/invoices/{x}/print" for x in numbers]
    if len(pool) < n:
        raise SystemExit(f"only {len(pool)} distinct pages for {n} steps")
    return pool[:n]


async def screenshots(portal: str, paths: list[str]) -> list[bytes]:
    """A JPEG of each page, from Chromium, signed in as bob."""
    shots = []
    async with BrowserPool.start(os.environ.get("CORRAL_BROWSER")) as browsers:
        browser = await browsers.browser()
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        await page.goto(f"{portal}/login")
        await page.get_by_label("Username").fill("bob")
        await page.get_by_label("Password").fill(USERS["bob"].password)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(f"{portal}/dashboard")
        for path in paths:
            await page.goto(portal + path)
            shots.append(await page.screenshot(type="jpeg", quality=70))
        await context.close()
    return shots


def detail(i: int, portal: str) -> dict[str, Any]:
    """A model step's record detail, as the agent loop writes it."""
    ref = f"e{10 + i % 40}"
    name = f"INV-{1000 + i}"
    note: dict[str, Any] = {
        "policy": {"decision": "allow", "reasons": [], "rules": ["links-inside"], "gating": []},
        "target": {"ref": ref, "role": "link", "name": name},
        "box": {"x": 120.0 + i % 7 * 40, "y": 180.0 + i % 11 * 30, "width": 96.0, "height": 22.0},
        "model": "openai:gpt-5-mini",
        "tool": "click",
        "call": f'click({{"ref": "{ref}"}})',
        "reason": f"Open invoice {name} to read its amount and due date before the next one.",
        "excerpt": "\n".join(
            f"[e{10 + k}] link INV-{1000 + k} | $1,{k:03d}.00 | due 2026-12-{k % 28 + 1:02d}"
            for k in range(16)
        ),
    }
    if i % 25 == 24:
        note["policy"] = {
            "decision": "require_approval",
            "reasons": ["looks like a payment"],
            "rules": ["payments"],
            "gating": ["payments"],
        }
        note["approval"] = {
            "id": f"ap-{i:08x}",
            "summary": f"Click 'Pay $1,{i:03d}.00' on /invoices/{name}",
            "status": "executed",
            "decided_by": "ada",
            "decided_at": datetime.now(UTC).isoformat(),
            "comment": "matches the order",
        }
    if i % 9 == 0:
        note["blocked_requests"] = [
            {"host": "tracker.example", "port": 443, "method": "CONNECT", "at": "2026-12-01"}
        ]
    return note


async def record_run(rt: Runtime, portal: str, paths: list[str], shots: list[bytes]) -> str:
    """The run, recorded as a run records itself; its id."""
    await rt.profiles.create("bench", ProfileSettings())
    # A stored secret: the review redacts every text with it, as for a real run.
    await rt.vault.set("bob.password", USERS["bob"].password, [portal], ["bench"])
    run_id = "20261201-000000-bench0"
    run_dir = rt.settings.home / "runs" / run_id
    start = datetime.now(UTC) - timedelta(minutes=10)
    await rt.store.runs.create_run(
        RunRecord(
            id=run_id,
            task_name="review-invoices",
            task_path="review-invoices.yaml",
            profile="bench",
            status="running",
            started_at=start,
            run_dir=str(run_dir),
            pid=os.getpid(),
        )
    )
    recorder = Recorder(rt.store, run_id, run_dir, Redactor())
    for i, (path, shot) in enumerate(zip(paths, shots, strict=True)):
        at = start + timedelta(seconds=3 * i)
        before = portal + (paths[i - 1] if i else "/dashboard")
        await recorder.step(
            StepRecord(
                run_id=run_id,
                idx=i,
                kind="click",
                action={"kind": "click", "ref": f"e{10 + i % 40}"},
                target=f"ref={10 + i % 40}",
                side_effect="submit",
                status="ok",
                url_before=before,
                url_after=portal + path,
                started_at=at,
                duration_ms=180.0 + i % 13 * 10,
                detail=detail(i, portal),
            ),
            shot,
        )
        attempts = [("error", "anthropic:claude-haiku")] if i % 10 == 0 else []
        for outcome, model in [*attempts, ("ok", "openai:gpt-5-mini")]:
            provider, name = model.split(":")
            ok = outcome == "ok"
            await rt.store.runs.add_model_call(
                ModelCallRecord(
                    run_id=run_id,
                    step_idx=i,
                    role="planner",
                    provider=provider,
                    model=name,
                    outcome="ok" if ok else "error",
                    reason=None if ok else "503 from upstream",
                    input_tokens=3200 if ok else 0,
                    output_tokens=60 if ok else 0,
                    cost_usd=0.00092 if ok else 0.0,
                    latency_ms=850.0 if ok else 120.0,
                    at=at,
                )
            )
    await rt.store.runs.finish_run(run_id, "succeeded", None, {"invoices": len(paths)})
    return run_id


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


async def measure(rt: Runtime, run_id: str, repeat: int, out: Path) -> dict[str, Any]:
    run_dir = rt.settings.home / "runs" / run_id
    replay_ms, review_ms, copy_ms = [], [], []
    size = 0
    for n in range(repeat):
        t0 = time.perf_counter()
        review = await rt.services.runs.review(LOCAL_ACTOR, run_id)
        t1 = time.perf_counter()
        data = render_replay(review, run_dir).encode()
        target = out / f"replay-{n}.html"
        write_private(target, data)
        t2 = time.perf_counter()
        review_ms.append((t1 - t0) * 1000)
        replay_ms.append((t2 - t0) * 1000)
        size = target.stat().st_size
        copy = out / f"copy-{n}"
        t3 = time.perf_counter()
        shutil.copytree(run_dir / "steps", copy / "steps")
        shutil.copy2(run_dir / "steps.jsonl", copy / "steps.jsonl")
        copy_ms.append((time.perf_counter() - t3) * 1000)
    shots = sorted((run_dir / "steps").glob("*.jpg"))
    return {
        "steps": len(shots),
        "replay_bytes": size,
        "baseline_bytes": folder_size(out / "copy-0"),
        "screenshot_bytes": sum(p.stat().st_size for p in shots),
        "replay_ms": statistics.median(replay_ms),
        "review_ms": statistics.median(review_ms),
        "copy_ms": statistics.median(copy_ms),
        "repeat": repeat,
    }


def report(r: dict[str, Any], browser: str) -> str:
    mb = 1_000_000
    markup_kb = (r["replay_bytes"] - r["screenshot_bytes"] * 4 / 3) / r["steps"] / 1000
    return "\n".join(
        [
            "## Replay (`scripts/bench_replay.py`)",
            "",
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}; browser {browser}. A {r['steps']}-step run recorded "
            "with corral's `Recorder` into a real store and run folder: a distinct Chromium "
            "screenshot per step (demo portal pages signed in as bob, JPEG quality 70, "
            "1280x800), step rows with full detail (an approval every 25 steps), a model call "
            "per step (and a failed fallback every 10). Median of "
            f"{r['repeat']} runs each. Baseline: copying the run folder's screenshots and "
            "`steps.jsonl` (what one would otherwise hand to a reviewer).",
            "",
            "| | size | time to write | size ratio | time ratio |",
            "|---|---|---|---|---|",
            f"| baseline: copy `steps/*.jpg` + `steps.jsonl` | {r['baseline_bytes'] / mb:.2f} MB "
            f"| {r['copy_ms']:.0f} ms | 1.00 | 1.00 |",
            f"| `corral replay` (review + render + write) | {r['replay_bytes'] / mb:.2f} MB | "
            f"{r['replay_ms']:.0f} ms | {r['replay_bytes'] / r['baseline_bytes']:.2f} | "
            f"{r['replay_ms'] / r['copy_ms']:.1f} |",
            "",
            f"Of the replay's time, {r['review_ms']:.0f} ms is reading the run's rows and "
            "redacting them with the stored secret (`rt.services.runs.review`). "
            "The screenshots alone are "
            f"{r['screenshot_bytes'] / mb:.2f} MB; base64 makes them 4/3 of that in the file, "
            f"the rest is the steps' markup ({markup_kb:.1f} kB a step). "
            "Every screenshot here is distinct; a picture that repeats (an unchanged page) is "
            "embedded once, so real runs are often smaller.",
            "",
            "Re-run: `.venv/bin/python scripts/bench_replay.py --write` (add `--steps N`, "
            "`--repeat N`).",
            "",
        ]
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        paths = page_paths(args.steps)
        with PortalServer(port=0, db_path=base / "portal.db") as portal:
            shots = await screenshots(portal.url, paths)
            settings = Settings(home=base / "home")
            async with Runtime.open(settings) as rt:
                run_id = await record_run(rt, portal.url, paths, shots)
                out = base / "out"
                out.mkdir()
                result = await measure(rt, run_id, args.repeat, out)
    browser = os.environ.get("CORRAL_BROWSER") or shutil.which("chromium") or "Playwright's"
    text = report(result, browser)
    print(text)
    if args.write:
        write_section(ROOT / "BENCHMARKS.md", "bench_replay", text)


if __name__ == "__main__":
    asyncio.run(main())
