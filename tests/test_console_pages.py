"""The console's sections over real HTTP: runs (filters, pages, who sees what), schedules and
their actions, profiles and secrets, usage (the chart's numbers), the audit log and its chain.

Everything is real: the app served on a port, signed-in clients, SQLite. Rows go in through the
store and the services, as runs and schedules would write them; hostile text goes wherever a page
may show it and must come out as text.
"""

from __future__ import annotations

import re
import socket
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from profiles import BrowserPool, ProfileSettings
from runtime import Runtime
from runtime.auth import Actor
from runtime.console.pages.schedules import timing_words
from runtime.records import ModelCallRecord
from runtime.schedules import Schedule, Timing
from runtime.serve.server import listen
from runtime.services import ScheduleInput
from tests.support.console import ROOT, Console, csrf_of, served_console, sign_in
from tests.support.stores import NOW, add_run

ADA = Actor("ada", "admin")
BOB = Actor("bob", "user")
XSS = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">"><svg onload=alert(3)>'
TASK = """
name: check
start_url: http://portal.test/
steps:
  - goto: "http://portal.test/"
"""


@pytest.fixture
async def console(rt: Runtime) -> AsyncIterator[Console]:
    async with served_console(rt) as served:
        yield served


def assert_inert(html: str) -> None:
    """No payload came through as markup; it is there, escaped."""
    assert "<script>window" not in html
    assert "<img src=x" not in html
    assert "<svg onload" not in html
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html


async def add_call(
    rt: Runtime,
    run_id: str,
    at: datetime,
    *,
    cost: float,
    tokens: tuple[int, int] = (100, 10),
    role: str = "planner",
    model: str = "gpt-x",
    outcome: str = "ok",
) -> None:
    await rt.store.runs.add_model_call(
        ModelCallRecord.model_validate(
            {
                "run_id": run_id,
                "step_idx": 0,
                "role": role,
                "provider": "openai",
                "model": model,
                "outcome": outcome,
                "input_tokens": tokens[0],
                "output_tokens": tokens[1],
                "cost_usd": cost,
                "at": at,
            }
        )
    )


async def add_schedule(
    rt: Runtime, actor: Actor, name: str, profiles: list[str], **extra: Any
) -> Schedule:
    return await rt.services.schedules.add(
        actor,
        ScheduleInput(
            name=name,
            task_yaml=TASK,
            task_source=extra.pop("source", "check.yaml"),
            profiles=profiles,
            timing=extra.pop("timing", Timing(every_s=3600)),
            **extra,
        ),
    )


def run_ids(html: str) -> list[str]:
    """The run ids the runs table lists, in order."""
    table = html.split('id="runs"', 1)[1]
    return re.findall(r'<a class="mono" href="/console/runs/([^"]+)"', table)


def total_cost(html: str) -> str:
    """The usage page's total cost."""
    found = re.search(r'id="total-cost">([^<]+)<', html)
    assert found, html
    return found.group(1)


def text_of(html: str) -> str:
    """The page as text: tags dropped, entities read, white space folded."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


# --- runs ---------------------------------------------------------------------------------------


async def test_every_page_renders_for_an_admin(console: Console) -> None:
    rt = console.rt
    await add_run(rt, "r-shop", "shop", error="boom", schedule="nightly")
    await add_call(rt, "r-shop", NOW, cost=0.25)
    await add_schedule(rt, ADA, "nightly", ["shop", "mine"])
    await rt.services.secrets.set(ADA, "pw", "hunter2-value", ["http://portal.test"])
    async with sign_in(console.url, console.tokens["ada"]) as http:
        for path in (
            "/console/runs",
            "/console/runs?status=succeeded&profile=shop&task=check&since=2000-01-01",
            "/console/schedules",
            "/console/schedules/nightly",
            "/console/profiles",
            "/console/memory",
            "/console/alerts",
            "/console/usage",
            "/console/usage?days=7",
            "/console/usage?days=90",
            "/console/audit",
            "/console/audit?action=schedule",
        ):
            answer = await http.get(path)
            assert answer.status_code == 200, (path, answer.text)
            assert answer.headers["content-security-policy"].startswith("default-src 'none'")
            assert 'aria-current="page"' in answer.text
            assert "hunter2-value" not in answer.text
            # No inline style anywhere: the policy would block it (and it would be a bug).
            assert " style=" not in answer.text and "<style" not in answer.text


async def test_a_user_sees_runs_on_granted_profiles_only_whatever_the_filter(
    console: Console,
) -> None:
    rt = console.rt
    await add_schedule(rt, ADA, "both", ["shop", "mine"])
    for i, profile in enumerate(["shop", "mine"] * 3):
        await add_run(
            rt,
            f"{profile}-{i}",
            profile,
            status="failed" if i < 2 else "succeeded",
            started=NOW - timedelta(days=i),
            schedule="both",
        )
    async with (
        sign_in(console.url, console.tokens["bob"]) as bob,
        sign_in(console.url, console.tokens["ada"]) as ada,
    ):
        everything = run_ids((await ada.get("/console/runs")).text)
        assert everything == [f"{p}-{i}" for i, p in enumerate(["shop", "mine"] * 3)]
        mine = ["mine-1", "mine-3", "mine-5"]
        assert run_ids((await bob.get("/console/runs")).text) == mine
        day = (NOW - timedelta(days=3)).date().isoformat()
        for query, expected in (
            ("profile=shop", []),
            ("profile=mine", mine),
            ("schedule=both", mine),
            ("task=check", mine),
            ("status=failed", ["mine-1"]),
            ("status=succeeded", ["mine-3", "mine-5"]),
            (f"since={day}&until={day}", ["mine-3"]),
            ("profile=shop&status=failed", []),
        ):
            page = await bob.get(f"/console/runs?{query}")
            assert page.status_code == 200, page.text
            assert run_ids(page.text) == expected, query
            assert "shop-" not in page.text
        shop_only = await ada.get("/console/runs?profile=shop&status=failed")
        assert run_ids(shop_only.text) == ["shop-0"]


async def test_the_filter_form_keeps_its_values(console: Console) -> None:
    async with sign_in(console.url, console.tokens["ada"]) as http:
        page = await http.get(
            "/console/runs",
            params={"task": 'a"b', "profile": "mine", "status": "failed", "since": "2025-02-03"},
        )
    assert page.status_code == 200
    assert 'name="task" value="a&#34;b"' in page.text
    assert 'name="profile" value="mine"' in page.text
    assert '<option value="failed" selected>' in page.text
    assert 'name="since" value="2025-02-03"' in page.text
    assert "No runs match these filters." in page.text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=exploded", "status 'exploded' is not a run status: expected one of queued"),
        ("since=2025-13-40", "since: '2025-13-40' is not a date: expected YYYY-MM-DD"),
        ("until=yesterday", "until: 'yesterday' is not a date"),
        ("since=2025-03-02&until=2025-03-01", "since: must be before until"),
        ("offset=-5", "offset '-5': expected a whole number from 0"),
        ("offset=1e9", "offset '1e9': expected a whole number from 0"),
        (f"task={'x' * 201}", "task: at most 200 characters"),
    ],
)
async def test_a_bad_filter_value_says_why(console: Console, query: str, message: str) -> None:
    await add_run(console.rt, "r1", "mine")
    async with sign_in(console.url, console.tokens["ada"]) as http:
        page = await http.get(f"/console/runs?{query}")
    assert page.status_code == 400
    assert message in text_of(page.text)
    assert 'role="alert"' in page.text and run_ids(page.text) == []
    # The form is still there, with what was typed, to correct it.
    key, value = query.split("&")[0].split("=", 1)
    if key != "offset":
        assert f'name="{key}" value="{value}"' in page.text or f'value="{value}" selected' in (
            page.text
        )


async def test_runs_come_newest_first_fifty_to_a_page(console: Console) -> None:
    for i in range(120):
        await add_run(console.rt, f"run-{i:03d}", "mine", started=NOW - timedelta(minutes=i))
    async with sign_in(console.url, console.tokens["bob"]) as http:
        first = await http.get("/console/runs")
        ids = run_ids(first.text)
        assert ids == [f"run-{i:03d}" for i in range(50)]
        assert "newer" not in text_of(first.text.split('id="runs"')[1])
        older = re.search(r'href="([^"]+)" rel="next"', first.text)
        assert older and unescape(older.group(1)) == "/console/runs?offset=50"
        second = await http.get(unescape(older.group(1)))
        assert run_ids(second.text) == [f"run-{i:03d}" for i in range(50, 100)]
        third_link = re.search(r'href="([^"]+)" rel="next"', second.text)
        assert third_link
        third = await http.get(unescape(third_link.group(1)))
        assert run_ids(third.text) == [f"run-{i:03d}" for i in range(100, 120)]
        assert 'rel="next"' not in third.text
        newer = re.search(r'href="([^"]+)" rel="prev"', third.text)
        assert newer and unescape(newer.group(1)) == "/console/runs?offset=50"
        # The pager keeps the filters.
        filtered = await http.get("/console/runs?status=succeeded&profile=mine")
        link = re.search(r'href="([^"]+)" rel="next"', filtered.text)
        assert link and unescape(link.group(1)) == (
            "/console/runs?profile=mine&status=succeeded&offset=50"
        )


async def test_a_row_shows_task_profile_schedule_status_duration_and_a_short_error(
    console: Console,
) -> None:
    rt = console.rt
    long_error = "the portal answered 502\n" + "x" * 500
    await add_run(
        rt, "ended", "mine", status="failed", seconds=150, error=long_error, schedule="daily"
    )
    await add_run(
        rt, "going", "mine", status="running", seconds=None, started=NOW - timedelta(minutes=1)
    )
    async with sign_in(console.url, console.tokens["bob"]) as http:
        page = await http.get("/console/runs")
    assert 'id="runs" data-refresh="runs"' in page.text
    rows = page.text.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")
    going, ended = rows[1], rows[2]
    assert 'href="/console/runs/going"' in going and "going</span>" in going
    cells = text_of(ended)
    assert "check" in cells and "mine" in cells and "daily" in cells and "failed" in cells
    assert "2m 30s" in cells
    assert "the portal answered 502" in cells and "xxx" not in cells
    assert 'href="/console/runs?schedule=daily"' in ended


# --- schedules ----------------------------------------------------------------------------------


async def test_schedules_list_and_page(console: Console) -> None:
    rt = console.rt
    await add_schedule(
        rt, ADA, "weekdays", ["shop"], timing=Timing(cron="30 9 * * 1-5", tz="Europe/Berlin")
    )
    await add_schedule(rt, BOB, "bobs", ["mine"], timing=Timing(every_s=300))
    await rt.services.schedules.pause(ADA, "weekdays", "portal maintenance")
    await add_run(rt, "from-bobs", "mine", schedule="bobs")
    async with (
        sign_in(console.url, console.tokens["ada"]) as ada,
        sign_in(console.url, console.tokens["bob"]) as bob,
    ):
        listed = text_of((await ada.get("/console/schedules")).text)
        assert "at 09:30 on Monday to Friday (Europe/Berlin)" in listed
        assert "every 5 minutes" in listed and "portal maintenance" in listed
        # A user sees only their own schedules, and not another's page.
        mine = text_of((await bob.get("/console/schedules")).text)
        assert "bobs" in mine and "weekdays" not in mine
        assert (await bob.get("/console/schedules/weekdays")).status_code == 404
        page = await bob.get("/console/schedules/bobs")
        assert page.status_code == 200
        assert run_ids(page.text.replace('id="schedule-runs"', 'id="runs"')) == ["from-bobs"]
        nexts = page.text.split("Next fires")[1].split("</ol>")[0]
        assert nexts.count("<li>") == 5


@pytest.mark.parametrize(
    ("timing", "words"),
    [
        (Timing(cron="*/15 * * * *"), "every 15 minutes (UTC)"),
        (Timing(cron="* * * * *"), "every minute (UTC)"),
        (Timing(cron="7 * * * *"), "every hour at minute 7 (UTC)"),
        (Timing(cron="0 6 * * *", tz="Asia/Tokyo"), "daily at 06:00 (Asia/Tokyo)"),
        (Timing(cron="0 6 1 * *"), "at 06:00 on day 1 of every month (UTC)"),
        (Timing(cron="0 18 * * sat,sun"), "at 18:00 on Saturday, Sunday (UTC)"),
        (Timing(cron="0 18 * * 7"), "at 18:00 on Sunday (UTC)"),
        (Timing(cron="5 4 * 2 *"), "cron 5 4 * 2 * (UTC)"),
        (Timing(cron="0 9-17 * * *"), "cron 0 9-17 * * * (UTC)"),
        (Timing(every_s=5400), "every 1 hour 30 minutes"),
        (Timing(every_s=86_400), "every day"),
        (Timing(every_s=60, jitter_s=300), "every minute, up to 5 minutes late (jitter)"),
    ],
)
def test_timing_in_words(timing: Timing, words: str) -> None:
    assert timing_words(timing) == words


async def test_schedule_actions_need_csrf_and_the_owner_or_an_admin(console: Console) -> None:
    rt = console.rt
    await add_schedule(rt, ADA, "adas", ["shop", "mine"])
    await add_schedule(rt, BOB, "bobs", ["mine"])
    async with (
        sign_in(console.url, console.tokens["ada"]) as ada,
        sign_in(console.url, console.tokens["bob"]) as bob,
    ):
        bob_csrf = csrf_of((await bob.get("/console/schedules/bobs")).text)
        ada_csrf = csrf_of((await ada.get("/console/schedules/adas")).text)
        # Without the token, with a wrong one, or from another site: refused, nothing changes.
        for data, headers in (
            ({}, {}),
            ({"csrf": "forged"}, {}),
            ({"csrf": bob_csrf}, {"Origin": "https://evil.test"}),
        ):
            for action in ("pause", "resume", "run"):
                refused = await bob.post(
                    f"/console/schedules/bobs/{action}", data=data, headers=headers
                )
                assert refused.status_code == 403, (action, data)
        # Bob is neither the owner of ada's schedule nor an admin: it does not exist for him.
        for action in ("pause", "run"):
            refused = await bob.post(
                f"/console/schedules/adas/{action}", data={"csrf": bob_csrf, "reason": "mine now"}
            )
            assert refused.status_code == 404
        assert not (await rt.services.schedules.get(ROOT, "adas")).paused
        assert await rt.services.schedules.fires(ROOT, "adas") == []
        assert await rt.services.schedules.fires(ROOT, "bobs") == []
        assert not (await rt.services.schedules.get(ROOT, "bobs")).paused

        # The owner can.
        paused = await bob.post(
            "/console/schedules/bobs/pause", data={"csrf": bob_csrf, "reason": "on holiday"}
        )
        assert paused.status_code == 303
        assert paused.headers["location"] == "/console/schedules/bobs?done=paused"
        shown = await bob.get(paused.headers["location"])
        assert "Paused: no new fires" in shown.text and "on holiday" in shown.text
        assert (await rt.services.schedules.get(ROOT, "bobs")).paused_reason == "on holiday"
        again = await bob.post("/console/schedules/bobs/pause", data={"csrf": bob_csrf})
        assert again.headers["location"].endswith("done=nothing")
        queued = await bob.post("/console/schedules/bobs/run", data={"csrf": bob_csrf})
        assert queued.headers["location"] == "/console/schedules/bobs?done=queued&n=1"
        assert "Queued 1 fire(s)" in (await bob.get(queued.headers["location"])).text
        [fire] = await rt.services.schedules.fires(ROOT, "bobs")
        assert fire.kind == "manual" and fire.profile == "mine"
        resumed = await bob.post("/console/schedules/bobs/resume", data={"csrf": bob_csrf})
        assert resumed.headers["location"].endswith("done=resumed")
        assert not (await rt.services.schedules.get(ROOT, "bobs")).paused

        # An admin can act on anyone's schedule.
        queued = await ada.post("/console/schedules/bobs/run", data={"csrf": ada_csrf})
        assert queued.status_code == 303
        assert len(await rt.services.schedules.fires(ROOT, "bobs")) == 2
        queued = await ada.post("/console/schedules/adas/run", data={"csrf": ada_csrf})
        assert queued.headers["location"].endswith("done=queued&n=2")
    actions = [e.action for e in await rt.services.audit.list(ROOT, 50, "schedule")]
    assert actions.count("schedule.pause") == 1 and actions.count("schedule.run_now") == 3


# --- profiles and secrets -----------------------------------------------------------------------


async def test_profiles_and_secrets_show_scopes_never_values(console: Console) -> None:
    rt = console.rt
    await rt.services.profiles.update(
        ROOT, "mine", ProfileSettings(allowed_domains=["portal.test"], vars={"username": "bob-id"})
    )
    await add_run(rt, "last-on-mine", "mine", started=NOW - timedelta(hours=1))
    await add_run(rt, "older-on-mine", "mine", started=NOW - timedelta(days=1))
    secrets = rt.services.secrets
    await secrets.set(ROOT, "mine_pw", "value-of-mine", ["http://portal.test"], ["mine"])
    await secrets.set(ROOT, "shop_pw", "value-of-shop", ["http://portal.test"], ["shop"])
    await secrets.set(ROOT, "any_key", "value-of-any", ["http://portal.test"], fields=["API key"])
    await secrets.set(ROOT, "both", "value-of-both", ["http://portal.test"], ["shop", "mine"])
    async with (
        sign_in(console.url, console.tokens["ada"]) as ada,
        sign_in(console.url, console.tokens["bob"]) as bob,
    ):
        admin = await ada.get("/console/profiles")
        user = await bob.get("/console/profiles")
    for page in (admin, user):
        assert page.status_code == 200
        assert "value-of" not in page.text and "bob-id" not in page.text
    seen = text_of(admin.text)
    for name in ("shop", "mine", "mine_pw", "shop_pw", "any_key", "API key", "portal.test"):
        assert name in seen
    assert "username" in seen  # the variable's name, not its value
    mine_row = admin.text.split('href="/console/runs?profile=mine"')[1].split("</tr>")[0]
    assert 'href="/console/runs/last-on-mine"' in mine_row
    # Bob sees his profile and the secrets usable on it; shop's profile and secret stay hidden.
    seen = text_of(user.text)
    assert 'href="/console/runs?profile=mine"' in user.text
    assert 'href="/console/runs?profile=shop"' not in user.text
    assert "mine_pw" in seen and "any_key" in seen and "both" in seen
    assert "shop_pw" not in seen and "shop" not in seen


# --- usage --------------------------------------------------------------------------------------


async def test_usage_sums_equal_the_model_calls(console: Console) -> None:
    rt = console.rt
    today = NOW.replace(hour=12, minute=0, second=0)
    await add_run(rt, "a", "mine", task="invoices")
    await add_run(rt, "b", "mine", task="pay")
    await add_run(rt, "c", "shop", task="invoices")
    await add_run(
        rt, "capped", "mine", task="pay", status="failed", error="budget: max_usd 0.50 reached"
    )
    calls = [
        ("a", today, 0.13, (1000, 200), "planner", "gpt-x"),
        ("a", today - timedelta(days=1), 0.5, (3000, 100), "planner", "gpt-x"),
        ("b", today - timedelta(days=1), 0.07, (400, 40), "vision", "claude-y"),
        ("b", today - timedelta(days=5), 2.25, (9000, 900), "planner", "claude-y"),
        ("c", today, 7.0, (50_000, 5000), "extractor", "gpt-x"),
        ("a", today - timedelta(days=40), 11.0, (1, 1), "planner", "gpt-x"),
    ]
    for run_id, at, cost, tokens, role, model in calls:
        await add_call(rt, run_id, at, cost=cost, tokens=tokens, role=role, model=model)
    async with (
        sign_in(console.url, console.tokens["ada"]) as ada,
        sign_in(console.url, console.tokens["bob"]) as bob,
    ):
        admin = await ada.get("/console/usage?days=30")
        week = await ada.get("/console/usage?days=7")
        quarter = await ada.get("/console/usage?days=90")
        user = await bob.get("/console/usage?days=30")
    assert admin.status_code == 200
    assert total_cost(admin.text) == "$9.95"  # 0.13 + 0.5 + 0.07 + 2.25 + 7.0
    assert 'id="total-tokens">69,640<' in admin.text
    assert total_cost(quarter.text) == "$20.95"
    # The chart: one bar per day, each titled with that day's sum.
    bars = re.findall(r'<rect class="bar cost"[^>]*><title>([^<]+)</title>', admin.text)
    assert len(bars) == 30
    assert bars[-1] == f"{today.date().isoformat()}: $7.13"  # 0.13 + 7.0
    yesterday = (today - timedelta(days=1)).date().isoformat()
    assert f"{yesterday}: $0.5700" in bars
    token_bars = re.findall(r'<rect class="bar tokens"[^>]*><title>([^<]+)</title>', admin.text)
    assert token_bars[-1] == f"{today.date().isoformat()}: 56,200"
    heights = [float(h) for h in re.findall(r'class="bar cost"[^>]*height="([0-9.]+)"', admin.text)]
    assert max(heights) == heights[-1] > 0 and heights.count(0.0) == 27
    assert len(re.findall(r'<rect class="bar cost"', week.text)) == 7
    # The tables: per task, model and role.
    by_task = text_of(admin.text.split("By task")[1].split("By model")[0])
    assert "invoices 3 0 54,000 5,300 0 $7.63" in by_task
    assert "pay 2 0 9,400 940 0 $2.32" in by_task
    by_model = text_of(admin.text.split("By model")[1].split("By role")[0])
    assert "openai:gpt-x 3 0 54,000 5,300 0 $7.63" in by_model
    assert "openai:claude-y 2 0 9,400 940 0 $2.32" in by_model
    by_role = text_of(admin.text.split("By role")[1].split("budget cap")[0])
    assert "planner 3 0 13,000 1,200 0 $2.88" in by_role
    assert "extractor 1 0 50,000 5,000 0 $7.00" in by_role
    capped = admin.text.split("budget cap")[1]
    assert 'href="/console/runs/capped"' in capped
    # Bob counts only runs on his profile.
    assert total_cost(user.text) == "$2.95"
    assert "extractor" not in user.text


@pytest.mark.parametrize("days", ["5", "abc", "-7", "7.0"])
async def test_a_bad_usage_period_says_why(console: Console, days: str) -> None:
    async with sign_in(console.url, console.tokens["ada"]) as http:
        page = await http.get("/console/usage", params={"days": days})
    assert page.status_code == 400
    assert f"days '{days}': expected one of 7, 30, 90" in text_of(page.text)


# --- audit --------------------------------------------------------------------------------------


def _tamper(db_path: Path, statement: str) -> None:
    conn = sqlite3.connect(db_path)
    try:
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


async def test_the_audit_log_is_for_admins_with_its_chain_verified(console: Console) -> None:
    rt = console.rt
    await add_schedule(rt, BOB, "bobs", ["mine"])
    await rt.services.schedules.pause(BOB, "bobs", "why not")
    async with (
        sign_in(console.url, console.tokens["ada"]) as ada,
        sign_in(console.url, console.tokens["bob"]) as bob,
    ):
        refused = await bob.get("/console/audit")
        assert refused.status_code == 403
        assert "read the audit log" in text_of(refused.text)
        page = await ada.get("/console/audit")
        rows = await rt.services.audit.list(ROOT, 1000)
        assert f"chain verified: {len(rows)} rows" in page.text
        ids = [int(i) for i in re.findall(r'<td data-label="#" class="num">(\d+)</td>', page.text)]
        assert ids == sorted(ids, reverse=True) and len(ids) == len(rows)
        only = await ada.get("/console/audit?action=schedule")
        actions = re.findall(r'data-label="Action"><code>([^<]+)</code>', only.text)
        assert actions == ["schedule.pause", "schedule.add"]
        assert "&#34;reason&#34;: &#34;why not&#34;" in only.text
        assert (await ada.get("/console/audit?limit=7")).status_code == 400

        _tamper(rt.settings.store_location, "UPDATE audit_log SET subject = 'mallory' WHERE id = 2")
        broken = await ada.get("/console/audit")
    assert broken.status_code == 200
    alert = broken.text.split('class="error card chain"')[1].split("</p>")[0]
    assert "row 2" in alert and "was changed" in alert
    assert "chain verified" not in broken.text


# --- hostile text -------------------------------------------------------------------------------


async def test_hostile_text_stays_text_on_every_page(console: Console) -> None:
    rt = console.rt
    await rt.services.profiles.update(ROOT, "mine", ProfileSettings(vars={XSS: XSS, "user": XSS}))
    await add_schedule(rt, BOB, "bobs", ["mine"], source=XSS, vars={"who": XSS})
    await rt.services.schedules.pause(BOB, "bobs", XSS)
    await add_run(
        rt,
        "evil",
        "mine",
        task=XSS,
        status="failed",
        error=XSS,
        result={"data": XSS},
        schedule="bobs",
    )
    await add_run(rt, "capped", "mine", status="failed", error=f"budget: {XSS}")
    await add_call(rt, "evil", NOW, cost=0.5, role=XSS, model=XSS)
    await rt.services.secrets.set(
        ROOT, "evil_fields", "never-shown", ["http://portal.test"], ["mine"], fields=[XSS]
    )
    async with (
        sign_in(console.url, console.tokens["ada"]) as ada,
        sign_in(console.url, console.tokens["bob"]) as bob,
    ):
        for http in (ada, bob):
            for path in (
                "/console/runs",
                "/console/runs?schedule=bobs",
                "/console/schedules",
                "/console/schedules/bobs",
                "/console/profiles",
                "/console/usage",
            ):
                page = await http.get(path)
                assert page.status_code == 200, path
                assert_inert(page.text)
        audit = await ada.get("/console/audit")
        assert_inert(audit.text)
        # A filter value is hostile text too.
        reflected = await ada.get("/console/runs", params={"task": XSS, "status": XSS})
        assert reflected.status_code == 400
        assert_inert(reflected.text)
        filtered = await ada.get("/console/runs", params={"task": XSS})
        assert run_ids(filtered.text) == ["evil"]
        assert_inert(filtered.text)


async def test_a_stranger_is_sent_to_sign_in(console: Console) -> None:
    async with httpx.AsyncClient(base_url=console.url) as http:
        for path in ("/console/schedules", "/console/profiles", "/console/usage", "/console/audit"):
            answer = await http.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/console/login?next=")
        answer = await http.post("/console/schedules/x/run", data={"csrf": "x"})
        assert answer.status_code in (401, 403)


# --- in a browser -------------------------------------------------------------------------------


async def test_in_chromium_the_runs_list_updates_live_and_payloads_stay_inert(
    console: Console, pool: BrowserPool
) -> None:
    rt = console.rt
    await add_run(rt, "evil", "mine", task=XSS, status="failed", error=XSS)
    browser = await pool.browser()
    context = await browser.new_context()
    try:
        page = await context.new_page()
        problems: list[str] = []
        # A refused inline script or style would show as a console error; the browser's own
        # favicon request is the one 404 (the console has no icon).
        page.on(
            "console",
            lambda m: (
                problems.append(m.text) if m.type == "error" and "404" not in m.text else None
            ),
        )
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on(
            "response",
            lambda r: (
                problems.append(f"{r.status} {r.url}")
                if r.status >= 400 and not r.url.endswith("/favicon.ico")
                else None
            ),
        )
        await page.goto(f"{console.url}/console/login?next=/console/runs%3Fprofile%3Dmine")
        await page.fill("#token", console.tokens["bob"])
        await page.click("button[type=submit]")
        await page.wait_for_url("**/console/runs?profile=mine")
        await expect(page.locator("#runs tbody tr")).to_have_count(1)
        await expect(page.locator("#runs td[data-label=Task]").first).to_have_text(XSS)
        marker = await page.evaluate("document.getElementById('runs').dataset.marker = 'old'")
        assert marker == "old"
        # A run starts: its row appears without a reload (the table is fetched and swapped).
        await add_run(rt, "new-one", "mine", status="running", seconds=None, started=NOW)
        await add_run(rt, "not-bobs", "shop", status="running", seconds=None, started=NOW)
        await expect(page.locator("#runs a[href='/console/runs/new-one']")).to_be_visible(
            timeout=10_000
        )
        assert await page.evaluate("document.getElementById('runs').dataset.marker") is None
        await expect(page.locator("#runs tbody tr")).to_have_count(2)
        assert await page.locator("#runs a[href='/console/runs/not-bobs']").count() == 0
        assert await page.locator("input[name=profile]").input_value() == "mine"
        assert await page.evaluate("window.pwned") is None
        assert problems == []
    finally:
        await context.close()


def test_the_servers_connections_send_without_waiting_for_acks() -> None:
    # A page is answered on a kept-alive connection in two writes (headers, then body); with
    # Nagle's algorithm on, the second waits for the browser's delayed ACK (~40 ms each time).
    server = listen("127.0.0.1", 0)
    try:
        server.setblocking(True)
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        with client, accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        server.close()
