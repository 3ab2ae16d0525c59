"""``corral serve`` as a real process: schedules fire on time, two servers never run a fire twice,
``kill -9`` mid-run then a restart retries the fire without repeating it, SIGTERM drains, and an
approval decided through the HTTP API lets a scheduled run finish."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from runtime import Runtime, Settings
from runtime.auth import LOCAL_ACTOR, Actor
from runtime.demo import PAY_TASK
from runtime.demo.portal import PortalServer
from runtime.demo.portal.store import Store as PortalStore
from runtime.records import RunRecord
from runtime.schedules import Fire, SchedulePolicy, Timing
from runtime.services import ScheduleInput
from tests.support.approvals import next_request
from tests.support.cli import CORRAL, corral_process
from tests.support.demo import first_unpaid, make_demo_profiles, usd
from tests.support.hostile import serve_site
from tests.support.processes import running_chromium, wait_gone
from tests.support.wait import until

pytestmark = pytest.mark.slow


class Served:
    """One ``corral serve`` process on a free port, its stderr in a file."""

    def __init__(self, log: Path, *args: str) -> None:
        self.log = log
        self._err = log.open("w")
        self.proc = subprocess.Popen(
            [*CORRAL, "serve", "--port", "0", *args],
            stdout=subprocess.DEVNULL,
            stderr=self._err,
            start_new_session=True,
        )
        self.url = ""

    async def ready(self) -> str:
        def listening() -> str | None:
            for line in self.log.read_text().splitlines():
                if "listening on " in line:
                    return line.split("listening on ")[1].split()[0]
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.text()}")
            return None

        self.url = await until(listening, 60, "serve to listen")
        return self.url

    def text(self) -> str:
        return self.log.read_text()

    def close(self) -> None:
        if not self._err.closed:
            self._err.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self._err.close()

    def kill(self) -> None:
        """``kill -9``, keeping the browser processes it leaves to check they end too."""
        self.children = running_chromium(psutil.Process(self.proc.pid).children(recursive=True))
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._err.close()


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    """The store as a test reads it, beside the server processes (no browser of its own)."""
    async with Runtime.open(settings) as runtime:
        yield runtime


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for served in started:
        if served.proc.poll() is None:
            os.killpg(served.proc.pid, signal.SIGKILL)
            served.proc.wait()
        served.close()


def serve(servers: list[Served], tmp_path: Path, *args: str) -> Served:
    served = Served(tmp_path / f"serve-{len(servers)}.log", *args)
    servers.append(served)
    return served


async def schedule(
    rt: Runtime,
    task: str,
    profiles: list[str],
    timing: Timing,
    name: str = "s",
    variables: dict[str, str] | None = None,
    actor: Actor = LOCAL_ACTOR,
    **policy: Any,
) -> None:
    await rt.services.schedules.add(
        actor,
        ScheduleInput(
            name=name,
            task_yaml=task,
            task_source="test.yaml",
            profiles=profiles,
            vars=variables or {},
            timing=timing,
            policy=SchedulePolicy.model_validate(policy),
        ),
    )


def quick_task(portal: str) -> str:
    return (
        f"name: look\nstart_url: {portal}/login\n"
        "steps:\n  - wait_for: {role: button, name: Sign in}\n"
    )


def slow_task(portal: str, ms: int) -> str:
    return (
        f"name: slow\nstart_url: {portal}/slow?ms={ms}\nstep_timeout_s: 90\n"
        "steps:\n  - wait_for: {text: Slow page}\n"
    )


async def fires(rt: Runtime, name: str = "s") -> list[Fire]:
    return await rt.store.schedules.list_fires(name, limit=1000)


async def runs(rt: Runtime) -> list[RunRecord]:
    return await rt.store.runs.list_runs(limit=1000)


async def settled(rt: Runtime, fire: Fire) -> Fire:
    """The fire once it succeeded or failed (after a restart, say)."""

    async def ended() -> Fire | None:
        now = await rt.store.schedules.get_fire(fire.id)
        return now if now and now.status in ("succeeded", "failed") else None

    return await until(ended, 90, "the fire to settle")


async def profiles(rt: Runtime, *names: str) -> None:
    for name in names:
        await rt.profiles.create(name)


async def test_an_every_2s_schedule_runs_each_fire_once(
    rt: Runtime, portal: str, servers: list[Served], tmp_path: Path
) -> None:
    await profiles(rt, "p1", "p2")
    await schedule(rt, quick_task(portal), ["p1", "p2"], Timing(every_s=2))
    served = serve(servers, tmp_path, "--workers", "2")
    await served.ready()

    async def enough() -> bool:
        return sum(f.status == "succeeded" for f in await fires(rt)) >= 6

    await until(enough, 90, "six fires to succeed")
    assert served.stop() == 0
    recorded = await fires(rt)
    schedule_row = await rt.store.schedules.get("s")
    assert schedule_row is not None
    # Every 2 s grid point from the start up to the cursor has exactly its two fires ...
    start, cursor = schedule_row.created_at, schedule_row.cursor
    steps = int((cursor - start).total_seconds() // 2)
    grid = {start + timedelta(seconds=2 * k) for k in range(1, steps + 1)}
    assert {f.scheduled_at for f in recorded} == grid
    assert Counter(f.scheduled_at for f in recorded) == dict.fromkeys(grid, 2)
    # ... each run at most once (a fire skipped for overlap has no run), and every run says
    # which schedule, fire and attempt made it.
    made = [r for r in await runs(rt) if r.fire_id]
    assert len({r.fire_id for r in made}) == len(made)
    by_fire = {f.id: f for f in recorded}
    for run in made:
        fire = by_fire[run.fire_id]  # type: ignore[index]
        assert run.schedule == "s" and run.attempt == 1 and fire.run_id == run.id
        assert run.profile == fire.profile
    assert {f.status for f in recorded} <= {"succeeded", "skipped", "queued", "failed"}
    assert sum(f.status == "succeeded" for f in recorded) == sum(
        r.status == "succeeded" for r in made
    )
    assert "stopped" in served.text()


async def test_two_servers_on_one_home_never_run_a_fire_twice(
    rt: Runtime, portal: str, servers: list[Served], tmp_path: Path
) -> None:
    await profiles(rt, "a", "b", "c")
    await schedule(rt, quick_task(portal), ["a", "b", "c"], Timing(every_s=1), overlap="allow")
    one = serve(servers, tmp_path, "--workers", "2")
    two = serve(servers, tmp_path, "--workers", "2")
    await one.ready()
    await two.ready()

    async def enough() -> bool:
        return sum(f.status == "succeeded" for f in await fires(rt)) >= 12

    await until(enough, 120, "twelve fires to succeed")
    assert one.stop() == 0 and two.stop() == 0
    made = [r for r in await runs(rt) if r.fire_id]
    per_fire = Counter(r.fire_id for r in made)
    assert per_fire and max(per_fire.values()) == 1, per_fire.most_common(3)
    claimers = {f.claimed_by for f in await fires(rt) if f.claimed_by}
    assert claimers  # who ran what is on record
    assert len(made) >= 12


async def test_kill_9_mid_run_then_restart_retries_the_fire_and_never_repeats_it(
    rt: Runtime, portal: str, servers: list[Served], tmp_path: Path
) -> None:
    await profiles(rt, "alice")
    await schedule(
        rt, slow_task(portal, 6000), ["alice"], Timing(every_s=3600), retries=1, backoff_s=1
    )
    [fire] = await rt.services.schedules.run_now(LOCAL_ACTOR, "s")
    first = serve(servers, tmp_path)
    await first.ready()

    async def running() -> RunRecord | None:
        made = [r for r in await runs(rt) if r.fire_id == fire.id and r.status == "running"]
        return made[0] if made else None

    killed_run = await until(running, 60, "the fire's run to start")
    await until(
        lambda: bool(running_chromium(psutil.Process(first.proc.pid).children(recursive=True))),
        30,
        "the run's browser",
    )
    first.kill()
    assert first.children and not wait_gone(first.children), "the dead server's browser lives"
    second = serve(servers, tmp_path)
    await second.ready()

    done = await settled(rt, fire)
    assert second.stop() == 0
    assert done.status == "succeeded" and done.attempt == 2
    attempts = sorted(
        (r for r in await runs(rt) if r.fire_id == fire.id), key=lambda r: r.attempt or 0
    )
    assert [(r.attempt, r.status) for r in attempts] == [(1, "interrupted"), (2, "succeeded")]
    assert attempts[0].id == killed_run.id


async def test_sigterm_drains_cancels_after_the_grace_and_reports_each_run(
    rt: Runtime, portal: str, servers: list[Served], tmp_path: Path
) -> None:
    await profiles(rt, "alice")
    await schedule(rt, slow_task(portal, 60000), ["alice"], Timing(every_s=3600), retries=0)
    [fire] = await rt.services.schedules.run_now(LOCAL_ACTOR, "s")
    served = serve(servers, tmp_path, "--grace", "1")
    await served.ready()

    async def running() -> RunRecord | None:
        made = [r for r in await runs(rt) if r.fire_id == fire.id and r.status == "running"]
        return made[0] if made else None

    run = await until(running, 60, "the run to start")
    browsers = running_chromium(psutil.Process(served.proc.pid).children(recursive=True))
    assert served.stop() == 0
    text = served.text()
    assert "draining" in text and run.id in text and "cancelled" in text
    ended = await rt.store.runs.get_run(run.id)
    assert ended is not None and ended.status == "cancelled"
    assert "server stopped" in (ended.error or "")
    # Cleanly: the lease is released, the state saved, no browser left; the fire waits for a
    # retry after a restart instead of being lost or started twice.
    [entry] = await rt.services.profiles.list(LOCAL_ACTOR)
    assert entry.lease is None
    assert not wait_gone(browsers)
    after = await rt.store.schedules.get_fire(fire.id)
    assert after is not None and after.status == "queued" and after.attempt == 1
    # A server stop is not the task's failure: it runs again, without using a retry.
    assert after.interruptions == 1 and "server stop" in (after.note or "")


async def test_a_scheduled_run_waits_for_approval_decided_through_the_api(
    rt: Runtime, servers: list[Served], tmp_path: Path
) -> None:
    with PortalServer(port=0, db_path=tmp_path / "portal.db") as shop:
        await make_demo_profiles(rt, shop.url, "alice")
        root_user = await rt.services.users.add_user_with_token(LOCAL_ACTOR, "root", "super_admin")
        token = root_user.value
        inv = first_unpaid()
        root = await rt.services.actor(token)
        await schedule(
            rt,
            PAY_TASK.read_text(),
            ["alice"],
            Timing(every_s=3600),
            variables={"portal": shop.url, "invoice": inv.number},
            actor=root,
        )
        [fire] = await rt.services.schedules.run_now(root, "s")
        served = serve(servers, tmp_path)
        url = await served.ready()
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            assert (await client.get("/api/approvals")).status_code == 401
            decided: list[str] = []
            for _ in range(2):  # Pay, then Confirm payment

                async def pending() -> list[dict[str, Any]]:
                    answer = await client.get("/api/approvals", headers=headers)
                    return [r for r in answer.json() if r["id"] not in decided]

                [request] = await until(pending, 90, "an approval request")
                approve = await client.post(
                    f"/api/approvals/{request['id']}/approve",
                    headers=headers,
                    json={"comment": "ok from the API"},
                )
                assert approve.status_code == 200, approve.text
                decided.append(request["id"])

        async def settled() -> Fire | None:
            now = await rt.store.schedules.get_fire(fire.id)
            return now if now and now.status not in ("queued", "running") else None

        done = await until(settled, 90, "the fire to settle")
        assert served.stop() == 0
        assert done.status == "succeeded", done.note
        assert PortalStore(shop.db_path).paid_numbers("alice") == {inv.number}
        audit = await rt.store.audit.list(action="approval.approve")
        assert {e.actor for e in audit} == {"root"} and len(audit) == 2
        assert usd(inv) in json.dumps([r.summary for r in await rt.approvals.list_requests(None)])


async def test_the_cli_through_corral_server_never_opens_a_store_or_key(
    rt: Runtime, portal: str, servers: list[Served], tmp_path: Path
) -> None:
    await profiles(rt, "p1")
    admin = await rt.services.users.add_user_with_token(LOCAL_ACTOR, "root", "super_admin")
    served = serve(servers, tmp_path)
    url = await served.ready()
    nowhere = tmp_path / "no-home-here"
    env = {"CORRAL_SERVER": url, "CORRAL_TOKEN": admin.value, "CORRAL_HOME": str(nowhere)}
    task = tmp_path / "look.yaml"
    task.write_text(quick_task(portal))

    def cli(*args: str, **extra: str | None) -> subprocess.CompletedProcess[str]:
        return corral_process(*args, env={**env, **extra})

    ran = await asyncio.to_thread(cli, "run", str(task), "--profile", "p1", "--json")
    assert ran.returncode == 0, ran.stderr
    [result] = json.loads(ran.stdout)
    assert result["status"] == "succeeded" and result["profile"] == "p1"
    assert f"started on {url}" in ran.stderr
    listed = await asyncio.to_thread(cli, "runs", "list", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [result["run_id"]]
    shown = await asyncio.to_thread(cli, "runs", "show", result["run_id"])
    assert shown.returncode == 0 and "wait_for" in shown.stdout
    added = await asyncio.to_thread(
        cli,
        "schedules",
        "add",
        "nightly",
        "--task",
        str(task),
        "--cron",
        "0 2 * * *",
        "--tz",
        "Europe/Berlin",
        "--profile",
        "p1",
        "--json",
    )
    assert added.returncode == 0, added.stderr
    assert (await rt.services.schedules.get(LOCAL_ACTOR, "nightly")).owner == "root"
    # Bad input is still exit 2 naming it; auth failures keep their exit codes.
    bad = await asyncio.to_thread(
        cli, "schedules", "add", "x", "--task", str(task), "--cron", "61 * * * *", "--profile", "p1"
    )
    assert bad.returncode == 2 and "61 * * * *" in bad.stderr
    no_token = await asyncio.to_thread(cli, "runs", "list", CORRAL_TOKEN=None)
    assert no_token.returncode == 2 and "CORRAL_TOKEN" in no_token.stderr
    wrong = await asyncio.to_thread(cli, "runs", "list", CORRAL_TOKEN="crl_not-a-real-token")
    assert wrong.returncode == 2 and "not a valid API token" in wrong.stderr
    assert admin.value not in wrong.stderr + ran.stderr + ran.stdout
    # None of it needed (or made) a CORRAL_HOME on the client's side.
    assert not nowhere.exists()
    assert served.stop() == 0


async def test_a_waiting_approval_outlives_a_restart_and_a_decision_made_meanwhile_counts(
    rt: Runtime, servers: list[Served], tmp_path: Path
) -> None:
    with PortalServer(port=0, db_path=tmp_path / "portal.db") as shop:
        await make_demo_profiles(rt, shop.url, "alice")
        root_user = await rt.services.users.add_user_with_token(LOCAL_ACTOR, "root", "super_admin")
        root = await rt.services.actor(root_user.value)
        inv = first_unpaid()
        await schedule(
            rt,
            PAY_TASK.read_text(),
            ["alice"],
            Timing(every_s=3600),
            variables={"portal": shop.url, "invoice": inv.number},
            actor=root,
        )
        [fire] = await rt.services.schedules.run_now(root, "s")
        first = serve(servers, tmp_path, "--grace", "1")
        await first.ready()
        pay = await next_request(rt, timeout_s=90)
        assert first.stop() == 0
        # The server stopped while a person had not decided: the request waits on, held for
        # the fire's next attempt; the fire is queued again, not failed (retries: 0).
        held = await rt.approvals.get(pay.id)
        assert held.status == "pending" and "held" in (held.outcome or "")
        stopped = await rt.store.schedules.get_fire(fire.id)
        assert stopped is not None and stopped.status == "queued"
        # Approved while no server runs (on the server host) ...
        await rt.services.approvals.decide(root, pay.id, True, "approved during the restart")
        second = serve(servers, tmp_path)
        url = await second.ready()
        # ... the next attempt takes the approved request over instead of asking again, and
        # asks only for the next gated click.
        confirm = await next_request(rt, timeout_s=90, besides=pay)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            answer = await client.post(
                f"/api/approvals/{confirm.id}/approve",
                headers={"Authorization": f"Bearer {root_user.value}"},
            )
            assert answer.status_code == 200, answer.text

        async def settled() -> Fire | None:
            now = await rt.store.schedules.get_fire(fire.id)
            return now if now and now.status not in ("queued", "running") else None

        done = await until(settled, 90, "the fire to settle")
        assert second.stop() == 0
        assert done.status == "succeeded" and done.attempt == 2, done.note
        assert PortalStore(shop.db_path).paid_numbers("alice") == {inv.number}
        taken = await rt.approvals.get(pay.id)
        assert taken.status == "executed" and taken.run_id == done.run_id
        assert taken.decided_by == "root"
        pays = [r for r in await rt.approvals.list_requests(None) if r.summary == pay.summary]
        assert [r.id for r in pays] == [pay.id]  # asked once, done once


async def test_kill_9_with_a_submission_on_the_wire_and_the_retry_does_not_send_it_again(
    rt: Runtime, servers: list[Served], tmp_path: Path
) -> None:
    # Attempt 1 sends the form and its server dies (kill -9) before the answer comes: the
    # retry after the restart finds the submission recorded as sent, skips it, and goes on.
    with serve_site() as site:
        site.held["/items"] = answer = threading.Event()
        form = (
            "<!doctype html><title>Shop</title><form method=post action=/items>"
            "<label>Item <input name=item></label><button>Add item</button></form>"
        )
        site.page("/shop", form)
        await profiles(rt, "alice")
        task = (
            f"name: shop\nstart_url: {site.url}/shop\nallowed_domains: ['127.0.0.1']\n"
            "allow_targets: [{name: Add item}]\nstep_timeout_s: 60\nsteps:\n"
            "  - fill: {label: Item, value: widget}\n"
            "  - click: {role: button, name: Add item}\n"
            "  - click: {text: Continue}\n"
        )
        await schedule(rt, task, ["alice"], Timing(every_s=3600), retries=1, backoff_s=1)
        [fire] = await rt.services.schedules.run_now(LOCAL_ACTOR, "s")
        first = serve(servers, tmp_path)
        await first.ready()
        try:
            await until(lambda: len(site.posts("/items")) == 1, 90, "the form's POST")
            first.kill()
        finally:
            answer.set()
        site.page("/shop", form + "<a href=/done>Continue</a>")
        second = serve(servers, tmp_path)
        await second.ready()

        done = await settled(rt, fire)
        assert second.stop() == 0
        assert done.status == "succeeded" and done.attempt == 2, second.text()
        assert len(site.posts("/items")) == 1, "the retry sent the form again"
    attempts = sorted(
        (r for r in await runs(rt) if r.fire_id == fire.id), key=lambda r: r.attempt or 0
    )
    assert [(r.attempt, r.status) for r in attempts] == [(1, "interrupted"), (2, "succeeded")]
    steps = await rt.store.runs.list_steps(attempts[1].id)
    [add] = [s for s in steps if s.target and "Add item" in s.target]
    assert add.status == "skipped"
    assert (add.detail or {})["idempotency"]["run"] == attempts[0].id
