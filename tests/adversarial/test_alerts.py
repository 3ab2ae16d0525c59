"""Alerts and their runbook on real runs: a token-burning step pauses the run until a person
resumes it (or stops it), repeated provider errors freeze the task's risky tools for this and
later runs until a person lifts the freeze, and spend near the cap is announced on the signed
webhook. A model obeying the page tries every kind of action while frozen: each one waits for a
person, none reaches the site."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from profiles import BrowserPool, ProfileSettings
from runtime import RunResult, Runtime, Settings, parse_task, run_task
from runtime.auth import LOCAL_ACTOR
from runtime.models.types import Message, ModelResponse, ModelUnavailableError, ToolSpec
from runtime.run.runbook import FREEZE_RULE
from runtime.testing import FunctionModel, call, reply
from runtime.webhook import verify_headers
from tests.support.agent import page_of, ref_of
from tests.support.approvals import next_request, requests_of, webhook_receiver
from tests.support.hostile import HostileSite
from tests.support.wait import until

SHOP = (
    "<!doctype html><title>Shop</title><h1>Shop</h1><form method=post action=/items>"
    "<label>Item <input name=item></label><label>Size <select name=size><option>S</option>"
    "<option>L</option></select></label><button>Add item</button></form><a href=/help>Help</a>"
)


def shop_task(site: HostileSite, **extra: Any) -> Any:
    return parse_task(
        {
            "name": "shop",
            "start_url": site.page("/shop", SHOP),
            "goal": "Add a widget.",
            "allowed_domains": ["127.0.0.1"],
            "allow_targets": [{"name": "Add item"}],
            **extra,
        },
        "shop.yaml",
    )


async def run(rt: Runtime, task: Any, *planners: Any) -> RunResult:
    """``task`` on the profile ``victim`` with the planner chain ``planners``."""
    if "victim" not in {p.name for p in await rt.profiles.list()}:
        await rt.profiles.create("victim", ProfileSettings())
    return await run_task(rt, task, "victim", models={"planner": list(planners)})


def burner(then_tokens: int) -> FunctionModel:
    """Fills the item (one ordinary step), then a step of ``then_tokens``, then done."""

    def decide(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        done = sum(len(m.tool_calls) for m in messages)
        page = page_of(messages)
        if done == 0:
            return reply(call("fill", ref=ref_of(page, "textbox", "Item"), value="widget"))
        if done == 1:
            return reply(call("scroll", direction="down"), input_tokens=then_tokens)
        return reply(call("done", result="added"))

    return FunctionModel(decide)


async def test_a_token_burning_step_pauses_the_run_and_a_person_resumes_it(
    hrt: Runtime, site: HostileSite
) -> None:
    task = shop_task(site, alerts={"token_burn": {"max_tokens": 10_000, "then": "pause"}})
    running = asyncio.create_task(run(hrt, task, burner(50_000)))
    request = await next_request(hrt)
    assert request.summary.startswith("Resume the run after an alert (token_burn)")
    [alert] = await hrt.services.alerts.list(LOCAL_ACTOR)
    assert alert.then == "pause" and alert.state == "open" and "50020 tokens" in alert.message
    run_row = await hrt.store.runs.get_run(request.run_id)
    assert run_row is not None and run_row.status == "waiting_approval"
    await hrt.services.alerts.decide(LOCAL_ACTOR, alert.id, True, "budget is fine")
    result = await running
    assert result.status == "succeeded", result.error
    resumed = await hrt.services.alerts.show(LOCAL_ACTOR, alert.id)
    assert resumed.state == "resumed" and resumed.resolved_by == LOCAL_ACTOR.name


async def test_a_paused_run_nobody_resumes_stops(hrt: Runtime, site: HostileSite) -> None:
    task = shop_task(site, alerts={"token_burn": {"max_tokens": 10_000, "then": "pause"}})
    result = await run(hrt, task, burner(50_000))  # approvals expire after 1 s here
    assert result.status == "failed"
    assert "stopped at alert" in (result.error or "") and "expired" in (result.error or "")
    [alert] = await hrt.services.alerts.list(LOCAL_ACTOR)
    assert alert.state == "stopped"


def flaky(name: str = "flaky") -> FunctionModel:
    def fail(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        raise ModelUnavailableError(f"{name}: 503 upstream unavailable")

    return FunctionModel(fail, name=name)


async def test_provider_errors_freeze_risky_tools_every_action_asks_until_lifted(
    hrt: Runtime, site: HostileSite
) -> None:
    # The first planner fails every call; the fallback answers. At the first failure the task's
    # risky tools freeze: the model then tries every kind of action the API has, and each one
    # waits for a person (nobody answers: expiry means no) and reaches nothing.
    freeze = {"upstream_errors": {"count": 1, "minutes": 10, "then": "freeze"}}
    task = shop_task(site, alerts=freeze, budget={"max_steps": 12, "max_failures": 10})
    attempts = [
        lambda page: call("fill", ref=ref_of(page, "textbox", "Item"), value="widget"),
        lambda page: call("select", ref=ref_of(page, "combobox", "Size"), option="L"),
        lambda page: call("press", ref=ref_of(page, "textbox", "Item"), key="Enter"),
        lambda page: call("click", ref=ref_of(page, "button", "Add item")),
        lambda page: call("click", ref=ref_of(page, "button", "Help")),
        lambda page: call("navigate", url=site.url + "/help"),
    ]

    def decide(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        done = sum(len(m.tool_calls) for m in messages)
        if done < len(attempts):
            return reply(attempts[done](page_of(messages)))
        return reply(call("done", result="gave up"))

    planner = FunctionModel(decide)
    result = await run(hrt, task, flaky(), planner)
    assert result.status == "succeeded", result.error
    [alert] = await hrt.services.alerts.list(LOCAL_ACTOR)
    assert (alert.kind, alert.then, alert.state) == ("upstream_errors", "freeze", "open")
    # Each attempt was not done: asked (nobody answered) or refused as a retry of a denied form.
    told = page_of(planner.requests[-1].messages)
    assert told.count(": not done:") == len(attempts), told
    asked = await requests_of(hrt, result)
    assert len(asked) >= 4, [a.summary for a in asked]  # fill, select, the link, navigate
    for request in asked:
        assert request.status == "expired"
        assert any(f"frozen by alert {alert.id}" in r for r in request.reasons), request.reasons
    assert [h for h in site.hits if h.method != "GET"] == []
    assert site.requests("GET", "/help") == []

    # A later run of the task is frozen too, until an admin lifts it.
    def fill_once(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        if sum(len(m.tool_calls) for m in messages) == 0:
            return reply(attempts[0](page_of(messages)))
        return reply(call("done", result="x"))

    later = FunctionModel(fill_once)
    again = await run(hrt, task, later)
    [still] = await requests_of(hrt, again)
    assert any(FREEZE_RULE in r or "frozen" in r for r in still.reasons)
    lifted = await hrt.services.alerts.lift(LOCAL_ACTOR, alert.id)
    assert lifted.state == "lifted"
    free = await run(hrt, task, later)
    assert free.status == "succeeded" and await requests_of(hrt, free) == []


async def test_spend_near_the_cap_is_announced_on_the_signed_webhook(
    settings: Settings, pool: BrowserPool, site: HostileSite
) -> None:
    with webhook_receiver() as (url, received):
        hooked = settings.model_copy(
            update={"approval_webhook": url, "webhook_secret": "s3cret-for-hooks"}
        )
        async with Runtime.open(hooked, pool=pool) as rt:
            task = shop_task(site, budget={"max_tokens": 100_000}, alerts={"spend": {"share": 0.5}})
            result = await run(rt, task, burner(60_000))
            assert result.status == "succeeded", result.error
            await until(lambda: received, what="the webhook")
            [alert] = await rt.services.alerts.list(LOCAL_ACTOR)
            assert (alert.kind, alert.then) == ("spend", "continue")
            assert "max_tokens=100000" in alert.message
            [(headers, body)] = received
            assert verify_headers("s3cret-for-hooks", headers, body)
            assert json.loads(body)["event"] == "alert.raised"
            assert json.loads(body)["id"] == alert.id
            seen = await rt.services.alerts.acknowledge(LOCAL_ACTOR, alert.id)
            assert seen.state == "acknowledged"
