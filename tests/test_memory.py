"""Memory: notes a planner proposes are kept only when its run succeeds, never with a secret, and
the next run's planner reads them; people add and remove notes (CLI, console) within their
roles; a long run's conversation stays bounded, restarting from a model's summary; runs are
searchable by task, profile, outcome and date."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from runtime import Runtime, run_task
from runtime.auth import LOCAL_ACTOR
from runtime.demo.portal import USERS
from runtime.errors import PermissionDeniedError
from runtime.models.types import Message, ModelResponse, TextPart, ToolSpec
from runtime.testing import FunctionModel, call, reply
from tests.support.agent import goal_task, login_then, page_of
from tests.support.cli import Outcome, corral
from tests.support.console import ROOT, Console, csrf_of, served_console, sign_in
from tests.support.demo import make_demo_profiles
from tests.support.stores import add_run

QUIRK = "The dashboard counts unpaid invoices; the invoices page is paginated."


def text_of(message: Message) -> str:
    return "\n".join(p.text for p in message.content if isinstance(p, TextPart))


async def cli(*args: str) -> Outcome:
    """``corral ARGS`` on the test's CORRAL_HOME (its own event loop: in a thread)."""
    return await asyncio.to_thread(corral, *args)


def remembering(note: str, about: str = "task", then: Any = None) -> Any:
    """After signing in: remember(note), then ``then(page)`` (default: done with 6 unpaid)."""

    def finish(page: str) -> ModelResponse:
        if "remember:" not in page:
            return reply(call("remember", note=note, about=about))
        if then is not None:
            return then(page)  # type: ignore[no-any-return]
        return reply(call("done", result={"unpaid": 6}))

    return login_then(finish)


async def test_a_note_of_a_successful_run_is_kept_and_read_by_the_next_run(
    rt: Runtime, portal: str
) -> None:
    await make_demo_profiles(rt, portal, "alice")
    first = FunctionModel(remembering(QUIRK))
    result = await run_task(rt, goal_task(portal), "alice", models={"planner": [first]})
    assert result.status == "succeeded", result.error
    assert result.notes_kept == 1
    [note] = await rt.services.memory.list(LOCAL_ACTOR, "task", "goal")
    assert (note.text, note.source, note.run_id) == (QUIRK, "run", result.run_id)
    assert note.step is not None and note.step >= 1
    # The next run's planner reads it in its task message, quoted as data.
    second = FunctionModel(login_then(lambda page: reply(call("done", result={"unpaid": 6}))))
    again = await run_task(rt, goal_task(portal), "alice", models={"planner": [second]})
    assert again.status == "succeeded", again.error
    task_message = text_of(second.requests[0].messages[1])
    assert "Notes kept from earlier runs and people" in task_message
    assert json.dumps(QUIRK) in task_message and f"run {result.run_id}" in task_message


async def test_a_note_of_a_failed_run_is_not_kept(rt: Runtime, portal: str) -> None:
    await make_demo_profiles(rt, portal, "alice")
    planner = FunctionModel(remembering(QUIRK, then=lambda page: reply(call("click", ref="e999"))))
    task = goal_task(portal, budget={"max_failures": 1})
    result = await run_task(rt, task, "alice", models={"planner": [planner]})
    assert result.status == "failed"
    assert result.notes_kept == 0
    assert await rt.services.memory.list(LOCAL_ACTOR) == []


@pytest.mark.parametrize("kind", ["the run's password", "a key-shaped string"])
async def test_a_note_holding_a_secret_is_refused_and_never_stored(
    rt: Runtime, portal: str, kind: str
) -> None:
    # A page told the model to remember the password it typed (or a token it showed).
    await make_demo_profiles(rt, portal, "alice")
    secret = USERS["alice"].password if kind == "the run's password" else "ghp_" + "x1Y2" * 10
    planner = FunctionModel(remembering(f"login is alice / {secret}"))
    result = await run_task(rt, goal_task(portal), "alice", models={"planner": [planner]})
    assert result.status == "succeeded", result.error
    told = page_of(planner.requests[-1].messages)
    assert "remember: refused:" in told and secret not in told
    assert result.notes_kept == 0 and await rt.services.memory.list(LOCAL_ACTOR) == []


async def test_people_add_notes_within_their_roles_and_never_a_secret(rt: Runtime) -> None:
    async with served_console(rt) as console:
        await _roles_and_secrets(console)


async def _roles_and_secrets(console: Console) -> None:
    rt, memory = console.rt, console.rt.services.memory
    ada = await rt.services.users.actor(console.tokens["ada"])
    bob = await rt.services.users.actor(console.tokens["bob"])
    await rt.services.secrets.set(ROOT, "shop.pw", "hunter2-value", ["http://portal.test"])
    with pytest.raises(PermissionDeniedError, match="needs the admin role"):
        await memory.add(bob, "task", "goal", "a task note")
    with pytest.raises(PermissionDeniedError, match="not granted"):
        await memory.add(bob, "profile", "shop", "not bob's profile")
    mine = await memory.add(bob, "profile", "mine", "Invoices load slowly after 17:00.")
    shop = await memory.add(ada, "profile", "shop", "Two-factor codes arrive by mail.")
    for text, why in (("pw is hunter2-value", "stored secret"), ("sk-" + "a" * 30, "credential")):
        with pytest.raises(Exception, match=why) as refused:
            await memory.add(ada, "task", "goal", text)
        assert text not in str(refused.value)
    assert [n.id for n in await memory.list(bob)] == [mine.id]
    assert {n.id for n in await memory.list(ada)} == {mine.id, shop.id}
    with pytest.raises(Exception, match="no note"):
        await memory.remove(bob, shop.id)
    await memory.remove(bob, mine.id)
    actions = [e.action for e in await rt.services.audit.list(ROOT, limit=50)]
    assert actions.count("memory.add") == 2 and actions.count("memory.remove") == 1
    # The console: the admin adds a task note through the form, sees it, removes it.
    async with sign_in(console.url, console.tokens["ada"]) as http:
        shown = await http.get("/console/memory")
        assert shown.status_code == 200 and "Two-factor codes arrive by mail." in shown.text
        form = {"csrf": csrf_of(shown.text), "scope": "task", "name": "goal", "text": QUIRK}
        added = await http.post("/console/memory/add", data=form)
        assert added.status_code == 303, added.text
        [note] = await memory.list(ROOT, "task", "goal")
        assert note.author == "ada" and note.text == QUIRK
        listed = (await http.get("/console/memory")).text
        assert QUIRK in listed
        gone = await http.post(f"/console/memory/{note.id}/remove", data={"csrf": csrf_of(listed)})
        assert gone.status_code == 303
        assert await memory.list(ROOT, "task", "goal") == []
        secret = {**form, "csrf": csrf_of(listed), "text": "hunter2-value"}
        refused = await http.post("/console/memory/add", data=secret)
        assert refused.status_code == 422 and "hunter2-value" not in refused.text


@pytest.fixture
async def home_rt(settings: Any) -> AsyncIterator[Runtime]:
    async with Runtime.open(settings) as runtime:
        yield runtime


async def test_corral_memory_add_list_show_rm(home_rt: Runtime) -> None:
    await home_rt.profiles.create("alice")
    missing = await cli("memory", "add", "no scope")
    assert missing.returncode == 2 and "--task NAME or --profile NAME" in missing.stderr
    added = await cli("memory", "add", QUIRK, "--profile", "alice")
    assert added.returncode == 0, added.stderr
    listed = await cli("memory", "list", "--profile", "alice", "--json")
    [note] = json.loads(listed.stdout)
    assert note["text"] == QUIRK and note["source"] == "person"
    shown = await cli("memory", "show", note["id"])
    assert shown.returncode == 0 and QUIRK in shown.stdout
    secret_like = await cli("memory", "add", "key AKIA" + "ABCDEFGHIJKLMNOP", "--task", "t")
    assert secret_like.returncode == 2 and "AKIA" not in secret_like.stderr
    assert (await cli("memory", "rm", note["id"])).returncode == 0
    assert json.loads((await cli("memory", "list", "--json")).stdout) == []
    assert (await cli("memory", "show", note["id"])).returncode == 2


async def test_a_long_run_restarts_from_a_summary_and_its_prompt_stays_bounded(
    rt: Runtime, portal: str
) -> None:
    await make_demo_profiles(rt, portal, "alice")
    bound = 6_000
    turns = 0

    def wander(page: str) -> ModelResponse:
        nonlocal turns
        turns += 1
        if turns > 24:
            return reply(call("done", result={"unpaid": 6}))
        # A page of its own each turn (the loop detector stops repeats on one page state).
        where = "invoices" if turns % 2 else "dashboard"
        return reply(call("navigate", url=f"{portal}/{where}?visit={turns}"))

    planner = FunctionModel(login_then(wander))
    summaries: list[str] = []

    def summarize(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        summaries.append(text_of(messages[-1]))
        return reply(text="Signed in as alice; scrolled the dashboard; 6 unpaid invoices seen.")

    extractor = FunctionModel(summarize, name="summarizer")
    task = goal_task(portal, budget={"max_prompt_chars": bound, "max_steps": 60})
    result = await run_task(
        rt, task, "alice", models={"planner": [planner], "extractor": [extractor]}
    )
    assert result.status == "succeeded", result.error
    assert summaries, "the conversation never restarted"
    sizes = [sum(len(text_of(m)) for m in r.messages) for r in planner.requests]
    largest_page = max(len(page_of(r.messages)) for r in planner.requests)
    assert max(sizes) <= bound + largest_page + 2_000, sizes
    opening = [text_of(r.messages[1]) for r in planner.requests]
    restarted = [t for t in opening if "Summary of the earlier turns" in t]
    assert restarted and "6 unpaid invoices seen" in restarted[-1]
    steps = await rt.store.runs.list_steps(str(result.run_id))
    recorded = [s for s in steps if (s.detail or {}).get("history_summary")]
    assert recorded and "6 unpaid invoices seen" in recorded[0].detail["history_summary"]  # type: ignore[index]


async def test_runs_are_searchable_by_task_profile_outcome_and_date(
    home_rt: Runtime,
) -> None:
    await add_run(home_rt, "r-ok", "shop", task="check", status="succeeded")
    await add_run(home_rt, "r-bad", "shop", task="check", status="failed")
    await add_run(home_rt, "r-other", "mine", task="pay", status="succeeded")

    async def ids(*args: str) -> list[str]:
        out = await cli("runs", "list", "--json", *args)
        assert out.returncode == 0, out.stderr
        return sorted(r["id"] for r in json.loads(out.stdout))

    assert await ids("--task", "check") == ["r-bad", "r-ok"]
    assert await ids("--task", "check", "--status", "failed") == ["r-bad"]
    assert await ids("--profile", "mine") == ["r-other"]
    assert await ids("--since", "1d") == ["r-bad", "r-ok", "r-other"]
    assert await ids("--since", "2000-01-01", "--until", "2000-01-02") == []
    bad = await cli("runs", "list", "--since", "yesterday")
    assert bad.returncode == 2 and "expected a duration ago" in bad.stderr


async def test_a_note_holding_another_profiles_secret_is_not_kept(rt: Runtime, portal: str) -> None:
    # The page shows a value the run does not hold (another account's token, stored in the
    # vault): the run cannot recognise it as its own secret, so the check at keeping time does.
    await make_demo_profiles(rt, portal, "alice")
    await rt.profiles.create("bob")
    await rt.vault.set("bob.token", "zx-bob-token-4471", [portal], ["bob"])
    planner = FunctionModel(remembering("the support code is zx-bob-token-4471"))
    result = await run_task(rt, goal_task(portal), "alice", models={"planner": [planner]})
    assert result.status == "succeeded", result.error
    assert result.notes_kept == 0
    assert any("held a secret" in w for w in result.warnings)
    assert await rt.services.memory.list(LOCAL_ACTOR) == []
