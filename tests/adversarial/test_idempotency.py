"""Idempotent submissions across the attempts of a schedule's fire: a retry never sends again a
submission an earlier attempt sent, whether that attempt failed afterwards or died with the
request on the wire; and it does send one an earlier attempt never got out.

The page fights it the ways it can: a hidden token made anew on every visit, a submission sent by
a script's fetch instead of the form, the same form sent twice in one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import pytest

from profiles import ProfileSettings
from runtime import RunResult, Runtime, parse_task, run_task
from runtime.auth import LOCAL_ACTOR
from runtime.errors import StoreBusyError
from runtime.models.types import Message, ModelResponse, ToolSpec
from runtime.records import RunSource, StepRecord
from runtime.store.effects import EffectRow
from runtime.testing import FunctionModel, call, reply
from tests.support.agent import page_of, ref_of
from tests.support.approvals import next_request, requests_of
from tests.support.hostile import HostileSite, run_steps
from tests.support.wait import until

# A fresh hidden token on every visit, as portals' CSRF fields are.
_NONCE = "<script>document.querySelector('[name=csrf]').value = String(Math.random());</script>"


def item_form(how: str, extra: str = "", button: str = "Add item") -> str:
    """A form that posts to /items, as a form or by a script's fetch."""
    if how == "form":
        form = (
            "<form method=post action=/items><input type=hidden name=csrf>"
            f"<label>Item <input name=item></label><button>{button}</button></form>"
        )
        return f"<!doctype html><title>Shop</title>{form}{_NONCE}{extra}"
    script = (
        "<script>document.querySelector('button').addEventListener('click', () => "
        "fetch('/items', {method: 'POST', body: document.querySelector('[name=item]').value})"
        ".then(() => document.body.insertAdjacentHTML('beforeend', '<p>Added</p>')));</script>"
    )
    return (
        "<!doctype html><title>Shop</title><label>Item <input name=item></label>"
        f"<button type=button>{button}</button>{script}{extra}"
    )


CONTINUE = "<a href=/done>Continue</a>"


def steps(url: str, adds: int = 1) -> list[Any]:
    order = [
        {"fill": {"label": "Item", "value": "widget"}},
        {"click": {"role": "button", "name": "Add item"}},
    ]
    return [{"goto": url}, *(order * adds), {"click": {"text": "Continue"}}]


async def attempt(
    rt: Runtime, site: HostileSite, url: str, n: int, *, fire: str = "fire-1", adds: int = 1
) -> RunResult:
    return await run_steps(
        rt,
        site,
        steps(url, adds),
        name="shop",
        allow_targets=[{"name": "Add item"}],
        step_timeout_s=1.5,
        source=RunSource(schedule="nightly", fire_id=fire, attempt=n),
    )


async def retried(rt: Runtime, site: HostileSite, url: str, status: str) -> StepRecord:
    """Attempt 2 of fire-1 succeeds, the item reached the site once in all, and the attempt's
    submit step ended ``status``: that step."""
    second = await attempt(rt, site, url, 2)
    assert second.status == "succeeded", second.error
    assert len(site.posts("/items")) == 1, "the item was sent twice, or never"
    [step] = await submit_steps(rt, second)
    assert step.status == status
    return step


async def items(rt: Runtime, fire: str) -> list[EffectRow]:
    """The fire's submissions of the item form (a click on a link can be one too)."""
    return [e for e in await rt.store.effects.of_fire(fire) if e.target == "button Add item"]


async def submit_steps(rt: Runtime, result: RunResult) -> list[StepRecord]:
    steps = await rt.store.runs.list_steps(str(result.run_id))
    return [s for s in steps if s.kind == "click" and s.target and "Add item" in s.target]


@pytest.mark.parametrize("how", ["form", "fetch"])
async def test_a_retry_does_not_send_again_what_a_failed_attempt_sent(
    hrt: Runtime, site: HostileSite, how: str
) -> None:
    url = site.page("/shop", item_form(how))
    first = await attempt(hrt, site, url, 1)
    # Attempt 1 sent the item, then failed: no Continue link where it ended up.
    assert first.status == "failed", first.error
    assert len(site.posts("/items")) == 1
    # The retry finds the link on the shop page (the item is not placed again, so it stays).
    site.page("/shop", item_form(how, CONTINUE))
    skipped = await retried(hrt, site, url, "skipped")
    note = (skipped.detail or {})["idempotency"]
    assert note["run"] == first.run_id and note["attempt"] == 1 and note["sent_at"]
    [effect] = await items(hrt, "fire-1")
    assert (effect.state, effect.run_id, effect.attempt) == ("sent", first.run_id, 1)


async def test_a_retry_after_a_crash_with_the_order_on_the_wire_does_not_send_it_again(
    hrt: Runtime, site: HostileSite
) -> None:
    # The server holds its answer; the run is killed while the item is in flight.
    site.held["/items"] = release = threading.Event()
    url = site.page("/shop", item_form("form"))
    run = asyncio.create_task(attempt(hrt, site, url, 1))
    try:
        await until(lambda: len(site.posts("/items")) == 1, what="the item on the wire")
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
    finally:
        release.set()
    [effect] = await items(hrt, "fire-1")
    assert effect.state == "sent", "the item left the browser but the store does not say so"
    site.page("/shop", item_form("form", CONTINUE))
    await retried(hrt, site, url, "skipped")


async def test_what_an_attempt_never_sent_is_sent_by_the_retry(
    hrt: Runtime, site: HostileSite
) -> None:
    # Attempt 1's page swallows the submit (nothing leaves the browser): the retry places it.
    swallow = "<script>document.forms[0].addEventListener('submit', e => e.preventDefault())"
    url = site.page("/shop", item_form("form", swallow + "</script>"))
    first = await attempt(hrt, site, url, 1)
    assert first.status == "failed"
    assert site.posts("/items") == []
    [effect] = await items(hrt, "fire-1")
    assert effect.state == "unsent"
    site.page("/shop", item_form("form"))
    site.page("/items", f"<!doctype html><title>Thanks</title>{CONTINUE}")
    await retried(hrt, site, url, "ok")


async def test_each_fire_and_each_occurrence_has_its_own_key(
    hrt: Runtime, site: HostileSite
) -> None:
    # Two adds of the same item in one run are two submissions; another fire is another.
    url = site.page("/shop", item_form("fetch"))
    first = await attempt(hrt, site, url, 1, adds=2)
    assert first.status == "failed"
    assert len(site.posts("/items")) == 2
    site.page("/shop", item_form("fetch", CONTINUE))
    retry = await attempt(hrt, site, url, 2, adds=2)
    assert retry.status == "succeeded", retry.error
    assert len(site.posts("/items")) == 2
    assert [s.status for s in await submit_steps(hrt, retry)] == ["skipped", "skipped"]
    other = await attempt(hrt, site, url, 1, fire="fire-2", adds=2)
    assert other.status == "succeeded", other.error
    assert len(site.posts("/items")) == 4
    effects = await items(hrt, "fire-1")
    assert sorted(e.n for e in effects) == [1, 2] and len({e.key for e in effects}) == 1


async def test_a_run_started_by_hand_has_no_key(hrt: Runtime, site: HostileSite) -> None:
    url = site.page("/shop", item_form("form", CONTINUE))
    site.page("/items", f"<!doctype html><title>Thanks</title>{CONTINUE}")
    for _ in range(2):
        result = await run_steps(
            hrt, site, steps(url), name="shop", allow_targets=[{"name": "Add item"}]
        )
        assert result.status == "succeeded", result.error
    assert len(site.posts("/items")) == 2


async def test_an_approved_payment_a_retry_meets_is_not_asked_about_again(
    hrt: Runtime, site: HostileSite
) -> None:
    # A person approved the payment in attempt 1, which sent it and then failed. The retry
    # neither pays again nor asks anyone about it.
    url = site.page("/shop", item_form("form", button="Pay now"))
    run_steps_of = [
        {"goto": url},
        {"fill": {"label": "Item", "value": "invoice 7"}},
        {"click": {"role": "button", "name": "Pay now"}},
        {"click": {"text": "Continue"}},
    ]

    async def approve() -> None:
        request = await next_request(hrt)
        await hrt.services.approvals.decide(LOCAL_ACTOR, request.id, True, "pay it")

    source = RunSource(schedule="nightly", fire_id="fire-9", attempt=1)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(approve())
        first = await run_steps(hrt, site, run_steps_of, step_timeout_s=1.5, source=source)
    assert first.status == "failed", first.error
    assert len(site.posts("/items")) == 1
    site.page("/shop", item_form("form", CONTINUE, button="Pay now"))
    retry = RunSource(schedule="nightly", fire_id="fire-9", attempt=2)
    second = await run_steps(hrt, site, run_steps_of, step_timeout_s=1.5, source=retry)
    assert second.status == "succeeded", second.error
    assert len(site.posts("/items")) == 1
    assert await requests_of(hrt, second) == [], "a person was asked about a skipped payment"


async def test_a_model_retrying_the_fire_is_told_it_was_sent_and_cannot_send_it(
    hrt: Runtime, site: HostileSite
) -> None:
    # The planner of each attempt fills the form and clicks Add item, as models do.
    url = site.page("/shop", item_form("fetch"))
    task = parse_task(
        {
            "name": "shop",
            "start_url": url,
            "goal": "Add a widget.",
            "allowed_domains": ["127.0.0.1"],
            "allow_targets": [{"name": "Add item"}],
        },
        "shop.yaml",
    )
    await hrt.profiles.create("victim", ProfileSettings())
    planners = []
    for n in (1, 2):

        def decide(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
            page, done = page_of(messages), sum(len(m.tool_calls) for m in messages)
            if done == 0:
                return reply(call("fill", ref=ref_of(page, "textbox", "Item"), value="widget"))
            if done == 1:
                return reply(call("click", ref=ref_of(page, "button", "Add item")))
            return reply(call("done", result="added"))

        planner = FunctionModel(decide)
        planners.append(planner)
        source = RunSource(schedule="nightly", fire_id="fire-3", attempt=n)
        result = await run_task(hrt, task, "victim", models={"planner": [planner]}, source=source)
        assert result.status == "succeeded", result.error
    assert len(site.posts("/items")) == 1
    told = page_of(planners[1].requests[-1].messages)
    assert "not done again: an earlier attempt of this scheduled run already sent it" in told


async def test_a_submission_that_cannot_be_recorded_as_sent_is_not_sent(
    hrt: Runtime, site: HostileSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store fails at the moment the request would leave: the request is held (a retry
    # could not know it was sent), and the step says so.
    async def unreachable(*_: object) -> bool:
        raise StoreBusyError("the store is busy")

    monkeypatch.setattr(hrt.store.effects, "sent", unreachable)
    url = site.page("/shop", item_form("fetch"))
    result = await attempt(hrt, site, url, 1)
    assert result.status == "failed"
    assert site.posts("/items") == []
    [step] = await submit_steps(hrt, result)
    [held] = (step.detail or {})["held_requests"]
    assert "could not be recorded as sent" in held["reason"]
    [effect] = await items(hrt, "fire-1")
    assert effect.state == "unsent"


async def test_a_retry_signs_in_again_but_does_not_send_the_item_again(
    hrt: Runtime, site: HostileSite
) -> None:
    # Signing in is a submission too, but a retry needs its own session: it signs in again,
    # and still does not repeat what the first attempt sent.
    login = site.page(
        "/login",
        "<!doctype html><title>Sign in</title><form method=post action=/session>"
        "<label>Password <input type=password name=pw></label><button>Sign in</button></form>",
    )
    site.page("/session", "<!doctype html><title>Welcome</title><p>Signed in</p>")
    shop = site.page("/shop", item_form("form"))
    await hrt.profiles.create("victim", ProfileSettings())
    await hrt.vault.set("shop.pw", "s3cret-shop-pw", [site.url], ["victim"])
    flow = [
        {"goto": login},
        {"fill": {"label": "Password", "value": "{{secret:shop.pw}}"}},
        {"click": {"role": "button", "name": "Sign in"}},
        *steps(shop),
    ]

    async def attempt_n(n: int) -> RunResult:
        return await run_steps(
            hrt,
            site,
            flow,
            name="shop",
            secrets=["shop.pw"],
            allow_targets=[{"name": "Add item"}],
            step_timeout_s=1.5,
            source=RunSource(schedule="nightly", fire_id="fire-7", attempt=n),
        )

    assert (await attempt_n(1)).status == "failed"
    site.page("/shop", item_form("form", CONTINUE))
    second = await attempt_n(2)
    assert second.status == "succeeded", second.error
    assert len(site.posts("/session")) == 2, "the retry did not sign in again"
    assert len(site.posts("/items")) == 1
