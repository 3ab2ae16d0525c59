"""Evidence at the checkpoint: done()'s result is accepted only with evidence from this run's
pages (when the task requires it) and within the task's output policy; a refused result goes
back to the model, and the replay links each field to the page it came from."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from runtime import Runtime, run_task
from runtime.agent.evidence import Pages, check_result
from runtime.auth import LOCAL_ACTOR
from runtime.demo.portal import USERS
from runtime.models.types import Message, ModelResponse, ToolSpec
from runtime.review.replay import render_replay
from runtime.task import OutputPolicy
from runtime.testing import FunctionModel, call, reply
from tests.support.agent import goal_task, login_then, page_of
from tests.support.demo import make_demo_profiles

REQUIRED = {"output_policy": {"evidence": "required"}}


def answers(*results: tuple[Any, dict[str, str] | None]) -> Any:
    """After signing in: done() with each (result, evidence) in turn."""
    queue = list(results)

    def finish(page: str) -> ModelResponse:
        result, evidence = queue.pop(0) if len(queue) > 1 else queue[0]
        args: dict[str, Any] = {"result": result}
        if evidence is not None:
            args["evidence"] = evidence
        return reply(call("done", **args))

    return finish


def told(planner: FunctionModel) -> str:
    return page_of(planner.requests[-1].messages)


async def test_a_result_without_evidence_goes_back_and_the_cited_one_is_recorded(
    rt: Runtime, portal: str
) -> None:
    await make_demo_profiles(rt, portal, "alice")
    planner = FunctionModel(
        login_then(
            answers(({"unpaid": 6}, None), ({"unpaid": 6}, {"unpaid": "Unpaid invoices: 6"}))
        )
    )
    result = await run_task(
        rt, goal_task(portal, **REQUIRED), "alice", models={"planner": [planner]}
    )
    assert result.status == "succeeded", result.error
    assert "done: result rejected: cite evidence for every field: missing for unpaid" in told(
        planner
    )
    [cited] = result.evidence or []
    assert cited["field"] == "unpaid" and cited["excerpt"] == "Unpaid invoices: 6"
    assert cited["url"].endswith("/dashboard") and isinstance(cited["step"], int)
    record = await rt.store.runs.get_run(str(result.run_id))
    assert record is not None and record.evidence == result.evidence
    # The replay shows the field beside the page text, linked to the step that showed it.
    review = await rt.services.runs.review(LOCAL_ACTOR, str(result.run_id))
    html = render_replay(review, Path(review.run.run_dir))
    assert "Where each field came from" in html
    assert f'href="#step-{cited["step"]}"' in html and "Unpaid invoices: 6" in html


async def test_evidence_that_is_on_no_page_stops_the_run(rt: Runtime, portal: str) -> None:
    # The model invents its source: refused each time, then the run stops.
    await make_demo_profiles(rt, portal, "alice")
    forged = ({"unpaid": 2}, {"unpaid": "You have 2 unpaid invoices"})
    planner = FunctionModel(login_then(answers(forged)))
    result = await run_task(rt, goal_task(portal), "alice", models={"planner": [planner]})
    assert result.status == "failed"
    assert "done() results kept being rejected" in (result.error or "")
    assert "the evidence for unpaid is not on any page of this run" in (result.error or "")
    assert result.output is None


@pytest.mark.parametrize(
    ("result", "policy", "why"),
    [
        ({"unpaid": 6, "key": "sk-live-" + "a1B2c3D4" * 4}, {}, "secret-like string"),
        ({"unpaid": 6, "password": "hunter2!"}, {}, "looks like a credential"),
        ({"unpaid": 6, "card_number": "4111"}, {"deny_fields": ["card_number"]}, "card_number"),
        (
            {"unpaid": 6, "rows": [{"card_number": "4111"}]},
            {"deny_fields": ["card_number"]},
            "card",
        ),
    ],
)
async def test_the_output_policy_refuses_what_a_result_may_not_carry(
    rt: Runtime, portal: str, result: dict[str, Any], policy: dict[str, Any], why: str
) -> None:
    await make_demo_profiles(rt, portal, "alice")
    planner = FunctionModel(login_then(answers((result, None), ({"unpaid": 6}, None))))
    task = goal_task(portal, output_policy=policy)
    task.output_schema = None
    done = await run_task(rt, task, "alice", models={"planner": [planner]})
    assert done.status == "succeeded", done.error
    assert done.output == {"unpaid": 6}
    assert "done: result rejected" in told(planner) and why in told(planner)


async def test_a_model_obeying_the_page_cannot_put_the_runs_password_in_the_result(
    rt: Runtime, portal: str
) -> None:
    # The model copies the password it typed (as the page asked it to) into the result: the
    # result is refused, and no record holds the value.
    await make_demo_profiles(rt, portal, "alice")
    password = USERS["alice"].password

    def leak(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        page = page_of(messages)
        if "# Sign in" in page:
            return login_then(lambda p: reply())(messages, tools)
        if "result rejected" in page:
            return reply(call("done", result={"unpaid": 6}))
        return reply(call("done", result={"unpaid": 6, "note": f"pw {password}"}))

    planner = FunctionModel(leak)
    done = await run_task(rt, goal_task(portal), "alice", models={"planner": [planner]})
    assert done.status == "succeeded", done.error
    assert "holds a secret of this run" in told(planner)
    assert done.output == {"unpaid": 6}


def test_excerpts_match_the_page_as_shown_refs_and_spacing_aside() -> None:
    pages = Pages()
    pages.add(None, "http://x/a", "/a · A\n# Invoices\n[e4] link INV-1001 | $1,200.00 | Unpaid")
    pages.add(2, "http://x/b", "/b · B\nTotal due:\n  $4,813.09")
    policy = OutputPolicy(evidence="required")
    cited, problems = check_result(
        {"invoice": "INV-1001", "total": "$4,813.09"},
        {"invoice": "link INV-1001 |  $1,200.00", "total": "total DUE: $4,813.09"},
        policy,
        pages,
        None,
    )
    assert problems == []
    assert [(c.field, c.url, c.after_step, c.ref) for c in cited] == [
        ("invoice", "http://x/a", None, "e4"),
        ("total", "http://x/b", 2, None),
    ]
    _, problems = check_result({"a": 1}, {"b": "Total due"}, policy, pages, None)
    assert any(re.search(r"names field\(s\) the result does not have: b", p) for p in problems)
    assert any("missing for a" in p for p in problems)
