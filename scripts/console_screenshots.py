#!/usr/bin/env python3
"""Screenshots of the web console for the docs (``docs/img/console-*.png``).

Starts the app (API + console, a worker pool) on a throwaway home with demo data: the demo
portal, profiles alice and bob, scripted runs (unpaid invoices read; a payment approved in two
steps, so its replay has gated steps; a payment denied; a payment left waiting for approval), a
schedule, and for the usage page two weeks of goal-driven runs with their model calls: the demo
runs no model, so those rows are made up here (the only synthetic data; they have no steps).
Then it signs in with Playwright through the sign-in form, as an admin, and saves each page:

    console-runs.png            the runs list
    console-run.png             a run's replay (the approved payment)
    console-approvals.png       the approvals inbox
    console-approval-phone.png  a waiting request at 375 px wide (a phone)
    console-schedules.png       schedules
    console-usage.png           usage
    console-audit.png           the audit log

A page the console does not serve (yet) is skipped with a note, never saved as an error page.

Usage: .venv/bin/python scripts/console_screenshots.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from profiles import ProfileSettings  # noqa: E402
from runtime import Runtime, Settings  # noqa: E402
from runtime.api import create_app  # noqa: E402
from runtime.approvals import ApprovalRequest  # noqa: E402
from runtime.auth import LOCAL_ACTOR, Actor  # noqa: E402
from runtime.demo import DEMO_TASK, PAY_TASK  # noqa: E402
from runtime.demo.portal import USERS, PortalServer  # noqa: E402
from runtime.demo.portal.data import invoices_for  # noqa: E402
from runtime.records import ModelCallRecord, RunRecord  # noqa: E402
from runtime.schedules import Timing  # noqa: E402
from runtime.serve import WorkerPool  # noqa: E402
from runtime.services import ScheduleInput  # noqa: E402
from runtime.task import load_task  # noqa: E402
from tests.support.api import serving  # noqa: E402

DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 375, "height": 740}
MAX_BYTES = 250_000
# role -> (provider:model, input tokens, output tokens, USD per call), for the usage page.
_CALLS = {
    "planner": ("openai:gpt-5.4-mini", 2_400, 90, 0.0021),
    "vision": ("anthropic:claude-sonnet-4-6", 1_600, 60, 0.0057),
    "extractor": ("openai:gpt-5.4-nano", 900, 140, 0.0003),
}


async def _people(rt: Runtime) -> tuple[Actor, str]:
    """A super admin (who owns the schedule) and ada, an admin; ada's token."""
    users = rt.services.users
    await users.add_user_with_token(LOCAL_ACTOR, "root", "super_admin")
    root = Actor("root", "super_admin")
    ada = await users.add_user_with_token(root, "ada", "admin")
    return root, ada.value


async def _profiles(rt: Runtime, portal: str) -> None:
    for name in ("alice", "bob"):
        await rt.profiles.create(name, ProfileSettings(vars={"user": name}))
        await rt.vault.set(f"{name}.password", USERS[name].password, [portal], [name])


async def _asked(rt: Runtime, run_id: str, besides: set[str]) -> ApprovalRequest:
    while True:
        for request in await rt.approvals.list_requests("pending", run_id):
            if request.id not in besides:
                return request
        await asyncio.sleep(0.1)


async def _runs(rt: Runtime, pool: WorkerPool, root: Actor, portal: str) -> dict[str, str]:
    """The demo's runs; their ids by what they show."""
    unpaid, pay = load_task(DEMO_TASK), load_task(PAY_TASK)
    ids: dict[str, str] = {}
    for name in ("alice", "bob"):
        [run] = await pool.submit(root, unpaid, [name], {"portal": portal})
        await pool.wait(run.run_id)
    alice, bob = ([i.number for i in invoices_for(user) if not i.paid] for user in ("alice", "bob"))
    decisions = (
        ("paid", "alice", alice[0], [(True, "due this week"), (True, "amount checked")]),
        ("denied", "bob", bob[0], [(False, "not this month: waiting for the credit note")]),
        ("waiting", "alice", alice[1], []),
    )
    for label, profile, invoice, answers in decisions:
        variables = {"portal": portal, "invoice": invoice}
        [run] = await pool.submit(root, pay, [profile], variables)
        ids[label] = run.run_id
        seen: set[str] = set()
        for approve, comment in answers:
            request = await _asked(rt, run.run_id, seen)
            seen.add(request.id)
            await rt.services.approvals.decide(root, request.id, approve, comment)
        if answers:
            await pool.wait(run.run_id)
        else:
            ids["request"] = (await _asked(rt, run.run_id, seen)).id
    return ids


async def _schedule(rt: Runtime, root: Actor, portal: str) -> None:
    await rt.services.schedules.add(
        root,
        ScheduleInput(
            name="morning-unpaid",
            task_yaml=DEMO_TASK.read_text(),
            task_source="unpaid-invoices.yaml",
            profiles=["alice", "bob"],
            vars={"portal": portal},
            timing=Timing(cron="0 7 * * 1-5", tz="Europe/Berlin"),
        ),
    )


async def _usage(rt: Runtime) -> None:
    """Two weeks of goal-driven runs' model calls, for the usage page: made-up rows (see the
    module), on run rows of their own so no real run's replay shows them."""
    rng = random.Random(12)
    now = datetime.now(UTC)
    for day in range(14, 0, -1):
        for n in range(rng.randint(1, 3)):
            started = now - timedelta(days=day, hours=rng.randint(1, 10))
            capped = day == 4 and n == 0
            run = RunRecord(
                id=started.strftime("%Y%m%d-%H%M%S-") + f"{rng.getrandbits(24):06x}",
                task_name=rng.choice(["reconcile-statements", "chase-overdue"]),
                task_path=None,
                profile=rng.choice(["alice", "bob"]),
                status="failed" if capped else "succeeded",
                started_at=started,
                finished_at=started + timedelta(seconds=rng.uniform(20, 90)),
                error="budget: spent $0.5012, past max_usd=0.5" if capped else None,
                run_dir=str(rt.settings.runs_dir / "synthetic"),
                pid=0,
            )
            await rt.store.runs.create_run(run)
            for step in range(rng.randint(4, 14)):
                role = rng.choice(["planner", "planner", "planner", "vision", "extractor"])
                model, tokens_in, tokens_out, usd = _CALLS[role]
                provider, name = model.split(":")
                scale = rng.uniform(0.5, 1.8)
                failed = rng.random() < 0.05
                await rt.store.runs.add_model_call(
                    ModelCallRecord(
                        run_id=run.id,
                        step_idx=step,
                        role=role,
                        provider=provider,
                        model=name,
                        outcome="error" if failed else "ok",
                        reason="rate limited (429)" if failed else None,
                        input_tokens=0 if failed else int(tokens_in * scale),
                        output_tokens=0 if failed else int(tokens_out * scale),
                        cost_usd=0.0 if failed else round(usd * scale, 6),
                        latency_ms=round(rng.uniform(400, 2600), 1),
                        at=started + timedelta(seconds=step * 5),
                    )
                )


def _fit(path: Path) -> None:
    """A screenshot over MAX_BYTES in 256 colours (plenty for the console's flat colours)."""
    if path.stat().st_size > MAX_BYTES:
        with Image.open(path) as image:
            fewer = image.convert("RGB").quantize(colors=256)
        fewer.save(path, optimize=True)


async def _shoot(url: str, token: str, ids: dict[str, str], out: Path, browser: Any) -> None:
    shots = [
        ("console-runs.png", "/console/runs", DESKTOP),
        ("console-run.png", f"/console/runs/{ids['paid']}", DESKTOP),
        ("console-approvals.png", "/console/approvals", DESKTOP),
        ("console-approval-phone.png", f"/console/approvals/{ids['request']}", PHONE),
        ("console-schedules.png", "/console/schedules", DESKTOP),
        ("console-usage.png", "/console/usage", DESKTOP),
        ("console-audit.png", "/console/audit", DESKTOP),
    ]
    out.mkdir(parents=True, exist_ok=True)
    for viewport in (DESKTOP, PHONE):
        phone = viewport == PHONE
        context = await browser.new_context(
            viewport=viewport, is_mobile=phone, device_scale_factor=2 if phone else 1
        )
        try:
            page = await context.new_page()
            await page.goto(f"{url}/console/login")
            await page.get_by_label("API token").fill(token)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"{url}/console/runs")
            for name, path, size in shots:
                if size != viewport:
                    continue
                response = await page.goto(url + path)
                status = response.status if response else 0
                if status != 200:
                    print(f"  {name}: skipped, {path} answered {status} (not served yet)")
                    continue
                await page.wait_for_load_state("networkidle")
                if name == "console-run.png":
                    # The replay at its first gated step: the approval with who and why.
                    await page.evaluate(
                        "(() => { const s = document.querySelector('section.step.gated');"
                        " if (s) { location.hash = '#' + s.id; } })()"
                    )
                    await page.wait_for_timeout(200)
                target = out / name
                # The whole page on a desktop, up to a tall screen's worth; a phone's first screen.
                height = await page.evaluate("document.documentElement.scrollHeight")
                clip = {"x": 0, "y": 0, "width": viewport["width"], "height": min(height, 1400)}
                await page.screenshot(
                    path=str(target), full_page=not phone, clip=None if phone else clip
                )
                _fit(target)
                size_kb = target.stat().st_size / 1000
                note = "" if target.stat().st_size <= MAX_BYTES else " (over 250 KB)"
                print(f"  {target}: {size_kb:.0f} KB{note}")
        finally:
            await context.close()


async def main(out: Path) -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        PortalServer(port=0, db_path=Path(tmp) / "portal.db") as portal,
    ):
        settings = Settings(home=Path(tmp) / "home", lease_timeout_s=10)
        async with Runtime.open(settings) as rt:
            root, token = await _people(rt)
            await _profiles(rt, portal.url)
            pool = WorkerPool(rt, 4)
            try:
                async with serving(create_app(rt, pool)) as url:
                    print("demo runs...")
                    ids = await _runs(rt, pool, root, portal.url)
                    await _schedule(rt, root, portal.url)
                    await _usage(rt)
                    print(f"screenshots of {url}/console:")
                    await _shoot(url, token, ids, out, await (await rt.pool()).browser())
            finally:
                await pool.drain(0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    asyncio.run(main(parser.parse_args().out.resolve()))
