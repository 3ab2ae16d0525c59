"""Where a click lands: the gate reads the node at the click's point through the browser, and a
target that is not plainly clickable right now (covered, disabled, moving, off screen) waits as
Playwright's own click would. A page that lies to the quick path (its own ``elementFromPoint``,
``contains``, ``getAnimations``) gains nothing: what is at the point is what is classified and
clicked.

A model clicks by ref, and a ref's element is first looked for where the last observation saw it
(:func:`tools.snapshot.ref_spot`): the same pages are run that way too (``by_ref``), and a page
that swaps another element in at that spot after the observation has that element classified."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from runtime import RunResult, Runtime
from runtime.models import Message, ModelResponse
from runtime.testing import call, reply
from tests.support.agent import page_of, ref_of
from tests.support.approvals import requests_of
from tests.support.hostile import HostileSite, assert_asked_not_paid, run_model, run_steps

# A payment button stretched invisibly over the whole page, above everything.
_OVERLAY = (
    "<form method=post action=/pay style='position:fixed;inset:0;margin:0;z-index:9'>"
    "<button style='width:100%;height:100%;opacity:0'>Pay $100</button></form>"
)
_LIES = """<script>
Document.prototype.elementFromPoint = function () {
  return document.querySelector('#go');  // "the target is on top"
};
Node.prototype.contains = () => true;
Element.prototype.getAnimations = () => [];
</script>"""
_CONTINUE = "<button id=go onclick=\"document.title='went'\">Continue</button>"


def clicker(name: str, before: Any = None) -> Any:
    """A planner that clicks the button ``name`` by its ref once (awaiting ``before()`` first,
    if given), then is done."""

    async def decide(messages: list[Message], tools: Any) -> ModelResponse:
        if any(c.name == "click" for m in messages for c in m.tool_calls):
            return reply(call("done", result="clicked"))
        ref = ref_of(page_of(messages), "button", name)
        if before is not None:
            await before()
        return reply(call("click", ref=ref))

    return decide


async def click_button(
    hrt: Runtime, site: HostileSite, url: str, name: str, by_ref: bool, **task: Any
) -> RunResult:
    """Load ``url`` and click its button ``name``: by a scripted step, or by a model's ref."""
    if by_ref:
        return await run_model(hrt, site, url, clicker(name), **task)
    step = {"click": {"role": "button", "name": name}}
    return await run_steps(hrt, site, [{"goto": url}, step], **task)


async def asked_not_paid(
    hrt: Runtime, site: HostileSite, result: RunResult, by_ref: bool, words: str
) -> None:
    """A person was asked about ``words`` and nothing was paid (a scripted run ends denied; a
    model is told it was denied and goes on)."""
    if not by_ref:
        await assert_asked_not_paid(hrt, site, result, words)
        return
    asked = await requests_of(hrt, result)
    assert [words in a.summary for a in asked] == [True], [a.summary for a in asked]
    assert site.posts("/pay") == []


@pytest.fixture(params=[False, True], ids=["step", "by_ref"])
def by_ref(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


async def click_next(hrt: Runtime, site: HostileSite, url: str, by_ref: bool = False) -> None:
    """Load ``url`` and click its "Next" button: the run succeeds and the click led on."""
    result = await click_button(hrt, site, url, "Next", by_ref)
    assert result.status == "succeeded", result.error
    assert site.requests("GET", "/clicked"), "the click did not happen where the button rests"


async def test_a_covered_target_waits_and_the_cover_is_never_clicked(
    hrt: Runtime, site: HostileSite, by_ref: bool
) -> None:
    url = site.page("/cover", _CONTINUE + _OVERLAY)
    result = await click_button(hrt, site, url, "Continue", by_ref, step_timeout_s=1)
    if by_ref:  # the model is told, and gives up
        steps = await hrt.store.runs.list_steps(str(result.run_id))
        errors = [s.error or "" for s in steps if s.kind == "click"]
        assert any("did not become ready" in e for e in errors), errors
    else:
        assert result.status == "failed"
        assert "did not become ready" in (result.error or ""), result.error
    assert site.posts("/pay") == []


async def test_a_page_lying_about_what_is_on_top_gets_its_cover_classified(
    hrt: Runtime, site: HostileSite, by_ref: bool
) -> None:
    # The page says "Continue" is on top; the browser's hit test says the Pay button is, so the
    # Pay button is what the gate classifies (a payment: a person is asked) and what would be
    # clicked. Nobody approves, so nothing is paid.
    url = site.page("/lie", _CONTINUE + _OVERLAY + _LIES)
    result = await click_button(hrt, site, url, "Continue", by_ref)
    await asked_not_paid(hrt, site, result, by_ref, "Pay $100")


async def test_a_page_lying_about_where_its_target_is_gains_nothing(
    hrt: Runtime, site: HostileSite, by_ref: bool
) -> None:
    # The page says every element sits where its Pay button is (and that the target is on top
    # there): were its word taken, the click meant for Next would land on Pay. The browser's box
    # is what the click aims at, so Next is clicked where it is, and Pay is never touched.
    pay = (
        "<form method=post action=/pay><button id=pay style='position:fixed;left:0;top:0;"
        "width:200px;height:60px'>Pay $100</button></form>"
    )
    lies = (
        "<script>const real = Element.prototype.getBoundingClientRect;"
        "Element.prototype.getBoundingClientRect = function () {"
        "  return real.call(document.getElementById('pay')); };"
        "Document.prototype.elementFromPoint = function () {"
        "  return document.getElementById('b'); };"
        "</script>"
    )
    url = site.page(
        "/where",
        "<div style='height:300px'></div>"
        "<button id=b onclick=\"location.href='/clicked'\">Next</button>" + pay + lies,
    )
    await click_next(hrt, site, url, by_ref)
    assert site.posts("/pay") == []


async def test_a_disabled_target_is_clicked_once_it_is_enabled(
    hrt: Runtime, site: HostileSite, by_ref: bool
) -> None:
    url = site.page(
        "/later",
        "<button id=b disabled onclick=\"location.href='/clicked'\">Next</button>"
        "<script>setTimeout(() => { document.getElementById('b').disabled = false; }, 400);"
        "</script>",
    )
    await click_next(hrt, site, url, by_ref)  # not while it was disabled: that click does nothing


async def test_a_moving_target_is_clicked_where_it_comes_to_rest(
    hrt: Runtime, site: HostileSite, by_ref: bool
) -> None:
    url = site.page(
        "/moving",
        "<style>@keyframes slide { from { transform: translateX(600px); } to { transform: none; } }"
        "#b { animation: slide 0.5s ease-out; }</style>"
        "<button id=b onclick=\"location.href='/clicked'\">Next</button>",
    )
    await click_next(hrt, site, url, by_ref)


async def test_a_target_below_the_fold_is_scrolled_to_and_clicked(
    hrt: Runtime, site: HostileSite, by_ref: bool
) -> None:
    url = site.page(
        "/long",
        "<div style='height:3000px'>tall</div>"
        "<button onclick=\"location.href='/clicked'\">Next</button>",
    )
    await click_next(hrt, site, url, by_ref)


async def test_a_button_inside_a_shadow_root_is_clicked_and_classified(
    hrt: Runtime, site: HostileSite
) -> None:
    url = site.page(
        "/shadow",
        "<pay-widget></pay-widget><script>customElements.define('pay-widget', class extends "
        "HTMLElement { connectedCallback() { this.attachShadow({mode: 'open'}).innerHTML = "
        '"<form method=post action=/pay><button>Pay $100</button></form>"; } });</script>',
    )
    result = await run_steps(
        hrt, site, [{"goto": url}, {"click": {"role": "button", "name": "Pay $100"}}]
    )
    await assert_asked_not_paid(hrt, site, result, "Pay $100")


async def test_an_element_swapped_in_where_the_model_saw_its_target_is_checked_as_what_it_is(
    hrt: Runtime, site: HostileSite
) -> None:
    # After the page was observed (while the model thinks), the page hides its harmless Next and
    # puts a Next of a payment form exactly where it was. The click goes where the model saw its
    # target, so what is there now is what the gate classifies: a payment, and a person is asked.
    at = "position:absolute;left:100px;top:100px;width:120px;height:40px"
    url = site.page(
        "/swap",
        f"<button id=next style='{at}' onclick=\"location.href='/clicked'\">Next</button>"
        "<script>fetch('/go').then(() => {"
        "  document.getElementById('next').style.display = 'none';"
        "  document.body.insertAdjacentHTML('beforeend', \"<form method=post action=/pay>"
        f"<button style='{at}'>Next</button></form>\");"
        "  fetch('/swapped'); });</script>",
    )
    site.held["/go"] = go = threading.Event()

    async def swap() -> None:
        go.set()
        for _ in range(200):
            if site.requests("GET", "/swapped"):
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the page did not swap its button")

    try:
        result = await run_model(hrt, site, url, clicker("Next", before=swap))
    finally:
        go.set()
    await asked_not_paid(hrt, site, result, True, "Next")
    assert not site.requests("GET", "/clicked")
