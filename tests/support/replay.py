"""What the review, replay and console run-page tests share: recorded runs that explain
themselves, a hostile page whose words carry markup, a payment decided by a person, and a
replay opened in real Chromium."""

from __future__ import annotations

import asyncio
import html
import io
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from PIL import Image
from playwright.async_api import Page

from profiles import BrowserPool, ProfileSettings
from runtime import RunResult, Runtime, parse_task, run_task
from runtime.auth import LOCAL_ACTOR, Actor
from runtime.demo.portal import USERS
from runtime.demo.portal.data import Invoice
from runtime.models import Message, ModelResponse, ModelUnavailableError, ToolSpec
from runtime.testing import FunctionModel, call, reply
from tests.support.agent import login_then, page_of
from tests.support.approvals import next_request
from tests.support.demo import pay_task
from tests.support.hostile import HostileSite

__all__ = [
    "PAYLOADS",
    "REASON",
    "assert_inert",
    "explained_run",
    "goal",
    "hostile_pages",
    "hostile_run",
    "opened",
    "outside_jpeg",
    "paid_run",
    "screenshot_files",
    "shown_step",
]

PAYLOADS = [
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1">',
    '"><svg onload=window.__pwned=1>',
    '\'><iframe srcdoc="<script>parent.__pwned=1</script>"></iframe>',
    "</textarea></pre><script>window.__pwned=1</script>",
]
"""Markup that runs a script wherever it is not escaped (each sets ``window.__pwned``)."""

REASON = "The Sign in button submits the form I filled."


def _signing_in(finish: Any) -> Any:
    """A planner that signs in as alice (saying why it clicks), then calls ``finish(page)``."""
    return login_then(finish, text=REASON, input_tokens=1000, output_tokens=50)


def _count_unpaid(page: str) -> ModelResponse:
    found = re.search(r"Unpaid invoices: ?(\d+)", page)
    assert found, page
    return reply(call("done", result={"unpaid": int(found.group(1))}))


def _down(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
    raise ModelUnavailableError("503 from upstream")


def goal(start_url: str, **extra: Any) -> Any:
    """A goal task that reports an object."""
    return parse_task(
        {
            "name": extra.pop("name", "goal"),
            "start_url": start_url,
            "goal": "Report how many unpaid invoices the account has.",
            "output_schema": {"type": "object"},
            **extra,
        },
        "goal.yaml",
    )


async def explained_run(rt: Runtime, portal: str, profile: str = "alice") -> RunResult:
    """A goal run on the demo portal as alice (profile ``profile``, password in the vault): a
    planner that is down fails every call, its fallback
    (``fake:priced``, with a price) signs in and reports the unpaid invoices."""
    if profile not in {p.name for p in await rt.profiles.list()}:
        await rt.profiles.create(profile, ProfileSettings(vars={"user": "alice"}))
    await rt.vault.set("alice.password", USERS["alice"].password, [portal], [profile])
    (rt.settings.home / "corral.toml").write_text(
        '[prices."fake:priced"]\ninput = 1.0\noutput = 2.0\n'
    )
    down = FunctionModel(_down, name="down")
    planner = FunctionModel(_signing_in(_count_unpaid), name="priced")
    task = goal(f"{portal}/dashboard", secrets=["alice.password"])
    result = await run_task(rt, task, profile, models={"planner": [down, planner]})
    assert result.status == "succeeded", result.error
    return result


def hostile_pages(site: HostileSite) -> str:
    """A page whose title and link carry the payloads, leading to a table of them; its URL."""
    words = " ".join(PAYLOADS)
    cells = "".join(
        f"<tr><td>{html.escape(p)}</td><td>{i}</td></tr>" for i, p in enumerate(PAYLOADS)
    )
    site.page(
        "/rows",
        f"<!doctype html><title>{html.escape(words)}</title><h1>Rows</h1>"
        f"<table><caption>Rows</caption><thead><tr><th>Name</th><th>N</th></tr></thead>"
        f"<tbody>{cells}</tbody></table>",
    )
    return site.page(
        "/hostile",
        f"<!doctype html><title>Start: {html.escape(words)}</title><h1>Start</h1>"
        f'<p><a href="/rows" style="display:block">{html.escape(words)}</a></p>',
    )


def _hostile_planner(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
    page = page_of(messages).split("Current page:")[-1]
    if "# Rows" in page:
        return reply(call("done", result={"rows": PAYLOADS}), text=PAYLOADS[0])
    found = re.search(r"\[(e\d+)\]", page)
    assert found, page
    return reply(call("click", ref=found.group(1)), text=f"I open {PAYLOADS[1]}")


async def hostile_run(rt: Runtime, site: HostileSite, profile: str = "victim") -> RunResult:
    """A goal run that reads the hostile page, clicks its link and reports its cells."""
    start = hostile_pages(site)
    if profile not in {p.name for p in await rt.profiles.list()}:
        await rt.profiles.create(profile, ProfileSettings())
    planner = FunctionModel(_hostile_planner, name="reader")
    result = await run_task(rt, goal(start, name="hostile"), profile, models={"planner": [planner]})
    assert result.status == "succeeded", result.error
    return result


async def paid_run(
    rt: Runtime, portal: str, inv: Invoice, comment: str, actor: Actor = LOCAL_ACTOR
) -> RunResult:
    """alice pays ``inv`` on ``portal``; ``actor`` approves both gated clicks with ``comment``."""
    task = parse_task(pay_task(portal, inv), "pay.yaml")
    run = asyncio.create_task(run_task(rt, task, "alice"))
    pay = await next_request(rt)
    await rt.services.approvals.decide(actor, pay.id, True, comment)
    confirm = await next_request(rt, besides=pay)
    await rt.services.approvals.decide(actor, confirm.id, True, comment)
    result = await run
    assert result.status == "succeeded", result.error
    return result


@asynccontextmanager
async def opened(pool: BrowserPool, url: str) -> AsyncIterator[tuple[Page, list[str]]]:
    """A fresh Chromium page at ``url``, and the dialogs it opened (each dismissed)."""
    browser = await pool.browser()
    context = await browser.new_context()
    dialogs: list[str] = []
    try:
        page = await context.new_page()

        async def dismiss(dialog: Any) -> None:
            dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", dismiss)
        await page.goto(url)
        yield page, dialogs
    finally:
        await context.close()


async def shown_step(page: Page) -> str:
    """The number of the step shown (and checks that exactly one is shown, its link current)."""
    shown = await page.eval_on_selector_all(
        "section.step", "all => all.filter(s => !s.hidden).map(s => s.dataset.step)"
    )
    current = await page.eval_on_selector_all(
        "#timeline a[aria-current='step']", "all => all.map(a => a.dataset.step)"
    )
    assert len(shown) == 1 and current == shown, (shown, current)
    return str(shown[0])


async def assert_inert(page: Page, dialogs: list[str]) -> None:
    """Step through every step: no payload ran, and each is shown as text."""
    total = await page.locator("section.step").count()
    await page.keyboard.press("Home")
    seen = ""
    for _ in range(total):
        seen += await page.locator("section.step:not([hidden])").inner_text()
        await page.keyboard.press("ArrowRight")
    seen += await page.locator("#output").inner_text()
    assert await page.evaluate("() => window.__pwned") is None
    assert await page.evaluate("() => document.querySelectorAll('iframe, svg[onload]').length") == 0
    assert dialogs == []
    for payload in PAYLOADS:
        assert payload in seen, payload


def outside_jpeg(path: Path, color: str) -> Path:
    """A small JPEG at ``path`` (somewhere a run's records must not lead to)."""
    data = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(data, format="JPEG")
    path.write_bytes(data.getvalue())
    return path


def screenshot_files(run_dir: Path) -> list[Path]:
    """Every step screenshot a run folder holds."""
    return sorted((run_dir / "steps").glob("*.jpg"))
