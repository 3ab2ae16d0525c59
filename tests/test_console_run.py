"""The console's run page: a run's replay, served by the real app over HTTP and opened in real
Chromium. A ``user`` sees runs on granted profiles only (others are not found); the files route
serves that run's screenshots and nothing else; a hostile page's words run nothing; no form of a
typed password appears; a live run's summary refreshes by itself until the run ends."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from playwright.async_api import Page

from profiles import BrowserPool
from runtime import Runtime, parse_task, run_task
from runtime.auth import Actor
from runtime.demo.portal import USERS, PortalServer
from tests.support.approvals import next_request
from tests.support.console import Console, served_console, sign_in
from tests.support.demo import first_unpaid, make_demo_profiles, pay_task
from tests.support.hostile import run_steps, serve_site
from tests.support.leaks import leak_forms
from tests.support.replay import (
    PAYLOADS,
    assert_inert,
    explained_run,
    hostile_pages,
    hostile_run,
    outside_jpeg,
    screenshot_files,
    shown_step,
)

ADA = Actor("ada", "admin")


@pytest.fixture
async def console(rt: Runtime) -> AsyncIterator[Console]:
    async with served_console(rt) as served:
        yield served


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[PortalServer]:
    """A portal of this test's own: payments here do not change the shared portal."""
    with PortalServer(port=0, db_path=tmp_path / "portal.db") as server:
        yield server


async def quick_runs(rt: Runtime, *profiles: str) -> list[str]:
    """A one-step run on each profile (the hostile page opened); their ids."""
    ids = []
    with serve_site() as site:
        start = hostile_pages(site)
        for profile in profiles:
            result = await run_steps(rt, site, [{"goto": start}], profile=profile)
            assert result.status == "succeeded", result.error
            ids.append(str(result.run_id))
    return ids


@asynccontextmanager
async def signed_in_page(
    pool: BrowserPool, console: Console, who: str, path: str
) -> AsyncIterator[tuple[Page, list[str]]]:
    """Chromium signed in to the console as ``who``, at ``path``; the dialogs it opened."""
    browser = await pool.browser()
    context = await browser.new_context()
    dialogs: list[str] = []
    try:
        page = await context.new_page()

        async def dismiss(dialog: object) -> None:
            dialogs.append(dialog.message)  # type: ignore[attr-defined]
            await dialog.dismiss()  # type: ignore[attr-defined]

        page.on("dialog", dismiss)
        await page.goto(f"{console.url}/console/login?next={quote(path)}")
        await page.fill("#token", console.tokens[who])
        async with page.expect_navigation():
            await page.click("button[type=submit]")
        assert page.url == console.url + path, page.url
        yield page, dialogs
    finally:
        await context.close()


async def test_a_user_sees_only_runs_on_profiles_granted_to_them(console: Console) -> None:
    shop_run, mine_run = await quick_runs(console.rt, "shop", "mine")
    async with sign_in(console.url, console.tokens["bob"]) as bob:
        for path in ("", "/files/steps/0000.jpg", "/replay.html"):
            refused = await bob.get(f"/console/runs/{shop_run}{path}")
            assert refused.status_code == 404, (path, refused.text)
            assert shop_run in refused.text and "Not found" in refused.text
            assert "image" not in refused.headers["content-type"]
        page = await bob.get(f"/console/runs/{mine_run}")
        assert page.status_code == 200, page.text
        assert '<ol id="timeline">' in page.text and 'id="step-1"' in page.text
        assert f'href="/console/runs/{mine_run}/replay.html"' in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        shot = await bob.get(f"/console/runs/{mine_run}/files/steps/0000.jpg")
        assert shot.status_code == 200 and shot.headers["content-type"] == "image/jpeg"
    async with sign_in(console.url, console.tokens["ada"]) as ada:
        assert (await ada.get(f"/console/runs/{shop_run}")).status_code == 200
    async with httpx.AsyncClient(base_url=console.url) as anonymous:
        gone = await anonymous.get(f"/console/runs/{mine_run}/files/steps/0000.jpg")
        assert gone.status_code == 303 and gone.headers["location"].startswith("/console/login")
        # The API's review and replay answer the same: bob does not see shop's run.
        bearer = {"Authorization": f"Bearer {console.tokens['bob']}"}
        for what in ("review", "replay"):
            assert (
                await anonymous.get(f"/api/runs/{shop_run}/{what}", headers=bearer)
            ).status_code == 404
            mine = await anonymous.get(f"/api/runs/{mine_run}/{what}", headers=bearer)
            assert mine.status_code == 200
        assert mine.headers["content-type"].startswith("text/html")
        assert f'filename="replay-{mine_run}.html"' in mine.headers["content-disposition"]


async def test_the_files_route_serves_that_runs_screenshots_and_nothing_else(
    console: Console, tmp_path: Path
) -> None:
    ours, theirs = await quick_runs(console.rt, "mine", "mine")
    rt = console.rt
    ours_dir = Path((await rt.store.runs.get_run(ours)).run_dir)  # type: ignore[union-attr]
    theirs_dir = Path((await rt.store.runs.get_run(theirs)).run_dir)  # type: ignore[union-attr]
    outside = outside_jpeg(tmp_path / "outside.jpg", "blue")
    (ours_dir / "steps" / "link.jpg").symlink_to(outside)
    their_shot = screenshot_files(theirs_dir)[0]
    depth = "../" * len(ours_dir.relative_to(tmp_path).parts)
    refused = [
        "steps.jsonl",
        "trace.zip",
        "result.json",
        "steps/link.jpg",
        "steps/9999.jpg",
        f"{depth}outside.jpg",
        f"../{theirs_dir.name}/steps/{their_shot.name}",
        f"steps/../../{theirs_dir.name}/steps/{their_shot.name}",
        str(their_shot),
        str(outside),
        "/etc/passwd",
        "../../../../../../../../etc/passwd",
    ]
    async with sign_in(console.url, console.tokens["bob"]) as bob:
        page = await bob.get(f"/console/runs/{ours}")
        sources = re.findall(r'<img id="[^"]+" src="([^"]+)"', page.text)
        assert sources and all(s.startswith(f"/console/runs/{ours}/files/") for s in sources)
        for src in sources:
            got = await bob.get(src)
            assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
            assert got.content == (ours_dir / src.split("/files/", 1)[1]).read_bytes()
        for path in refused:
            # Every separator and dot percent-encoded, so the server (not the client) sees them.
            encoded = quote(path, safe="").replace(".", "%2E")
            for url in (
                f"/console/runs/{ours}/files/{encoded}",
                f"/console/runs/{ours}/files/{path}",
            ):
                answer = await bob.get(url)
                assert answer.status_code == 404, (url, answer.status_code)
                assert answer.content not in (outside.read_bytes(), their_shot.read_bytes())


async def test_a_hostile_pages_words_run_nothing_on_the_run_page(
    console: Console, pool: BrowserPool
) -> None:
    with serve_site() as site:
        result = await hostile_run(console.rt, site, profile="mine")
    run_id = str(result.run_id)
    async with sign_in(console.url, console.tokens["bob"]) as bob:
        text = (await bob.get(f"/console/runs/{run_id}")).text
        assert not [p for p in PAYLOADS if p in text]
        download = await bob.get(f"/console/runs/{run_id}/replay.html")
        assert download.status_code == 200
        assert download.headers["content-disposition"] == (
            f'attachment; filename="replay-{run_id}.html"'
        )
        assert '<meta http-equiv="Content-Security-Policy"' in download.text
        assert not [p for p in PAYLOADS if p in download.text]
    async with signed_in_page(pool, console, "bob", f"/console/runs/{run_id}") as (page, dialogs):
        await assert_inert(page, dialogs)
        # The player works here too, from the console's own static files.
        await page.keyboard.press("Home")
        assert await shown_step(page) == "1"
        await page.keyboard.press("End")
        assert await shown_step(page) == str(await page.locator("section.step").count())


async def test_the_run_page_shows_no_form_of_the_typed_password(
    console: Console, portal: str
) -> None:
    result = await explained_run(console.rt, portal, profile="mine")
    forms = leak_forms(USERS["alice"].password)
    async with sign_in(console.url, console.tokens["bob"]) as bob:
        page = await bob.get(f"/console/runs/{result.run_id}")
        assert page.status_code == 200 and "{{secret:alice.password}}" in page.text
        download = await bob.get(f"/console/runs/{result.run_id}/replay.html")
        for body in (page.content, download.content):
            assert not [f for f in forms if f in body]


async def test_a_live_runs_summary_refreshes_by_itself_until_it_ends(
    console: Console, shop: PortalServer, pool: BrowserPool
) -> None:
    rt = console.rt
    await make_demo_profiles(rt, shop.url, "alice")
    task = parse_task(pay_task(shop.url, first_unpaid()), "pay.yaml")
    run = asyncio.create_task(run_task(rt, task, "alice"))
    try:
        pay = await next_request(rt)
        path = f"/console/runs/{pay.run_id}"
        async with signed_in_page(pool, console, "ada", path) as (page, dialogs):
            summary = page.locator("#summary")
            assert await summary.get_attribute("data-refresh") == "runs"
            assert await summary.locator(".rp-status").first.inner_text() == "waiting_approval"
            await page.keyboard.press("End")
            last = await shown_step(page)
            await rt.services.approvals.decide(ADA, pay.id, True, "fine")
            confirm = await next_request(rt, besides=pay)
            await rt.services.approvals.decide(ADA, confirm.id, True, "fine")
            result = await run
            assert result.status == "succeeded", result.error
            await page.wait_for_function(
                "() => document.querySelector('#summary .rp-status').textContent === 'succeeded'",
                timeout=30_000,
            )
            # Ended: the summary no longer refreshes; the step shown stays shown.
            assert await summary.get_attribute("data-refresh") is None
            assert await shown_step(page) == last
            assert dialogs == []
    finally:
        if not run.done():
            run.cancel()
