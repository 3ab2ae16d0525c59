"""The agent loop in real Chromium on the demo portal, driven by the fake models of
runtime.testing: success, budget, loops, invalid calls, vision routing, shadow, fallback."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from profiles import ProfileSettings
from runtime import Runtime, parse_task, run_task
from runtime.auth import LOCAL_ACTOR
from runtime.errors import StepFailedError
from runtime.models import Message, ModelResponse, ModelUnavailableError, Price, ToolSpec
from runtime.testing import FunctionModel, ScriptedModel, call, reply
from tests.support.agent import goal_task, login_then, page_of, ref_of
from tests.support.approvals import next_request
from tests.support.cli import corral
from tests.support.demo import make_demo_profiles

UNPAID_ALICE = 6


def unpaid_count(page: str) -> ModelResponse:
    m = re.search(r"Unpaid invoices: ?(\d+)", page)
    assert m, page
    return reply(call("done", result={"unpaid": int(m.group(1))}))


async def test_goal_task_succeeds_and_every_call_is_recorded(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    planner = FunctionModel(login_then(unpaid_count), name="planner")
    result = await run_task(rt, goal_task(portal), "alice", models={"planner": [planner]})
    assert result.status == "succeeded", result.error
    assert result.output == {"unpaid": UNPAID_ALICE}
    steps = await rt.store.runs.list_steps(str(result.run_id))
    assert [s.kind for s in steps] == ["navigate", "fill", "fill", "click"]
    assert steps[-1].detail["model"] == "fake:planner"
    # Each model step explains itself: the element by role and name beside the model's ref,
    # the call as the model made it, and the page the planner saw around that element.
    signing = steps[3].detail
    assert {k: signing["target"][k] for k in ("role", "name")} == {
        "role": "button",
        "name": "Sign in",
    }
    assert f"[{signing['target']['ref']}]" in signing["excerpt"]
    assert signing["call"] == f'click({{"ref": "{signing["target"]["ref"]}"}})'
    typed = steps[2].detail
    assert typed["target"]["role"] == "textbox" and typed["target"]["name"] == "Password"
    assert "{{secret:alice.password}}" in typed["call"]
    assert "alice-pw-1" not in json.dumps([s.model_dump(mode="json") for s in steps])
    calls = await rt.store.runs.list_model_calls(str(result.run_id))
    assert [c.role for c in calls] == ["planner"] * 4 and all(c.outcome == "ok" for c in calls)
    assert result.tokens == sum(c.input_tokens + c.output_tokens for c in calls) > 0
    # The model saw a placeholder, never the password (the snapshot prints it in clear).
    bodies = "".join(r.body() for r in planner.requests)
    assert "alice-pw-1" not in bodies


async def test_budget_cap_stops_before_overspending(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    rt_prices = {"fake:pricey": Price(input=0, output=200)}  # $0.2048 a call by estimate

    def scroll_forever(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        return reply(call("scroll", direction="down"), output_tokens=1000)

    planner = FunctionModel(scroll_forever, name="pricey")
    task = goal_task(portal, budget={"max_usd": 0.5, "max_steps": 20})
    from runtime.models import load_models_config

    config = load_models_config(rt.settings.home)
    config.prices.update(rt_prices)
    (rt.settings.home / "corral.toml").write_text(
        '[prices."fake:pricey"]\ninput = 0\noutput = 200\n'
    )
    result = await run_task(rt, task, "alice", models={"planner": [planner]})
    assert result.status == "failed"
    assert "would take the run past max_usd=0.5" in str(result.error)
    assert len(planner.requests) == 2 and result.cost_usd == pytest.approx(0.4)
    assert result.cost_usd <= 0.5


async def test_loop_detection_stops_a_stuck_model(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")

    def stuck(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        return reply(call("hover", ref=ref_of(page_of(messages), "button", "Sign in")))

    planner = FunctionModel(stuck)
    result = await run_task(rt, goal_task(portal), "alice", models={"planner": [planner]})
    assert result.status == "failed"
    assert "loop detected: hover ref=" in str(result.error)
    assert len(planner.requests) == 3


async def test_invalid_tool_arguments_go_back_to_the_model(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    fine = login_then(unpaid_count)
    sent_bad = []

    def sloppy(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        if not sent_bad:
            sent_bad.append(True)
            return reply(call("click", reff="e1"))
        return fine(messages, tools)

    planner = FunctionModel(sloppy)
    result = await run_task(rt, goal_task(portal), "alice", models={"planner": [planner]})
    assert result.status == "succeeded", result.error
    second = page_of(planner.requests[1].messages)
    assert "click: rejected: click: invalid arguments:" in second
    assert "reff: Extra inputs are not permitted" in second


async def test_unknown_tool_and_bad_json_are_rejected_then_bounded(
    rt: Runtime, portal: str
) -> None:
    await make_demo_profiles(rt, portal, "alice")
    from runtime.models import ToolCall

    script = [reply(ToolCall(id="", name="teleport", arguments="{}"))] * 2 + [
        reply(ToolCall(id="", name="click", arguments="{not json"))
    ] * 2
    planner = ScriptedModel(script)
    result = await run_task(rt, goal_task(portal), "alice", models={"planner": [planner]})
    planner.assert_consumed()
    assert result.status == "failed" and "4 invalid tool calls in a row" in str(result.error)
    assert "unknown tool 'teleport'" in page_of(planner.requests[1].messages)


async def test_upload_is_offered_only_with_an_upload_folder_and_refused_without_one(
    rt: Runtime, portal: str, tmp_path: Any
) -> None:
    """A run offers the planner only the tools it can carry out: without the task's upload
    folder there is no upload tool, and a model that calls it anyway (as a page might tell it
    to) is told the tool is unknown; nothing is uploaded and no step is recorded for it."""
    await make_demo_profiles(rt, portal, "alice")
    fine = login_then(unpaid_count)
    tried: list[bool] = []

    def uploads_anyway(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        if not tried:
            tried.append(True)
            return reply(call("upload", ref="e1", files=["report.txt"]))
        return fine(messages, tools)

    planner = FunctionModel(uploads_anyway)
    result = await run_task(rt, goal_task(portal), "alice", models={"planner": [planner]})
    assert result.status == "succeeded", result.error
    offered = {t.name for t in planner.requests[0].tools}
    assert "upload" not in offered and {"click", "fill", "look", "done"} <= offered
    told = page_of(planner.requests[1].messages)
    listed = re.search(r"unknown tool 'upload'; the tools are: ([a-z_, ]+)", told)
    assert listed, told
    assert set(listed.group(1).split(", ")) == offered
    steps = await rt.store.runs.list_steps(str(result.run_id))
    assert steps and not [s for s in steps if s.kind == "upload"]

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    planner = FunctionModel(login_then(unpaid_count))
    task = goal_task(portal, upload_dir=str(uploads))
    result = await run_task(rt, task, "alice", models={"planner": [planner]})
    assert result.status == "succeeded", result.error
    assert {t.name for t in planner.requests[0].tools} == offered | {"upload"}


async def test_a_model_that_never_calls_done_stops_at_max_steps(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    keys = iter(["Tab", "Shift+Tab"] * 10)

    def wander(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        return reply(call("press", key=next(keys)))

    result = await run_task(
        rt,
        goal_task(portal, budget={"max_steps": 5}),
        "alice",
        models={"planner": [FunctionModel(wander)]},
    )
    assert result.status == "failed" and "max_steps=5 reached" in str(result.error)


async def test_done_result_must_match_the_output_schema(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    answers = iter([{"unpaid": "six"}, {"unpaid": UNPAID_ALICE}])
    planner = FunctionModel(login_then(lambda page: reply(call("done", result=next(answers)))))
    result = await run_task(rt, goal_task(portal), "alice", models={"planner": [planner]})
    assert result.status == "succeeded" and result.output == {"unpaid": UNPAID_ALICE}
    assert "result rejected: it does not match the output schema" in page_of(
        planner.requests[-1].messages
    )


async def test_vision_step_sends_a_screenshot_only_to_the_vision_role(
    rt: Runtime, portal: str
) -> None:
    await make_demo_profiles(rt, portal, "alice")
    looked = []

    def finish(page: str) -> ModelResponse:
        if not looked:
            looked.append(True)
            return reply(call("look", question="How many invoices are unpaid?"))
        return unpaid_count(page)

    planner = FunctionModel(login_then(finish), name="planner")
    vision = FunctionModel(lambda m, t: reply(text="Six unpaid invoices are shown."), name="eyes")
    text_only = FunctionModel(lambda m, t: reply(text="never"), name="blind", supports_vision=False)
    result = await run_task(
        rt,
        goal_task(portal),
        "alice",
        models={"planner": [planner], "vision": [text_only, vision]},
    )
    assert result.status == "succeeded", result.error
    assert len(vision.requests) == 1 and vision.requests[0].has_image
    assert not text_only.requests  # a text-only model never gets a vision step
    assert not any(r.has_image for r in planner.requests)
    assert "Six unpaid invoices are shown." in page_of(planner.requests[-1].messages)
    calls = await rt.store.runs.list_model_calls(str(result.run_id))
    assert ("vision", "blind", "skipped") in {(c.role, c.model, c.outcome) for c in calls}


async def test_shadow_planner_is_recorded_never_executed(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    planner = FunctionModel(login_then(unpaid_count), name="planner")

    def rebel(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        page = page_of(messages)
        if "# Sign in" in page:
            return planner.fn(messages, tools)  # type: ignore[return-value]
        return reply(call("click", ref=ref_of(page, "button", "Log out")))

    shadow = FunctionModel(rebel, name="shadow")
    result = await run_task(
        rt, goal_task(portal), "alice", models={"planner": [planner], "shadow": [shadow]}
    )
    assert result.status == "succeeded", result.error
    assert len(shadow.requests) == len(planner.requests) == 4
    assert result.shadow_agreement == 0.75  # agreed on the three login turns, not on the last
    steps = await rt.store.runs.list_steps(str(result.run_id))
    assert not any("Log out" in json.dumps(s.action) for s in steps)
    # Each step records what the shadow would have done, and whether it agreed.
    chosen = [s for s in steps if s.detail and "model" in s.detail]  # not the start_url step
    assert [s.detail["shadow_agrees"] for s in chosen if s.detail] == [True, True, True]


async def test_fallback_and_circuit_breaker_are_recorded(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    down = ScriptedModel(
        [ModelUnavailableError("503 from upstream")] * 3, name="down", provider="fake-down"
    )
    planner = FunctionModel(login_then(unpaid_count), name="backup")
    result = await run_task(rt, goal_task(portal), "alice", models={"planner": [down, planner]})
    assert result.status == "succeeded", result.error
    down.assert_consumed()
    calls = await rt.store.runs.list_model_calls(str(result.run_id))
    assert [(c.model, c.outcome) for c in calls] == [
        ("down", "error"),
        ("backup", "ok"),
    ] * 3 + [("down", "skipped"), ("backup", "ok")]
    assert "503 from upstream" in str(calls[0].reason)
    # After three failures in a row the provider is skipped without a request.
    assert "circuit open" in str(calls[6].reason)


async def test_extraction_is_validated_and_falls_back(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    schema = {"type": "array", "items": {"type": "string"}, "minItems": 1}

    def finish(page: str) -> ModelResponse:
        if "extract_data(numbers)" not in page:
            return reply(
                call(
                    "extract_data",
                    name="numbers",
                    instruction="invoice numbers",
                    json_schema=schema,
                )
            )
        return reply(call("done", result={"unpaid": UNPAID_ALICE}))

    sloppy = FunctionModel(lambda m, t: reply(text='{"not": "a list"}'), name="sloppy")
    careful = FunctionModel(lambda m, t: reply(text='["INV-1001-0023"]'), name="careful")
    result = await run_task(
        rt,
        goal_task(portal),
        "alice",
        models={"planner": [FunctionModel(login_then(finish))], "extractor": [sloppy, careful]},
    )
    assert result.status == "succeeded", result.error
    calls = await rt.store.runs.list_model_calls(str(result.run_id))
    extractor = [(c.model, c.outcome) for c in calls if c.role == "extractor"]
    assert extractor == [("sloppy", "error"), ("careful", "ok")]


async def test_missing_api_key_is_bad_input_naming_the_env_var(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    rt.env = {}
    result = await run_task(rt, goal_task(portal), "alice")
    assert result.exit_code == 2 and result.run_id is None
    assert "missing API key: set OPENAI_API_KEY" in str(result.error)
    assert "missing API key: set ANTHROPIC_API_KEY" in str(result.error)


@pytest.mark.parametrize("mode", ["auto", "always", "never"])
async def test_vision_runs_when_the_snapshot_gives_too_little(
    rt: Runtime, portal: str, mode: str
) -> None:
    await rt.profiles.create("viewer")
    # A plain-text page: nothing in its snapshot to act on.
    page = f"{portal}/healthz"
    task = parse_task(
        {"name": "chart", "start_url": page, "goal": "Read the chart.", "vision": mode},
        "chart.yaml",
    )
    planner = FunctionModel(lambda m, t: reply(call("done", result="ok")), name="planner")
    vision = FunctionModel(lambda m, t: reply(text="An empty chart."), name="eyes")
    result = await run_task(rt, task, "viewer", models={"planner": [planner], "vision": [vision]})
    assert result.status == "succeeded", result.error
    expected = 0 if mode == "never" else 1
    assert len(vision.requests) == expected
    assert all(r.has_image for r in vision.requests)
    told = "A vision model describes the screen: An empty chart." in page_of(
        planner.requests[0].messages
    )
    assert told is (mode != "never")


async def test_always_vision_on_a_page_with_plenty_of_refs(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    vision = FunctionModel(lambda m, t: reply(text="A sign-in form."), name="eyes")
    planner = FunctionModel(lambda m, t: reply(call("done", result={"unpaid": 0})))
    auto = await run_task(
        rt, goal_task(portal), "alice", models={"planner": [planner], "vision": [vision]}
    )
    assert auto.status == "succeeded" and not vision.requests  # the login form has refs
    always = await run_task(
        rt,
        goal_task(portal, vision="always"),
        "alice",
        models={"planner": [planner], "vision": [vision]},
    )
    assert always.status == "succeeded" and len(vision.requests) == 1


async def test_token_budget_stops_the_run(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")

    def chatty(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        return reply(call("scroll", direction="down"), input_tokens=3000, output_tokens=100)

    planner = FunctionModel(chatty)
    task = goal_task(portal, budget={"max_tokens": 7000, "max_steps": 20})
    result = await run_task(rt, task, "alice", models={"planner": [planner]})
    assert result.status == "failed" and "max_tokens=7000" in str(result.error)
    assert result.tokens <= 7000 + 3100  # stopped at the first call that passed the cap


async def test_runs_show_prints_cost_per_step_and_role(rt: Runtime, portal: str, home: Any) -> None:
    await make_demo_profiles(rt, portal, "alice")
    (rt.settings.home / "corral.toml").write_text(
        '[prices."fake:priced"]\ninput = 1.0\noutput = 2.0\n'
    )
    planner = FunctionModel(login_then(unpaid_count), name="priced")
    result = await run_task(rt, goal_task(portal), "alice", models={"planner": [planner]})
    assert result.status == "succeeded" and result.cost_usd == pytest.approx(4 * 0.00014)
    shown = await asyncio.to_thread(corral, "runs", "show", str(result.run_id))
    assert shown.returncode == 0, shown.stderr
    assert "model calls by role" in shown.stdout
    assert "fake:priced" in shown.stdout and "0.0006" in shown.stdout
    listing = await asyncio.to_thread(corral, "runs", "show", str(result.run_id), "--json")
    data = json.loads(listing.stdout)
    lines = data["summary"]["by_role_model"]
    assert [(line["role"], line["calls"]) for line in lines] == [("planner", 4)]


async def test_an_unknown_ref_fails_the_action_and_the_model_is_told(
    rt: Runtime, portal: str
) -> None:
    await make_demo_profiles(rt, portal, "alice")
    tried = []

    def decide(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        if not tried:
            tried.append(True)
            return reply(call("click", ref="e999"))
        return login_then(unpaid_count)(messages, tools)  # type: ignore[no-any-return]

    planner = FunctionModel(decide)
    task = goal_task(portal, step_timeout_s=0.5)
    result = await run_task(rt, task, "alice", models={"planner": [planner]})
    assert result.status == "succeeded", result.error
    told = page_of(planner.requests[1].messages)
    assert "click ref=e999: failed: click: no element matches ref=e999" in told, told
    steps = await rt.store.runs.list_steps(str(result.run_id))
    assert steps[1].status == "failed" and "ref=e999" in str(steps[1].error)


async def test_a_shadow_call_that_would_pass_the_budget_is_skipped(
    rt: Runtime, portal: str
) -> None:
    await make_demo_profiles(rt, portal, "alice")
    (rt.settings.home / "corral.toml").write_text(
        '[prices."fake:costly-shadow"]\ninput = 0\noutput = 1000\n'
    )
    planner = FunctionModel(login_then(unpaid_count), name="planner")
    shadow = FunctionModel(lambda m, t: reply(call("done", result={})), name="costly-shadow")
    task = goal_task(portal, budget={"max_usd": 0.5})
    result = await run_task(rt, task, "alice", models={"planner": [planner], "shadow": [shadow]})
    assert result.status == "succeeded", result.error
    assert not shadow.requests and result.shadow_agreement is None and result.cost_usd == 0


@pytest.mark.slow
async def test_a_model_cannot_pay_without_a_person_a_denial_is_explained(
    rt: Runtime, portal: str
) -> None:
    await make_demo_profiles(rt, portal, "alice")
    from runtime.demo.portal.data import invoices_for

    unpaid = next(i for i in invoices_for("alice") if not i.paid)
    tried: list[str] = []

    def pay_it(page: str) -> ModelResponse:
        if "Pay $" in page and not tried:
            tried.append("pay")
            ref = re.search(r"\[(\w+)\] Pay \$", page)
            assert ref, page
            return reply(call("click", ref=ref.group(1)))
        return reply(call("done", result={"unpaid": UNPAID_ALICE}))

    async def deny_when_asked() -> str:
        request = await next_request(rt)
        await rt.services.approvals.decide(LOCAL_ACTOR, request.id, False, "not this month")
        return request.summary

    planner = FunctionModel(login_then(pay_it))
    task = goal_task(portal, start_url=f"{portal}/invoices/{unpaid.number}")
    async with asyncio.TaskGroup() as tg:
        asked = tg.create_task(deny_when_asked())
        result = await run_task(rt, task, "alice", models={"planner": [planner]})
    assert result.status == "succeeded", result.error
    amount = f"${unpaid.amount_cents / 100:,.2f}"
    assert asked.result() == f"Click 'Pay {amount}' on /invoices/{unpaid.number}"
    told = page_of(planner.requests[-1].messages)
    assert "denied by a person (local): not this month" in told
    steps = await rt.store.runs.list_steps(str(result.run_id))
    # Every gated step records its verdict; only the payment was not allowed.
    assert all(s.detail and "decision" in s.detail["policy"] for s in steps)
    refused = [s for s in steps if s.detail["policy"]["decision"] != "allow"]
    assert len(refused) == 1 and refused[0].status == "skipped"
    assert refused[0].detail["policy"]["decision"] == "require_approval"
    assert refused[0].detail["approval"]["status"] == "denied"
    # Nothing was paid: the invoice page still offers the Pay button.
    check = await run_task(
        rt,
        parse_task(
            {
                "name": "still-unpaid",
                "start_url": f"{portal}/invoices/{unpaid.number}",
                "steps": [{"extract": {"as": "status", "text": {"test_id": "invoice-status"}}}],
                "output": "status",
            },
            "check.yaml",
        ),
        "alice",
    )
    assert check.output == "Unpaid", check.error


async def test_a_model_whose_actions_keep_failing_stops_after_max_failures(
    rt: Runtime, portal: str
) -> None:
    await rt.profiles.create("clumsy", ProfileSettings())
    tried: list[str] = []

    def click_nothing(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        # Well-formed calls on refs the page does not have (a new one each time, so this is not
        # a loop): the actions themselves fail.
        tried.append(page_of(messages))
        return reply(call("click", ref=f"e{9990 + len(tried)}"))

    task = parse_task(
        {
            "name": "clumsy",
            "start_url": f"{portal}/login",
            "goal": "Sign in.",
            "step_timeout_s": 0.5,
            "budget": {"max_failures": 4, "max_steps": 20},
        },
        "clumsy.yaml",
    )
    result = await run_task(rt, task, "clumsy", models={"planner": [FunctionModel(click_nothing)]})
    assert result.status == "failed" and result.error
    assert result.error.startswith("stopped: 4 failed actions in a row; last: ")
    assert "e9994" in result.error
    # Exactly four tries: the budget stopped the loop, not max_steps or the model.
    assert len(tried) == 4
    steps = await rt.store.runs.list_steps(str(result.run_id))
    assert [s.status for s in steps if s.kind == "click"] == ["failed"] * 4


async def test_a_steps_screenshot_is_taken_once_the_next_page_is_read(
    rt: Runtime, portal: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The screenshot of an agent step waits for the next observation's read (both need the
    page's renderer; the screenshot then runs while the model answers), and is taken before
    the next action."""
    import runtime.agent.phases as phases
    import runtime.run.steps as steps_module
    from runtime.run.gate import Gate

    await make_demo_profiles(rt, portal, "alice")
    events: list[str] = []
    read, shoot, carry_out = phases.read_page, steps_module.screenshot, Gate.carry_out

    async def reading(*args: Any, **kwargs: Any) -> Any:
        obs = await read(*args, **kwargs)
        events.append("read")
        return obs

    async def shooting(*args: Any, **kwargs: Any) -> Any:
        events.append("shot")
        return await shoot(*args, **kwargs)

    async def acting(*args: Any, **kwargs: Any) -> Any:
        events.append("act")
        return await carry_out(*args, **kwargs)

    monkeypatch.setattr(phases, "read_page", reading)
    monkeypatch.setattr(steps_module, "screenshot", shooting)
    monkeypatch.setattr(Gate, "carry_out", acting)
    planner = FunctionModel(login_then(unpaid_count), name="planner")
    result = await run_task(rt, goal_task(portal), "alice", models={"planner": [planner]})
    assert result.status == "succeeded", result.error
    # The start page's (scripted) step, then three agent steps (two fills and Sign in): each
    # one's screenshot after the next read, and before the next action.
    assert events == ["act", "shot"] + ["read", "act"] + ["read", "shot", "act"] * 2 + [
        "read",
        "shot",
    ]
    steps = await rt.store.runs.list_steps(str(result.run_id))
    assert [s.kind for s in steps] == ["navigate", "fill", "fill", "click"]
    assert all(s.screenshot for s in steps)


async def test_a_step_is_recorded_when_the_next_page_cannot_be_read(
    rt: Runtime, portal: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runtime.agent.phases as phases

    await make_demo_profiles(rt, portal, "alice")
    read = phases.read_page
    reads = 0

    async def failing(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        if reads == 3:  # after both fills
            raise StepFailedError("the page went away")
        return await read(*args, **kwargs)

    monkeypatch.setattr(phases, "read_page", failing)
    planner = FunctionModel(login_then(unpaid_count), name="planner")
    result = await run_task(rt, goal_task(portal), "alice", models={"planner": [planner]})
    assert result.status == "failed"
    steps = await rt.store.runs.list_steps(str(result.run_id))
    # The second fill's record (row and screenshot) was waiting for that read: it is written.
    assert [s.kind for s in steps] == ["navigate", "fill", "fill"]
    assert all(s.screenshot for s in steps)
