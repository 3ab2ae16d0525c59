"""The planner's conversation in real Chromium on the demo portal: append-only between turns,
results naming elements by role and name, pages after in-place actions as the lines that changed
(with refs that resolve, secrets redacted), whole pages after a navigation, on request and every
``FULL_PAGE_EVERY`` pages; and the pure parts: the line diff and the conversation's restart."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from typing import Any

from runtime import Runtime, run_task
from runtime.agent.delta import DELTA_HEADING, UNCHANGED, page_delta
from runtime.agent.prompt import Conversation
from runtime.demo.portal import USERS
from runtime.models import Message, ModelResponse, ToolCall, ToolSpec
from runtime.models.anthropic_messages import cache_breakpoints, to_anthropic_messages
from runtime.testing import FunctionModel, call, reply
from tests.support.agent import goal_task, page_of, ref_of
from tests.support.demo import make_demo_profiles

PASSWORD = USERS["alice"].password


def last_user(messages: list[Message]) -> str:
    """The text of the last message (this turn's page)."""
    return "\n".join(p.text for p in messages[-1].content if p.type == "text")


def tool_results(messages: list[Message]) -> list[str]:
    """The results the planner was told, in order."""
    return [m.content[0].text for m in messages if m.role == "tool" and m.content]  # type: ignore[union-attr]


def delta_ref(delta: str, role: str, name: str) -> str:
    """The ref of a changed line ``~ [eN] role name...`` of a delta."""
    found = re.search(rf"^~ \[(\w+)\] {role} \"?{re.escape(name)}", delta, re.MULTILINE)
    assert found, delta
    return found.group(1)


def play(plan: list[Callable[[str], ToolCall]]) -> Any:
    """A planner playing ``plan``, each entry a call made from what the planner was told
    (``page_of``), then done()."""

    def decide(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        turn = sum(m.role == "assistant" for m in messages)
        if turn >= len(plan):
            return reply(call("done", result={"unpaid": 0}))
        return reply(plan[turn](page_of(messages)))

    return decide


async def test_a_fill_is_shown_as_the_changed_field_and_a_navigation_as_the_whole_page(
    rt: Runtime, portal: str
) -> None:
    await make_demo_profiles(rt, portal, "alice")
    login: list[str] = []

    def decide(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        turn = sum(m.role == "assistant" for m in messages)
        page = last_user(messages)
        if turn == 0:
            login.append(page)
            return reply(call("fill", ref=ref_of(page, "textbox", "Username"), value="al"))
        if turn in (1, 2):
            # The ref comes from the change list: it must resolve.
            return reply(call("fill", ref=delta_ref(page, "textbox", "Username"), value="alice"))
        if turn == 3:
            # Typing the same value again changed nothing on the page.
            assert page == UNCHANGED, page
            password = ref_of(login[0], "textbox", "Password")
            return reply(call("fill", ref=password, value="{{secret:alice.password}}"))
        if turn == 4:
            return reply(call("click", ref=ref_of(login[0], "button", "Sign in")))
        return reply(call("done", result={"unpaid": 0}))

    planner = FunctionModel(decide)
    result = await run_task(rt, goal_task(portal), "alice", models={"planner": [planner]})
    assert result.status == "succeeded", result.error
    pages = [last_user(r.messages) for r in planner.requests]
    # The login page in full, then what each fill changed, then the dashboard in full.
    assert pages[0].startswith("Current page:\n") and "# Sign in" in pages[0]
    username = ref_of(pages[0], "textbox", "Username")
    for delta, typed in ((pages[1], "al"), (pages[2], "alice")):
        assert delta.startswith(DELTA_HEADING), delta
        assert re.search(rf"^~ \[{username}\] textbox \"?Username.*: {typed}$", delta, re.MULTILINE)
        assert "# Sign in" not in delta and not re.search(r"\] Sign in$", delta, re.MULTILINE)
    password_delta = pages[4]
    assert password_delta.startswith(DELTA_HEADING)
    assert re.search(r"^~ \[\w+\] textbox \"?Password", password_delta, re.MULTILINE)
    assert "Current page:\n" in pages[5] and "Unpaid invoices" in pages[5]
    # The secret never reached the model, in a change list or anywhere else.
    assert all(PASSWORD not in r.body() for r in planner.requests)
    # Each request starts with the whole previous one: the conversation is append-only.
    dumps = [[m.model_dump(mode="json") for m in r.messages] for r in planner.requests]
    for before, after in itertools.pairwise(dumps):
        assert after[: len(before)] == before
    # Results name the element by role and name, not by a ref that may be gone.
    told = tool_results(planner.requests[-1].messages)
    assert told == [
        'fill textbox "Username": ok',
        'fill textbox "Username": ok',
        'fill textbox "Username": ok',
        'fill textbox "Password": ok',
        'click button "Sign in": ok',
    ]
    # On the Anthropic wire too, each request's turns start with the previous request's (the
    # sliding breakpoints aside), and the system prompt and the latest turn are breakpoints.
    mark = ', "cache_control": {"type": "ephemeral"}'
    wires = []
    for request in planner.requests:
        breakpoints = cache_breakpoints(request.messages, has_tools=True)
        system, turns = to_anthropic_messages(request.messages, cached=breakpoints)
        assert system[-1].get("cache_control") == {"type": "ephemeral"}
        assert json.dumps(turns[-1]).endswith(mark + "}]}")
        wires.append(json.loads(json.dumps(turns).replace(mark, "")))
    for before, after in itertools.pairwise(wires):
        assert after[: len(before) - 1] == before[:-1]
        last = before[-1]["content"]
        assert after[len(before) - 1]["content"][: len(last)] == last


async def test_the_whole_page_on_request_and_every_full_page_every_pages(
    rt: Runtime, portal: str
) -> None:
    await make_demo_profiles(rt, portal, "alice")
    plan: list[Callable[[str], ToolCall]] = [
        lambda page: call("observe"),  # the page is already whole: rejected
        lambda page: call("fill", ref=ref_of(page, "textbox", "Username"), value="a"),
        lambda page: call("observe"),
        lambda page: call("fill", ref=ref_of(page, "textbox", "Username"), value="ab"),
        lambda page: call("fill", ref=delta_ref(page, "textbox", "Username"), value="abc"),
        lambda page: call("fill", ref=delta_ref(page, "textbox", "Username"), value="abcd"),
    ]
    planner = FunctionModel(play(plan))
    task = goal_task(portal, full_page_every=2)  # the task's setting (default 8)
    result = await run_task(rt, task, "alice", models={"planner": [planner]})
    assert result.status == "succeeded", result.error
    pages = [last_user(r.messages) for r in planner.requests]
    whole = ["Current page:\n" in page for page in pages]
    # 0 whole; 1 after the rejected observe (nothing done: unchanged); 2 a fill's change list;
    # 3 whole (asked for); 4 and 5 changes; 6 whole again (two change lists in a row).
    assert whole == [True, False, False, True, False, False, True], pages
    assert pages[1] == UNCHANGED
    told = tool_results(planner.requests[-1].messages)
    assert told[0] == "observe: the last page you were sent is already the whole page"
    assert told[2] == "observe: the whole page follows"


def test_a_delta_lists_changed_added_and_removed_lines() -> None:
    before = "http://x/\n# Form\n[e1] textbox Name\n[e2] Save\nFooter"
    after = "http://x/\n# Form\n[e1] textbox Name: Ann\n[e2] Save\nSaved.\nFooter"
    assert page_delta(before, after) == "~ [e1] textbox Name: Ann\n= [e2] Save\n+ Saved."
    assert page_delta(before, before) == ""
    removed = page_delta(before, "http://x/\n# Form\n[e2] Save\nFooter")
    assert removed == "- [e1] textbox Name"
    added = page_delta(before, before + "\n[e9] link Help")
    assert added == "= Footer\n+ [e9] link Help"


def test_a_long_conversation_restarts_with_a_line_per_earlier_call() -> None:
    conversation = Conversation("Do it.", max_chars=3_000)
    first = conversation.ask("http://x/\n" + "text\n" * 400, [], full=True)
    assert [m.role for m in first] == ["system", "user", "user"]
    answer = call("click", ref="e3").model_copy(update={"id": "call_1"})
    conversation.answered(ModelResponse(tool_calls=[answer], provider="f", model="f"))
    conversation.add_result('click button "Go": ok')
    assert conversation.too_long()
    conversation.restart()
    again = conversation.ask("http://x/\n[e4] Go", [], full=True)
    assert [m.role for m in again] == ["system", "user", "user"]
    task = again[1].content[0].text  # type: ignore[union-attr]
    assert task.startswith("Task: Do it.") and "History" in task
    assert task.endswith('click button "Go": ok')
    assert conversation.restarts == 1 and not conversation.too_long()
