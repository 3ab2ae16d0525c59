"""The console end to end in real Chromium, against the served app with a worker pool running
tasks on the demo portal: sign in through the form; a payment waits on a gated click; the
request appears in the open inbox without a reload; an admin approves it with a comment and the
run finishes; the run's replay steps to the gated step. A ``user`` cannot decide (a POST he
crafts gets the 403 page) nor see another profile's runs or requests; texts from a hostile page
stay inert; the inbox and a request's page fit a phone."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page

from profiles import BrowserPool
from runtime import Runtime, parse_task
from runtime.approvals import ApprovalRequest
from runtime.demo.portal import PortalServer
from runtime.task import Task
from tests.support.console import ROOT, Console, served_console
from tests.support.demo import first_unpaid, pay_task, signed_in, usd
from tests.support.hostile import HostileSite, serve_site
from tests.support.inbox import console_profiles
from tests.support.wait import until

pytestmark = pytest.mark.slow

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}
INBOX = "/console/approvals"
PAYLOADS = (
    "<script>window.__pwned=1</script>",
    "<img src=x onerror=window.__pwned=1>",
    '"><svg onload=window.__pwned=1>',
)


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[PortalServer]:
    """A portal of this test's own: payments here change no other test's portal."""
    with PortalServer(port=0, db_path=tmp_path / "portal.db") as server:
        yield server


@pytest.fixture
async def console(rt: Runtime, shop: PortalServer) -> AsyncIterator[Console]:
    """The served app; profiles ``shop`` (alice) and ``mine`` (bob) sign in to the portal."""
    await console_profiles(rt, shop.url)
    async with served_console(rt) as served:
        yield served


class Browsing:
    """A signed-in page, and the dialogs anything on it opened."""

    def __init__(self, page: Page, console: Console) -> None:
        self.page = page
        self.url = console.url
        self.dialogs: list[str] = []

    async def open(self, path: str) -> int:
        """Go to ``path`` of the console; the response's status."""
        response = await self.page.goto(self.url + path)
        assert response is not None
        return response.status

    async def inert(self) -> None:
        """Nothing from a page ran: no flag set, no dialog opened."""
        assert await self.page.evaluate("typeof window.__pwned") == "undefined"
        assert self.dialogs == []

    async def fits(self) -> None:
        """The page does not scroll sideways."""
        widths = await self.page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert widths[0] <= widths[1], widths


@asynccontextmanager
async def browsing(
    pool: BrowserPool,
    console: Console,
    user: str,
    *,
    viewport: dict[str, int] = DESKTOP,
) -> AsyncIterator[Browsing]:
    """A fresh browser context signed in as ``user`` through the sign-in form, on the inbox."""
    browser = await pool.browser()
    context = await browser.new_context(viewport=viewport, is_mobile=viewport == PHONE)
    try:
        page = await context.new_page()
        session = Browsing(page, console)

        async def dialog(d: Any) -> None:
            session.dialogs.append(d.message)
            await d.dismiss()

        page.on("dialog", dialog)
        await session.open(INBOX)
        assert "/console/login" in page.url  # signed out: to the sign-in page first
        await page.get_by_label("API token").fill(console.tokens[user])
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(console.url + INBOX)
        yield session
    finally:
        await context.close()


async def waiting(rt: Runtime, run_id: str) -> ApprovalRequest:
    """The run's request, once the run is waiting on it."""

    async def pending() -> list[ApprovalRequest]:
        return await rt.services.approvals.list(ROOT, "pending", run_id)

    return (await until(pending, 60, f"run {run_id} to ask"))[0]


async def start(console: Console, task: Task, profile: str) -> str:
    """Start ``task`` on ``profile`` through the server's worker pool; the run's id."""
    [run] = await console.pool.submit(ROOT, task, [profile])
    return run.run_id


def item(page: Page, run_id: str) -> Any:
    """The inbox entry of the run's request."""
    return page.locator(f'#approval-list article:has(a[href="/console/runs/{run_id}"])')


async def approve_in_the_inbox(session: Browsing, run_id: str, comment: str) -> str:
    """From the inbox: wait for the run's request to appear, open it, approve it with
    ``comment``; the request's id."""
    page = session.page
    entry = item(page, run_id)
    await entry.first.wait_for(timeout=60_000)
    request_id = await entry.first.get_attribute("data-approval")
    assert request_id
    await entry.first.locator("h2 a").click()
    await page.wait_for_url(f"{session.url}/console/approvals/{request_id}")
    shot = page.locator("figure.shot img")
    await shot.wait_for()
    assert await shot.evaluate("img => img.complete && img.naturalWidth > 0")
    await page.get_by_label("Comment").fill(comment)
    await page.get_by_role("button", name="Approve").click()
    await page.wait_for_url(f"{session.url}/console/approvals/{request_id}")
    # Approved, or already taken up by the run (executing, executed): by her.
    assert "by ada" in await page.locator("#approval-state").inner_text()
    return request_id


async def pay_through_the_inbox(
    pool: BrowserPool, console: Console, shop: PortalServer
) -> tuple[str, list[str]]:
    """ada keeps the inbox open; a payment run starts and asks twice (Pay, Confirm payment);
    she approves both from the inbox. The run's id and the requests' ids."""
    inv = first_unpaid()
    async with browsing(pool, console, "ada") as session:
        page = session.page
        assert "No request is waiting" in await page.locator("#approval-list").inner_text()
        await page.evaluate("window.__sameDocument = true")
        run_id = await start(console, parse_task(pay_task(shop.url, inv), "pay.yaml"), "shop")
        # The request appears in the page already open: no reload, no navigation.
        await item(page, run_id).first.wait_for(timeout=60_000)
        assert await page.evaluate("window.__sameDocument") is True
        assert f"Pay {usd(inv)}" in await item(page, run_id).first.inner_text()
        assert await page.locator("#pending-count").inner_text() == "1"
        pay = await approve_in_the_inbox(session, run_id, "due today")
        await session.open(INBOX)
        confirm = await approve_in_the_inbox(session, run_id, "confirmed")
        assert confirm != pay
        result = await console.pool.wait(run_id)
        assert result is not None and result.status == "succeeded", result and result.error
        assert result.output == "Paid"
        # The request shows what happened, with the comment.
        await session.open(f"/console/approvals/{pay}")
        state = await page.locator("#approval-state").inner_text()
        assert "executed" in state and "ada" in state and "Comment: due today" in state
        assert "succeeded" in state
        await session.inert()
    return run_id, [pay, confirm]


async def test_a_payment_waits_in_the_inbox_is_approved_there_and_the_run_finishes(
    pool: BrowserPool, console: Console, shop: PortalServer
) -> None:
    run_id, requests = await pay_through_the_inbox(pool, console, shop)
    stored = [await console.rt.approvals.get(r) for r in requests]
    assert [(r.status, r.decided_by, r.comment) for r in stored] == [
        ("executed", "ada", "due today"),
        ("executed", "ada", "confirmed"),
    ]
    assert {r.run_id for r in stored} == {run_id}


async def test_the_runs_replay_steps_to_the_gated_step_with_the_approver(
    pool: BrowserPool, console: Console, shop: PortalServer
) -> None:
    run_id, _ = await pay_through_the_inbox(pool, console, shop)
    async with browsing(pool, console, "ada") as session:
        assert await session.open(f"/console/runs/{run_id}") == 200
        page = session.page
        links = page.locator("#timeline a[data-step]")
        await links.first.wait_for()
        gated = page.locator("section.step.gated").first
        number = await gated.get_attribute("data-step")
        assert number is not None
        shown = page.locator("section.step:not([hidden])")
        for _ in range(await links.count()):
            if await shown.get_attribute("id") == f"step-{number}":
                break
            await page.keyboard.press("ArrowRight")
        assert await shown.count() == 1
        assert await shown.get_attribute("id") == f"step-{number}"
        current = page.locator(f'#timeline a[data-step="{number}"]')
        assert await current.get_attribute("aria-current") == "step"
        text = await shown.inner_text()
        assert "ada" in text and "due today" in text
        await session.inert()


async def test_a_user_cannot_decide_nor_see_another_profiles_runs_or_requests(
    pool: BrowserPool, console: Console, shop: PortalServer
) -> None:
    rt = console.rt
    theirs = await start(
        console, parse_task(pay_task(shop.url, first_unpaid("bob")), "pay.yaml"), "mine"
    )
    other = await start(console, parse_task(pay_task(shop.url, first_unpaid()), "pay.yaml"), "shop")
    mine_request = await waiting(rt, theirs)
    shop_request = await waiting(rt, other)
    async with browsing(pool, console, "bob") as session:
        page = session.page
        await item(page, theirs).first.wait_for(timeout=30_000)
        html = await page.content()
        assert shop_request.id not in html and other not in html
        assert await session.open("/console/runs") == 200
        runs = await page.content()
        assert theirs in runs and other not in runs
        assert await session.open(f"/console/approvals/{shop_request.id}") == 404
        assert await session.open(f"/console/runs/{other}") == 404
        # His own profile's request: shown, without buttons.
        assert await session.open(f"/console/approvals/{mine_request.id}") == 200
        assert await page.get_by_role("button", name="Approve").count() == 0
        csrf = await page.locator("input[name=csrf]").first.input_value()
        # He crafts the decision himself, with his own session and CSRF token: refused.
        for request in (mine_request, shop_request):
            async with page.expect_navigation() as navigation:
                await page.evaluate(
                    """([action, fields]) => {
                        const form = document.createElement("form");
                        form.method = "post";
                        form.action = action;
                        for (const [name, value] of Object.entries(fields)) {
                            const input = document.createElement("input");
                            input.type = "hidden";
                            input.name = name;
                            input.value = value;
                            form.appendChild(input);
                        }
                        document.body.appendChild(form);
                        form.submit();
                    }""",
                    [
                        f"/console/approvals/{request.id}/decide",
                        {"csrf": csrf, "decision": "approve", "comment": "mine now"},
                    ],
                )
            response = await navigation.value
            assert response is not None and response.status == 403
            assert "Not allowed" in await page.locator("main").inner_text()
            await session.open(f"/console/approvals/{mine_request.id}")
    for request in (mine_request, shop_request):
        assert (await rt.approvals.get(request.id)).status == "pending"


def hostile_checkout(site: HostileSite) -> Task:
    """A checkout page whose title, button name and form value carry script payloads; the
    task clicks Pay (a payment: gated)."""
    payloads = " ".join(PAYLOADS)
    escaped = payloads.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
    site.page(
        "/checkout",
        f"<!doctype html><title>{escaped}</title><h1>Checkout</h1>"
        '<form method="post" action="/pay">'
        f'<label>Note <input name="note" value="{escaped}"></label>'
        f"<button type=submit>Pay {escaped} $5.00</button></form>",
    )
    return parse_task(
        {
            "name": "hostile-checkout",
            "start_url": f"{site.url}/checkout",
            "allowed_domains": ["127.0.0.1"],
            "steps": [
                {"goto": "/checkout"},
                {"click": {"role": "button", "name": "Pay"}},
            ],
        },
        "checkout.yaml",
    )


async def test_script_in_page_texts_stays_inert_in_the_inbox_and_on_the_request(
    pool: BrowserPool, console: Console
) -> None:
    with serve_site() as site:
        run_id = await start(console, hostile_checkout(site), "shop")
        request = await waiting(console.rt, run_id)
        assert PAYLOADS[0] in request.summary  # the page's words, as the run recorded them
        async with browsing(pool, console, "ada") as session:
            page = session.page
            entry = item(page, run_id).first
            await entry.wait_for(timeout=30_000)
            # Each text is shown as the page wrote it: text, not markup.
            assert await entry.locator("h2").inner_text() == request.summary
            await session.inert()
            await session.open(f"/console/approvals/{request.id}")
            assert await page.locator("h1").inner_text() == request.summary
            assert request.target and request.fields
            target = page.locator("dl.facts dd strong")
            assert await target.inner_text() == request.target["name"]
            values = page.locator('table.fields td[data-label="Value"]')
            assert await values.all_inner_texts() == [f["value"] for f in request.fields]
            for payload in PAYLOADS:
                assert payload in request.fields[0]["value"]
            await session.inert()
            await page.get_by_label("Comment").fill(" ".join(PAYLOADS))
            await page.get_by_role("button", name="Deny").click()
            await page.wait_for_url(f"{session.url}/console/approvals/{request.id}")
            comment = page.locator("#approval-state .comment")
            assert await comment.inner_text() == "Comment: " + " ".join(PAYLOADS)
            await session.open("/console/approvals?show=all")
            await session.inert()
        assert site.posts("/pay") == []


async def test_the_inbox_and_a_request_fit_a_phone(
    pool: BrowserPool, console: Console, shop: PortalServer
) -> None:
    inv = first_unpaid()
    # A long unbroken page address (the invoice opened from an emailed link) must wrap too.
    token = "Q2xpY2tlZEZyb21FbWFpbA" * 8
    long_url = {"goto": f"/invoices/{inv.number}?link={token}"}
    pay = {"click": {"role": "button", "name": f"Pay {usd(inv)}"}}
    task = parse_task(signed_in("pay-invoice", shop.url, long_url, pay), "pay.yaml")
    run_id = await start(console, task, "shop")
    request = await waiting(console.rt, run_id)
    assert request.page_url and token in request.page_url
    async with browsing(pool, console, "ada", viewport=PHONE) as session:
        page = session.page
        await item(page, run_id).first.wait_for(timeout=30_000)
        await session.fits()
        await item(page, run_id).first.locator("h2 a").click()
        await page.wait_for_url(f"{session.url}/console/approvals/{request.id}")
        shot = page.locator("figure.shot img")
        await shot.wait_for()
        box = await shot.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        await session.fits()
        approve = page.get_by_role("button", name="Approve")
        await approve.scroll_into_view_if_needed()
        assert await approve.is_visible()
        button = await approve.bounding_box()
        assert button is not None
        assert button["x"] >= 0 and button["x"] + button["width"] <= PHONE["width"]
        assert button["height"] >= 44  # a thumb's size
        await approve.click()
        await page.wait_for_url(f"{session.url}/console/approvals/{request.id}")
        assert "by ada" in await page.locator("#approval-state").inner_text()
        await session.fits()
