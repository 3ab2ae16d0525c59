"""Runs on the real portal in real Chromium: isolation, saved state, leases, recording."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import psutil
import pytest

from profiles import (
    SESSIONS_PER_CORE,
    BrowserPool,
    ProfileSettings,
    UserError,
    default_max_sessions,
    hold_lease,
    open_session,
)
from runtime import RunEvent, Runtime, Settings, Task, load_task, parse_task, run_many, run_task
from runtime.cli.demo import DEMO_TASK
from runtime.demo.portal import USERS
from tests.support.demo import make_demo_profiles
from tools import Tabs

ACCOUNT = {name: user.account_no.split("-")[1] for name, user in USERS.items()}


def demo_task() -> Task:
    return load_task(DEMO_TASK)


def dashboard_then_invoices_task(portal: str) -> Task:
    """Sign in if needed, read the dashboard greeting (which sets local storage), then invoices."""
    login = {"when": {"url_contains": "/login"}}
    return parse_task(
        {
            "name": "isolation",
            "start_url": portal,
            "secrets": ["{{var:user}}.password"],
            "steps": [
                {"goto": "/dashboard"},
                {"fill": {"label": "Username", "value": "{{var:user}}"}, **login},
                {
                    "fill": {"label": "Password", "value": "{{secret:{{var:user}}.password}}"},
                    **login,
                },
                {"click": {"role": "button", "name": "Sign in"}, **login},
                {"extract": {"as": "greeting", "text": {"role": "heading", "name": "Welcome"}}},
                {"goto": "/invoices?status=unpaid"},
                {
                    "extract": {
                        "as": "unpaid",
                        "table": {"role": "table"},
                        "next": {"role": "link", "name": "Next", "exact": True},
                    }
                },
            ],
        },
        "isolation.yaml",
    )


def cookie_values(state: dict[str, Any] | None) -> list[str]:
    return [c["value"] for c in (state or {}).get("cookies", [])]


def local_storage(state: dict[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for origin in (state or {}).get("origins", []):
        out.update({i["name"]: i["value"] for i in origin.get("localStorage", [])})
    return out


@pytest.mark.slow
async def test_parallel_sessions_as_two_users_never_share_anything(
    rt: Runtime, portal: str
) -> None:
    await make_demo_profiles(rt, portal, "alice", "bob")
    results = await run_many(rt, dashboard_then_invoices_task(portal), ["alice", "bob"])
    by = {r.profile: r for r in results}
    assert [r.status for r in results] == ["succeeded", "succeeded"], [r.error for r in results]
    # Data: each sees only its own invoices (numbers carry the account digits).
    for name, unpaid in (("alice", 6), ("bob", 29)):
        assert by[name].output["greeting"] == f"Welcome, {USERS[name].full_name}"
        rows = by[name].output["unpaid"]
        assert len(rows) == unpaid
        assert all(row["Number"].startswith(f"INV-{ACCOUNT[name]}-") for row in rows)
        assert all(row["Status"] == "Unpaid" for row in rows)
    # Cookies and local storage: disjoint, and each names its own user.
    states = {n: rt.profiles.open_state(await rt.profiles.get(n)) for n in ("alice", "bob")}
    assert cookie_values(states["alice"]) and cookie_values(states["bob"])
    assert not set(cookie_values(states["alice"])) & set(cookie_values(states["bob"]))
    assert local_storage(states["alice"])["portal.lastUser"] == "alice"
    assert local_storage(states["bob"])["portal.lastUser"] == "bob"


async def test_saved_state_lets_a_later_run_skip_login(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    first = await run_task(rt, demo_task(), "alice", {"portal": portal})
    assert first.status == "succeeded" and not first.session_restored
    assert first.steps_skipped == 0
    second = await run_task(rt, demo_task(), "alice", {"portal": portal})
    assert second.status == "succeeded", second.error
    assert second.session_restored and second.steps_skipped == 3
    assert second.output == first.output
    steps = await rt.store.runs.list_steps(str(second.run_id))
    assert not any("/login" in (s.url_after or "") for s in steps)
    assert [s.status for s in steps if s.kind == "fill"] == ["skipped", "skipped"]


async def test_saved_state_on_disk_holds_no_cookie_in_clear(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    result = await run_task(rt, demo_task(), "alice", {"portal": portal})
    assert result.status == "succeeded"
    state = rt.profiles.open_state(await rt.profiles.get("alice"))
    values = [v for v in cookie_values(state) if len(v) >= 8]
    assert values, "the portal should have set a session cookie"
    home = rt.settings.home
    files = [p for p in home.rglob("*") if p.is_file() and "runs" not in p.parts]
    assert any(p.name == "corral.db" for p in files)
    for path in files:
        data = path.read_bytes()
        for value in values:
            assert value.encode() not in data, f"cookie value in clear text in {path}"


@pytest.mark.slow
async def test_persistent_profile_keeps_its_user_data_sealed(rt: Runtime, portal: str) -> None:
    await rt.profiles.create(
        "pers",
        ProfileSettings(mode="persistent", vars={"user": "alice"}),
    )
    await rt.vault.set("alice.password", "alice-pw-1", [portal], ["pers"])
    first = await run_task(rt, demo_task(), "pers", {"portal": portal})
    assert first.status == "succeeded", first.error
    archive = rt.settings.home / "profiles" / "pers" / "user-data.tar.enc"
    assert archive.exists()
    assert not (rt.settings.home / "profiles" / "pers" / "live").exists()
    second = await run_task(rt, demo_task(), "pers", {"portal": portal})
    assert second.status == "succeeded" and second.session_restored
    assert second.steps_skipped == 3
    assert b"portal_session" not in archive.read_bytes()


async def test_second_run_on_a_leased_profile_fails_after_waiting(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    async with hold_lease(rt.store.profiles, "alice", "other-run", wait_s=0):
        result = await run_task(rt, demo_task(), "alice", {"portal": portal}, lease_timeout_s=0.5)
    assert result.status == "failed" and result.exit_code == 1
    assert "profile 'alice' is in use by run other-run" in str(result.error)
    assert "--lease-timeout" in str(result.error)


async def test_second_run_waits_for_the_lease_then_runs(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    held, released = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with hold_lease(rt.store.profiles, "alice", "other-run", wait_s=0):
            held.set()
            await asyncio.sleep(1.0)  # the other run's work: the second run waits this long
        released.set()

    async with asyncio.TaskGroup() as group:
        group.create_task(holder())
        await held.wait()
        waiting = group.create_task(
            run_task(rt, demo_task(), "alice", {"portal": portal}, lease_timeout_s=20)
        )
    assert released.is_set()
    assert waiting.result().status == "succeeded", waiting.result().error


async def test_a_lease_left_by_a_dead_process_does_not_block(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    # A real process takes the lease and dies without releasing it (SIGKILL leaves no cleanup).
    code = (
        "import asyncio, os, sys\n"
        "from runtime import Settings, Store\n"
        "from profiles import LeaseHolder\n"
        "async def main():\n"
        "    store = await Store.open(Settings.from_env().db_path)\n"
        "    await store.profiles.take_lease('alice', LeaseHolder.current('crashed-run'), 60)\n"
        "    os._exit(0)\n"
        "asyncio.run(main())\n"
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, env=os.environ.copy())
    assert await proc.wait() == 0
    lease = await rt.store.profiles.get_lease("alice")
    assert lease is not None and lease.run_id == "crashed-run"
    result = await run_task(rt, demo_task(), "alice", {"portal": portal}, lease_timeout_s=0.5)
    assert result.status == "succeeded", result.error
    assert await rt.store.profiles.get_lease("alice") is None


async def test_every_step_is_recorded_in_store_and_run_folder(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "bob")
    result = await run_task(rt, demo_task(), "bob", {"portal": portal})
    assert result.status == "succeeded"
    run_dir = Path(str(result.run_dir))
    steps = await rt.store.runs.list_steps(str(result.run_id))
    assert [s.kind for s in steps] == ["navigate", "fill", "fill", "click", "wait_for", "extract"]
    assert steps[0].url_before == "about:blank" and "/login" in str(steps[0].url_after)
    assert "/invoices" in str(steps[3].url_after)
    assert steps[3].target == 'role=button name="Sign in"'
    assert all(s.duration_ms > 0 and s.status == "ok" for s in steps)
    for s in steps:
        assert s.screenshot and (run_dir / s.screenshot).read_bytes()[:2] == b"\xff\xd8"
    assert steps[-1].detail["as"] == "unpaid" and steps[-1].detail["items"] == 29
    # Each step names what it reached, by role and accessible name, and its verdict.
    assert steps[-1].detail["target"] == {"role": "table", "name": "Invoices"}
    assert steps[-1].detail["policy"]["decision"] == "allow"
    assert steps[3].detail["target"] == {"role": "button", "name": "Sign in"}
    assert set(steps[3].detail["box"]) == {"x", "y", "width", "height"}
    lines = (run_dir / "steps.jsonl").read_text().splitlines()
    assert [json.loads(line)["idx"] for line in lines] == list(range(6))
    with zipfile.ZipFile(run_dir / "trace.zip") as trace:
        assert any(n.endswith(".trace") for n in trace.namelist())
    kinds = {a.kind for a in await rt.store.runs.list_artifacts(str(result.run_id))}
    assert kinds == {"screenshot", "trace", "result"}
    run = await rt.store.runs.get_run(str(result.run_id))
    assert run is not None and run.status == "succeeded" and run.result == result.output


async def test_selector_matching_nothing_fails_the_run_naming_it(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    task = parse_task(
        {
            "name": "missing",
            "start_url": f"{portal}/login",
            "step_timeout_s": 0.5,
            "steps": [{"click": {"role": "button", "name": "Launch rocket"}}],
        },
        "missing.yaml",
    )
    result = await run_task(rt, task, "alice")
    assert result.status == "failed" and result.exit_code == 1
    assert 'no element matches role=button name="Launch rocket"' in str(result.error)
    assert "step 2" in str(result.error)
    steps = await rt.store.runs.list_steps(str(result.run_id))
    assert steps[-1].status == "failed" and "Launch rocket" in str(steps[-1].error)


async def test_optional_step_failure_does_not_stop_the_run(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    task = parse_task(
        {
            "name": "optional",
            "start_url": f"{portal}/login",
            "step_timeout_s": 0.5,
            "steps": [
                {"click": {"text": "Accept cookies"}, "optional": True},
                {"extract": {"as": "title", "text": {"role": "heading"}}},
            ],
            "output": "title",
        },
        "optional.yaml",
    )
    result = await run_task(rt, task, "alice")
    assert result.status == "succeeded", result.error
    assert result.steps_failed == 1 and result.output == "Sign in"


async def test_output_schema_violation_fails_the_run(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    task = parse_task(
        {
            "name": "schema",
            "start_url": f"{portal}/login",
            "steps": [{"extract": {"as": "title", "text": {"role": "heading"}}}],
            "output": "title",
            "output_schema": {"type": "array"},
        },
        "schema.yaml",
    )
    result = await run_task(rt, task, "alice")
    assert result.status == "failed"
    assert "output does not match output_schema" in str(result.error)


async def test_bad_input_is_reported_before_any_run_starts(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    unknown = await run_task(rt, demo_task(), "nobody")
    assert unknown.exit_code == 2 and unknown.run_id is None
    assert "unknown profile 'nobody'" in str(unknown.error)
    task = parse_task(
        {"name": "v", "steps": [{"goto": "http://127.0.0.1:1/{{var:missing}}"}]}, "v.yaml"
    )
    novar = await run_task(rt, task, "alice")
    assert novar.exit_code == 2 and "unknown variable 'missing'" in str(novar.error)
    assert await rt.store.runs.list_runs() == []


async def test_corrupted_saved_state_fails_clearly_and_is_kept(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    await rt.profiles.save_state("alice", {"cookies": [], "origins": []})
    record = await rt.profiles.get("alice")
    assert record.state is not None
    damaged = record.state[:-5] + bytes(5)
    await rt.store.profiles.save_profile_state("alice", damaged)
    result = await run_task(rt, demo_task(), "alice", {"portal": portal})
    assert result.status == "failed"
    assert "profile 'alice' saved state: stored data is corrupted" in str(result.error)
    assert (await rt.profiles.get("alice")).state == damaged  # nothing overwritten


@pytest.mark.slow
async def test_browser_crash_mid_run_fails_clearly_and_does_not_hang(
    rt: Runtime, portal: str, settings: Settings
) -> None:
    await make_demo_profiles(rt, portal, "alice")
    task = parse_task(
        {
            "name": "slow",
            "start_url": portal,
            "step_timeout_s": 60,
            "steps": [{"goto": "/login"}, {"goto": "/slow?ms=20000"}],
        },
        "slow.yaml",
    )
    slow_step = asyncio.Event()

    def on_event(event: RunEvent) -> None:
        if event.kind == "step" and "slow" in event.text:
            slow_step.set()

    # Its own pool, so killing this browser spares the session's shared one.
    async with (
        BrowserPool.start(settings.browser) as own_pool,
        Runtime.open(settings, pool=own_pool) as own_rt,
    ):

        async def kill_browser() -> None:
            await slow_step.wait()
            await asyncio.sleep(0.5)
            for pid in own_pool.browser_pids():
                with contextlib.suppress(psutil.NoSuchProcess):
                    psutil.Process(pid).kill()

        async with asyncio.timeout(40), asyncio.TaskGroup() as group:
            group.create_task(kill_browser())
            run = group.create_task(run_task(own_rt, task, "alice", on_event=on_event))
        result = run.result()
        assert result.status == "failed" and result.exit_code == 1
        assert "step 2" in str(result.error)
        assert "the browser closed unexpectedly" in str(result.error)
        # The pool notices the dead browser and launches a new one for the next session.
        after = await own_rt.pool()
        assert (await after.browser()).is_connected()
        again = await run_task(
            own_rt,
            parse_task(
                {
                    "name": "after",
                    "start_url": f"{portal}/login",
                    "steps": [{"wait_for": {"role": "button", "name": "Sign in"}}],
                },
                "after.yaml",
            ),
            "alice",
        )
        assert again.status == "succeeded", again.error
    assert await rt.store.profiles.get_lease("alice") is None
    stored = await rt.store.runs.get_run(str(result.run_id))
    assert stored is not None and stored.status == "failed"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["state", "persistent"])
async def test_export_import_round_trip_keeps_login(rt: Runtime, portal: str, mode: str) -> None:
    await rt.profiles.create(
        "src",
        ProfileSettings(mode=mode, locale="de-DE", vars={"user": "bob"}),
    )
    # Not bound to a profile: the imported copy may use it too.
    await rt.vault.set("bob.password", "bob-pw-2", [portal])
    first = await run_task(rt, demo_task(), "src", {"portal": portal})
    assert first.status == "succeeded"
    bundle = await rt.profiles.export("src", "pass phrase")
    state = rt.profiles.open_state(await rt.profiles.get("src"))
    for value in cookie_values(state):
        assert value.encode() not in bundle
    copy = await rt.profiles.import_(bundle, "bundle.json", "pass phrase", name=f"copy-{mode}")
    assert copy.settings.locale == "de-DE" and copy.settings.mode == mode
    again = await run_task(rt, demo_task(), copy.name, {"portal": portal})
    assert again.status == "succeeded" and again.session_restored and again.steps_skipped == 3


async def test_profile_browser_settings_reach_the_page(rt: Runtime, portal: str) -> None:
    settings = ProfileSettings(
        user_agent="CorralTest/1.0",
        viewport={"width": 900, "height": 650},  # type: ignore[arg-type]
        locale="de-DE",
        timezone="Asia/Tokyo",
        color_scheme="dark",
        geolocation={"latitude": 48.85, "longitude": 2.35},  # type: ignore[arg-type]
    )
    await rt.profiles.create("dressed", settings)
    async with open_session(rt.profiles, await rt.pool(), "dressed", "t") as session:
        page = await Tabs(session).active()
        await page.goto(f"{portal}/login")
        seen = await page.evaluate(
            """async () => ({
                ua: navigator.userAgent,
                lang: navigator.language,
                tz: Intl.DateTimeFormat().resolvedOptions().timeZone,
                width: window.innerWidth,
                dark: matchMedia('(prefers-color-scheme: dark)').matches,
                pos: await new Promise(ok => navigator.geolocation.getCurrentPosition(
                    p => ok([p.coords.latitude, p.coords.longitude]), e => ok(String(e.code)))),
            })"""
        )
    assert seen == {
        "ua": "CorralTest/1.0",
        "lang": "de-DE",
        "tz": "Asia/Tokyo",
        "width": 900,
        "dark": True,
        "pos": [48.85, 2.35],
    }


async def test_indexeddb_survives_between_sessions(rt: Runtime, portal: str) -> None:
    await rt.profiles.create("idb")
    write = """() => new Promise((ok, fail) => {
        const req = indexedDB.open('corral-test', 1);
        req.onupgradeneeded = () => req.result.createObjectStore('kv');
        req.onsuccess = () => {
            const tx = req.result.transaction('kv', 'readwrite');
            tx.objectStore('kv').put('remembered', 'answer');
            tx.oncomplete = () => ok(true);
            tx.onerror = () => fail(tx.error);
        };
    })"""
    read = """() => new Promise((ok) => {
        const req = indexedDB.open('corral-test', 1);
        req.onupgradeneeded = () => req.result.createObjectStore('kv');
        req.onsuccess = () => {
            const get = req.result.transaction('kv').objectStore('kv').get('answer');
            get.onsuccess = () => ok(get.result ?? null);
        };
    })"""
    pool = await rt.pool()
    async with open_session(rt.profiles, pool, "idb", "t1") as session:
        page = await Tabs(session).active()
        await page.goto(f"{portal}/login")
        assert await page.evaluate(write) is True
    async with open_session(rt.profiles, pool, "idb", "t2") as session:
        assert session.restored
        page = await Tabs(session).active()
        await page.goto(f"{portal}/login")
        assert await page.evaluate(read) == "remembered"


# --- the run's budget is enforced, not only declared ---------------------------------------------


async def test_a_step_longer_than_the_runs_time_budget_ends_it_failed(
    rt: Runtime, portal: str
) -> None:
    await rt.profiles.create("timer", ProfileSettings())
    task = parse_task(
        {
            "name": "too-slow",
            "start_url": f"{portal}/login",
            # The step alone may take a minute; the whole run may take 1 s.
            "step_timeout_s": 60,
            "budget": {"timeout_s": 1},
            "steps": [{"goto": "/slow?ms=20000"}, {"wait_for": {"text": "Slow page"}}],
        },
        "slow.yaml",
    )
    result = await run_task(rt, task, "timer")
    assert (result.status, result.exit_code) == ("failed", 1)
    assert result.error == "the run took longer than its budget timeout_s=1"
    record = await rt.store.runs.get_run(str(result.run_id))
    assert record is not None and record.status == "failed" and record.error == result.error
    # The lease is released: the profile can be used right away.
    assert (await rt.profiles.get("timer")).name == "timer"
    again = parse_task(
        {
            "name": "quick",
            "start_url": f"{portal}/login",
            "steps": [{"wait_for": {"role": "heading", "name": "Sign in"}}],
        },
        "quick.yaml",
    )
    second = await run_task(rt, again, "timer", lease_timeout_s=0)
    assert second.status == "succeeded", second.error


async def test_a_script_with_more_steps_than_max_steps_stops_there(
    rt: Runtime, portal: str
) -> None:
    await rt.profiles.create("counter", ProfileSettings())
    steps = [{"wait_for": {"role": "heading", "name": "Sign in"}} for _ in range(5)]
    task = parse_task(
        {
            "name": "long",
            "start_url": f"{portal}/login",
            "budget": {"max_steps": 3},
            "steps": steps,
        },
        "long.yaml",
    )
    result = await run_task(rt, task, "counter")
    assert result.status == "failed" and result.error
    assert "stopped: budget max_steps=3 reached" in result.error
    # The start_url navigation and two waits: three steps done, none after.
    assert result.steps_ok == 3
    assert len(await rt.store.runs.list_steps(str(result.run_id))) == 3


async def test_sessions_beyond_the_machine_limit_wait_for_a_slot(
    settings: Settings, portal: str
) -> None:
    # Six runs at once on a pool of two slots: never more than two contexts open, the others
    # wait (not counted against any step's timeout), and every run succeeds.
    task = parse_task(
        {
            "name": "slots",
            "start_url": portal,
            "steps": [{"goto": "/login"}, {"wait_for": {"role": "button", "name": "Sign in"}}],
        },
        "slots.yaml",
    )
    async with (
        BrowserPool.start(settings.browser, max_sessions=2) as small,
        Runtime.open(settings, pool=small) as rt,
    ):
        names = [f"slot-{i}" for i in range(6)]
        for name in names:
            await rt.profiles.create(name, ProfileSettings())
        browser = await small.browser()
        peak, waited = 0, False

        async def watch() -> None:
            nonlocal peak, waited
            while True:
                peak = max(peak, len(browser.contexts))
                waited = waited or small.sessions_waiting
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        try:
            results = await run_many(rt, task, names)
        finally:
            watcher.cancel()
    assert [r.status for r in results] == ["succeeded"] * 6, [r.error for r in results]
    assert small.max_sessions == 2
    assert 1 <= peak <= 2
    assert waited


def test_max_sessions_comes_from_the_environment_with_clear_errors(tmp_path: Path) -> None:
    env = {"CORRAL_HOME": str(tmp_path)}
    assert Settings.from_env(env).max_sessions is None
    assert Settings.from_env({**env, "CORRAL_MAX_SESSIONS": "12"}).max_sessions == 12
    for bad in ("0", "-3", "two", "1.5"):
        with pytest.raises(UserError, match=r"CORRAL_MAX_SESSIONS=.*whole number, 1 or more"):
            Settings.from_env({**env, "CORRAL_MAX_SESSIONS": bad})
    assert default_max_sessions() >= SESSIONS_PER_CORE
