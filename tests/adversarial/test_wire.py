"""The wire backstop: a state-changing request the page sends without an action the gate allowed
for it is held at the browser context and never reaches the server."""

from __future__ import annotations

import asyncio
from typing import Any

from profiles import ProfileSettings, WireGuard, WireRequest, allow_all
from profiles.wire import OUTSIDE
from runtime import Runtime, parse_task, run_task
from runtime.auth import LOCAL_ACTOR
from runtime.models import Message, ModelResponse, ToolSpec
from runtime.testing import FunctionModel, call, reply
from tests.support.agent import page_of, ref_of
from tests.support.approvals import next_request
from tests.support.hostile import HostileSite, run_steps

# Marks the page once its request was tried, so a step can wait for that instead of for time.
_TRIED = "document.body.insertAdjacentHTML('beforeend', '<p id=tried>tried</p>')"


def _page(script: str, body: str = "<h1>Account</h1><p>Welcome back.</p>") -> str:
    return f"<!doctype html><title>Account</title>{body}<script>{script}</script>"


def _send(method: str, path: str) -> str:
    """JS: send one request, then mark the page (whether it was sent or refused)."""
    return (
        f"fetch({path!r}, {{method: {method!r}, body: 'amount=100'}})"
        f".catch(() => null).finally(() => {_TRIED})"
    )


async def _held(rt: Runtime, run_id: str | None) -> list[dict[str, Any]]:
    steps = await rt.store.runs.list_steps(str(run_id))
    return [h for s in steps for h in (s.detail or {}).get("held_requests", [])]


def _state_changing(site: HostileSite) -> list[Any]:
    return [h for h in site.hits if h.method not in ("GET", "HEAD", "OPTIONS")]


async def test_a_timer_post_after_load_is_not_sent(hrt: Runtime, site: HostileSite) -> None:
    url = site.page(
        "/account",
        _page(f"onload = () => setTimeout(() => {_send('POST', '/api/pay')}, 1000)"),
    )
    result = await run_steps(hrt, site, [{"goto": url}, {"wait_for": {"css": "#tried"}}])
    assert result.status == "succeeded", result.error
    assert site.posts() == []
    held = await _held(hrt, result.run_id)
    assert [(h["method"], h["url"]) for h in held] == [("POST", site.url + "/api/pay")]


async def test_a_script_posting_while_no_action_may_submit_is_held(
    hrt: Runtime, site: HostileSite
) -> None:
    # Hovering starts no submission: an innocent-looking POST the page sends then is its own.
    url = site.page(
        "/notes",
        _page(
            f"document.querySelector('h1').addEventListener('mouseover', () => "
            f"{_send('POST', '/api/notes')})"
        ),
    )
    steps = [{"goto": url}, {"hover": {"css": "h1"}}, {"wait_for": {"css": "#tried"}}]
    result = await run_steps(hrt, site, steps)
    assert result.status == "succeeded", result.error
    assert site.posts() == []
    held = await _held(hrt, result.run_id)
    assert [h["url"] for h in held] == [site.url + "/api/notes"]
    assert held[0]["reason"] == "sent during hover, which submits nothing"


async def test_show_details_that_posts_a_payment_is_held(hrt: Runtime, site: HostileSite) -> None:
    url = site.page(
        "/invoice",
        _page(
            f"document.querySelector('button').onclick = () => {_send('POST', '/api/pay')}",
            "<h1>Invoice 7</h1><button>Show details</button>",
        ),
    )
    steps = [
        {"goto": url},
        {"click": {"role": "button", "name": "Show details"}},
        {"wait_for": {"css": "#tried"}},
    ]
    result = await run_steps(hrt, site, steps)
    assert result.status == "succeeded", result.error
    assert site.posts() == []
    held = await _held(hrt, result.run_id)
    assert len(held) == 1 and "looks like a payment" in held[0]["reason"]


async def test_put_and_delete_by_fetch_are_held(hrt: Runtime, site: HostileSite) -> None:
    url = site.page(
        "/profile",
        _page(
            "document.querySelector('h1').onmouseover = () => "
            f"{_send('PUT', '/api/profile')};"
            "document.querySelector('button').onclick = () => "
            f"{_send('DELETE', '/api/account')}",
            "<h1>Profile</h1><button>Show details</button>",
        ),
    )
    steps = [
        {"goto": url},
        {"hover": {"css": "h1"}},
        {"wait_for": {"css": "#tried"}},
        {"click": {"role": "button", "name": "Show details"}},
        {"wait_for": {"css": "#tried >> nth=1"}},
    ]
    result = await run_steps(hrt, site, steps)
    assert result.status == "succeeded", result.error
    assert _state_changing(site) == []
    held = await _held(hrt, result.run_id)
    assert [(h["method"], h["url"].removeprefix(site.url)) for h in held] == [
        ("PUT", "/api/profile"),
        ("DELETE", "/api/account"),
    ]
    assert "looks like a deletion" in held[1]["reason"]


async def test_a_login_form_post_goes_through(hrt: Runtime, site: HostileSite) -> None:
    url = site.page(
        "/login",
        "<!doctype html><title>Sign in</title><form method=post action=/session>"
        "<label>User <input name=user></label><label>Password <input type=password name=pw>"
        "</label><button>Sign in</button></form>",
    )
    steps = [
        {"goto": url},
        {"fill": {"label": "User", "value": "bob"}},
        {"click": {"role": "button", "name": "Sign in"}},
    ]
    result = await run_steps(hrt, site, steps)
    assert result.status == "succeeded", result.error
    assert [h.body for h in site.posts("/session")] == ["user=bob&pw="]
    assert await _held(hrt, result.run_id) == []


async def test_an_approved_action_sends_what_it_sends(rt: Runtime, site: HostileSite) -> None:
    url = site.page(
        "/invoice",
        "<!doctype html><title>Invoice</title><form method=post action=/pay>"
        "<p>Invoice 7: $100</p><button>Pay $100</button></form><script>"
        "document.querySelector('button').addEventListener('click', () => "
        "navigator.sendBeacon('/api/audit', 'pay'))</script>",
    )
    steps = [{"goto": url}, {"click": {"role": "button", "name": "Pay $100"}}]

    async def approve() -> None:
        request = await next_request(rt)
        await rt.services.approvals.decide(LOCAL_ACTOR, request.id, True, "yes, pay it")

    async with asyncio.TaskGroup() as tg:
        tg.create_task(approve())
        result = await run_steps(rt, site, steps)
    assert result.status == "succeeded", result.error
    assert len(site.posts("/pay")) == 1 and len(site.posts("/api/audit")) == 1
    assert await _held(rt, result.run_id) == []


async def test_the_model_is_told_a_request_was_held(rt: Runtime, site: HostileSite) -> None:
    url = site.page(
        "/invoice",
        _page(
            f"document.querySelector('button').onclick = () => {_send('POST', '/api/pay')}",
            "<h1>Invoice 7</h1><button>Show details</button><div id=out></div>",
        ),
    )
    await rt.profiles.create("victim", ProfileSettings())
    clicked: list[str] = []

    def decide(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        page = page_of(messages)
        if not clicked:
            clicked.append(page)
            return reply(call("click", ref=ref_of(page, "button", "Show details")))
        if "tried" not in page.split("Current page:")[-1]:
            return reply(call("wait_for", css="#tried"))
        return reply(call("done", result="ok"))

    planner = FunctionModel(decide)
    task = parse_task({"name": "look", "goal": "Look at invoice 7.", "start_url": url}, "t.yaml")
    result = await run_task(rt, task, "victim", models={"planner": [planner]})
    assert result.status == "succeeded", result.error
    assert site.posts() == []
    told = page_of(planner.requests[-1].messages)
    assert "the page tried to send POST /api/pay; held and not sent: looks like a payment" in told


async def test_between_actions_nothing_state_changing_goes_out() -> None:
    guard = WireGuard(grace_s=0)
    post = WireRequest("POST", "http://portal.test/api/notes", "http://portal.test/", "fetch")
    get = WireRequest("GET", "http://portal.test/api/notes", "http://portal.test/", "fetch")
    assert guard.decide(post) == OUTSIDE and guard.decide(get) is None
    async with guard.window(allow_all):
        assert guard.decide(post) is None
    assert guard.decide(post) == OUTSIDE


async def test_every_way_out_of_a_page_is_held(hrt: Runtime, site: HostileSite) -> None:
    # A beacon, an XHR, a worker's fetch, a frame's fetch and a scripted form post, all while
    # the run only hovers.
    worker = (
        "fetch(location.origin + '/api/worker', {method: 'POST', body: 'x'})"
        ".finally(() => postMessage(1))"
    )
    script = f"""
    const mark = (id) => document.body.insertAdjacentHTML('beforeend', `<p id=${{id}}>x</p>`);
    document.querySelector('h1').onmouseover = () => {{
      navigator.sendBeacon('/api/beacon', 'x'); mark('beacon');
      const xhr = new XMLHttpRequest(); xhr.open('POST', '/api/xhr');
      xhr.onloadend = () => mark('xhr'); xhr.send('x');
      const w = new Worker(window.URL.createObjectURL(new Blob([{worker!r}])));
      w.onmessage = () => mark('worker');
      const f = document.createElement('iframe');
      f.srcdoc = "<script>fetch('/api/frame', {{method: 'POST'}})" +
        ".finally(() => parent.postMessage('frame', '*'))</scr" + "ipt>";
      onmessage = (e) => e.data === 'frame' && mark('frame');
      document.body.append(f);
    }};
    """
    url = site.page("/out", _page(script, "<h1>Out</h1>"))
    steps: list[dict[str, Any]] = [{"goto": url}, {"hover": {"css": "h1"}}]
    steps += [
        {"wait_for": {"css": f"#{m}", "state": "attached"}}
        for m in ("beacon", "xhr", "worker", "frame")
    ]
    result = await run_steps(hrt, site, steps)
    assert result.status == "succeeded", result.error
    assert _state_changing(site) == []
    held = {h["url"].removeprefix(site.url) for h in await _held(hrt, result.run_id)}
    assert held >= {"/api/xhr", "/api/worker", "/api/frame"}
