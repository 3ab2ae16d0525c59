"""The phases of one turn of the goal loop, in order: observe, decide, validate, check, act,
record. Each takes the loop's :class:`~runtime.agent.turn.Agent` (the run and what lasts across
turns) and the :class:`~runtime.agent.turn.Turn` so far; a stop rule raises
:class:`~runtime.agent.turn.LoopStop`.
"""

from __future__ import annotations

import hashlib
import json
import re
from urllib.parse import urlsplit

import jsonschema

from policies import Verdict
from profiles import BROWSER_SERVICE_HOSTS, origin_of
from runtime.agent.consult import extract, look, summarize
from runtime.agent.delta import DELTA_HEADING, UNCHANGED, page_delta
from runtime.agent.evidence import check_result
from runtime.agent.prompt import quote_page, render_observation
from runtime.agent.toolset import (
    Done,
    ExtractData,
    Look,
    Observe,
    Remember,
    ToolArgsError,
    parse_call,
)
from runtime.agent.turn import (
    LOOP_REPEATS,
    MAX_INVALID_CALLS,
    MAX_INVALID_RESULTS,
    Agent,
    Call,
    LoopStop,
    Turn,
)
from runtime.memory import note_problem
from runtime.models.types import ModelResponse, ModelSettings
from runtime.run.gate import Gated
from runtime.run.steps import describe
from runtime.run.steps import record as record_step
from tools import AnyAction, action_target, snapshot_elements
from tools import observe as read_page

__all__ = ["act", "check", "consult", "decide", "named", "observe", "record", "validate"]

# Too little in the snapshot to act on: let the vision model describe the screen.
_MIN_REFS_FOR_TEXT = 1
# How much of the model's own words and of the page a step record keeps.
_MAX_REASON = 600
_EXCERPT_LINES = 8
_EXCERPT_CHARS = 1500
# A change list at least this share of the whole page is sent as the whole page.
_DELTA_MAX_SHARE = 0.5


_SNAPSHOT_LINE = re.compile(r'^\s*-\s+([a-z]+)(?:\s+"((?:[^"\\]|\\.)*)")?.*?\[ref=([\w-]+)\]')


def snapshot_target(snapshot: str, ref: str) -> dict[str, str] | None:
    """The role and accessible name the page's AI snapshot gives the element ``ref``."""
    for line in snapshot.splitlines():
        found = _SNAPSHOT_LINE.match(line)
        if found and found.group(3) == ref:
            named = {"ref": ref, "role": found.group(1)}
            if found.group(2):
                named["name"] = found.group(2).replace('\\"', '"')
            return named
    return None


def page_excerpt(page: str, ref: str | None) -> str:
    """The lines of the page text the planner saw around ``ref`` (its first lines without
    one): what a person reviewing the step needs to see of the page, bounded."""
    lines = page.splitlines()
    at = next((i for i, line in enumerate(lines) if ref and f"[{ref}]" in line), None)
    if at is None:
        chosen = lines[: 2 * _EXCERPT_LINES]
    else:
        chosen = lines[max(0, at - _EXCERPT_LINES) : at + _EXCERPT_LINES + 1]
    text = "\n".join(chosen)
    return text if len(text) <= _EXCERPT_CHARS else text[: _EXCERPT_CHARS - 1] + "…"


def _call_summary(response: ModelResponse) -> str | None:
    if not response.tool_calls:
        return None
    call = response.tool_calls[0]
    try:
        args = json.dumps(json.loads(call.arguments), sort_keys=True)
    except ValueError:
        args = call.arguments
    return f"{call.name}({args})"


async def observe(agent: Agent) -> Turn:
    """The page (redacted, compact) and the planner's conversation with it appended: in full,
    or the lines that changed when the last action left the page in place (see
    :func:`_shown_in_full`); a vision model describes the screen first when the task asks or the
    snapshot holds too little."""
    ctx = agent.ctx
    task = ctx.task
    agent.router.step_idx = ctx.state.idx
    obs = await read_page(ctx.tabs, redact=ctx.redactor.text)
    # The last action's screenshot is taken now, beside the model's answer, rather than
    # beside this read: both need the page's renderer.
    agent.start_record()
    same_document = agent.watch.same_document(await ctx.tabs.active(), obs.url)
    secrets = ctx.lease.available_on(origin_of(obs.url))
    notes = []
    if task.vision == "always" or (
        task.vision == "auto" and len(snapshot_elements(obs.snapshot)) <= _MIN_REFS_FOR_TEXT
    ):
        description = await look(
            agent, "Describe this page and what can be done on it; name elements by their ref."
        )
        if description is not None:
            notes.append(f"A vision model describes the screen: {description}")
    page = render_observation(obs, secrets)
    restarted = agent.conversation.too_long()
    note: dict[str, object] = {}
    if restarted:
        # Short-term memory stays bounded: the earlier turns as a model's summary (recorded
        # on the next step), then the latest result lines.
        summary = await summarize(agent)
        if summary is not None:
            note["history_summary"] = summary
        agent.conversation.restart(summary)
    shown = page
    full = restarted or not _in_place(agent, same_document)
    if not full:
        delta = page_delta(agent.shown, page)
        full = len(delta) >= _DELTA_MAX_SHARE * len(page)
        if not full:
            shown = f"{DELTA_HEADING}\n{delta}" if delta else UNCHANGED
    agent.shown, agent.want_full = page, False
    agent.deltas = 0 if full else agent.deltas + 1
    messages = agent.conversation.ask(shown, notes, full=full)
    # What done()'s evidence may cite (runtime.agent.evidence).
    idx = ctx.state.idx
    agent.pages.add(idx - 1 if idx else None, obs.url, page)
    return Turn(obs, messages, page=page, full=full, note=note)


def _in_place(agent: Agent, same_document: bool) -> bool:
    """True when the page may be shown as what changed: the same document as the page last
    shown, the planner did not ask for the whole page, and not ``full_every`` change lists in a
    row."""
    return (
        same_document
        and bool(agent.shown)
        and not agent.want_full
        and agent.deltas < agent.full_every
    )


def named(action: AnyAction, target: dict[str, str] | None) -> str:
    """``action`` described for the planner's conversation: its element by role and accessible
    name (which outlive the ref the model used), e.g. ``click button "Sign in"``."""
    text = describe(action)
    if not target or "ref" not in target or "role" not in target:
        return text
    who = target["role"] + (f" {quote_page(target['name'])}" if target.get("name") else "")
    return text.replace(f"ref={target['ref']}", who, 1)


async def decide(agent: Agent, turn: Turn) -> None:
    """Ask the planner for one tool call (and a shadow planner, only to record its choice)."""
    router, state = agent.router, agent.ctx.state
    settings = ModelSettings(tool_choice="required", max_tokens=1024)
    response = await router.ask("planner", turn.messages, agent.specs, settings)
    shadow_note = {}
    if router.has("shadow"):
        shadow = await router.shadow(turn.messages, agent.specs, settings)
        if shadow is not None:
            agrees = _call_summary(shadow) == _call_summary(response)
            state.shadow_total += 1
            state.shadow_agreed += agrees
            shadow_note = {"shadow": _call_summary(shadow), "shadow_agrees": agrees}
    turn.response = response
    agent.conversation.answered(response)
    # Token burn, provider errors, spend: alerts and what follows them (runtime.run.runbook).
    await agent.alarms.after_planner(response, router)
    if response.tool_calls:
        turn.note.update(
            {
                "model": f"{response.provider}:{response.model}",
                "tool": response.tool_calls[0].name,
                # What the model asked for and why, in its words (the recorder redacts both).
                "call": _call_summary(response),
                **(
                    {"reason": response.text.strip()[:_MAX_REASON]} if response.text.strip() else {}
                ),
                **shadow_note,
            }
        )


def _invalid_call(agent: Agent, line: str) -> bool:
    """Tell the model why its call was not used; True when that was once too often."""
    agent.invalid_calls += 1
    agent.conversation.add_result(line)
    return agent.invalid_calls > MAX_INVALID_CALLS


def validate(agent: Agent, turn: Turn) -> Call | None:
    """The planner's call parsed and validated, or None when it went back to the model: no
    call, invalid arguments, a done() result failing the output schema. Stops on too many of
    them, and on the same action on the same page state ``LOOP_REPEATS`` times."""
    assert turn.response is not None
    if not turn.response.tool_calls:
        if _invalid_call(agent, "(you answered without calling a tool; call exactly one tool)"):
            raise LoopStop("stopped: the planner kept answering without a tool call")
        return None
    call = turn.response.tool_calls[0]
    try:
        parsed = parse_call(call, agent.offered)
    except ToolArgsError as exc:
        if _invalid_call(agent, f"{call.name}: rejected: {exc}"):
            raise LoopStop(
                f"stopped: {MAX_INVALID_CALLS + 1} invalid tool calls in a row; last: {exc}"
            ) from exc
        return None
    agent.invalid_calls = 0
    if isinstance(parsed, Done) and not _result_accepted(agent, parsed):
        return None
    if isinstance(parsed, Observe) and turn.full:
        if _invalid_call(agent, "observe: the last page you were sent is already the whole page"):
            raise LoopStop("stopped: the planner kept asking for the page it was sent")
        return None
    if isinstance(parsed, Done | Look | ExtractData | Observe | Remember):
        return parsed
    # loop detection: the same action on the same page state
    obs = turn.obs
    key = hashlib.sha256(
        (obs.url + "\n" + obs.snapshot + "\n" + parsed.model_dump_json()).encode()
    ).hexdigest()
    agent.seen[key] += 1
    if agent.seen[key] >= LOOP_REPEATS:
        raise LoopStop(
            f"stopped: loop detected: {describe(parsed)} on the same page state "
            f"{LOOP_REPEATS} times"
        )
    return parsed


def _result_accepted(agent: Agent, done: Done) -> bool:
    """True if ``done``'s result matches the output schema, cites its evidence and keeps the
    output policy (:mod:`runtime.agent.evidence`); the evidence is then the run's. Otherwise the
    reasons go back to the model, and after ``MAX_INVALID_RESULTS`` such results the run stops."""
    ctx = agent.ctx
    task = ctx.task
    problems = []
    if task.output_schema is not None:
        try:
            jsonschema.validate(done.result, task.output_schema)
        except jsonschema.ValidationError as exc:
            problems.append("it does not match the output schema: " + exc.message)
    cited, more = check_result(
        done.result, done.evidence, task.output_policy, agent.pages, ctx.shows_secret
    )
    problems.extend(more)
    if not problems:
        ctx.state.evidence = [c.record() for c in cited]
        return True
    agent.invalid_results += 1
    why = "; ".join(problems)
    agent.conversation.add_result("done: result rejected: " + why)
    if agent.invalid_results > MAX_INVALID_RESULTS:
        raise LoopStop("stopped: done() results kept being rejected: " + why)
    return False


async def consult(agent: Agent, turn: Turn, call: Look | ExtractData | Observe | Remember) -> None:
    """Answer ``look``, ``extract_data``, ``observe`` or ``remember`` into the conversation;
    nothing is done on the page."""
    conversation = agent.conversation
    if isinstance(call, Remember):
        ctx = agent.ctx
        problem = note_problem(call.note, ctx.shows_secret)
        if problem is not None:
            conversation.add_result(f"remember: refused: {problem}")
            return
        ctx.state.notes.append(
            {
                "scope": call.about,
                "text": ctx.redactor.text(call.note.strip()),
                "step": ctx.state.idx,
            }
        )
        conversation.add_result("remember: noted; kept for later runs if this run succeeds")
        return
    if isinstance(call, Observe):
        agent.want_full = True
        conversation.add_result("observe: the whole page follows")
        return
    if isinstance(call, Look):
        answer = await look(agent, call.question)
        conversation.add_result(
            f"look({call.question!r}) -> {answer or 'no vision model available'}"
        )
        return
    value = await extract(agent, call, turn.obs)
    agent.ctx.state.extracted[call.name] = value
    conversation.add_result(f"extract_data({call.name}) -> {json.dumps(value)[:300]}")


async def check(agent: Agent, turn: Turn, action: AnyAction) -> Verdict:
    """The gate's verdict on ``action`` on the page as it is now; it only reads the page, so it
    overlaps the recording of the previous action."""
    return await agent.ctx.gate.verdict(action, turn.obs)


async def act(agent: Agent, turn: Turn, action: AnyAction, verdict: Verdict) -> Gated:
    """Do ``action`` as its verdict says (or ask a person first), once the previous action is
    recorded; its step is not yet recorded."""
    await agent.settle()
    ctx = agent.ctx
    target = action_target(action)
    ref = target.ref if target else None
    excerpt = page_excerpt(turn.page, ref)
    if excerpt:
        turn.note["excerpt"] = excerpt
    named = snapshot_target(turn.obs.snapshot, ref) if ref else None
    if named:
        turn.note["target"] = named
    return await ctx.gate.carry_out(
        action,
        describe(action),
        ctx.task.budget.max_steps,
        obs=turn.obs,
        extra=turn.note,
        verdict=verdict,
    )


def record(agent: Agent, action: AnyAction, gated: Gated) -> None:
    """Record the step once the next turn has read the page (while it asks the model), and tell
    the model how it went: not done (and why), requests blocked or held, ok or failed. Stops after
    ``budget.max_failures`` failed actions in a row."""
    ctx, conversation = agent.ctx, agent.conversation
    agent.unrecorded = record_step(ctx, gated.step)
    detail = gated.step.detail or {}
    text = named(action, detail.get("target"))
    if gated.outcome != "done":
        # Not done, but recorded with its verdict; the model is told why and may go on.
        conversation.add_result(f"{text}: not done: {gated.message}")
        return
    if "idempotency" in detail:
        conversation.add_result(
            f"{text}: not done again: an earlier attempt of this scheduled run already sent "
            "it; go on as if it was done"
        )
        return
    blocked = [
        b for b in detail.get("blocked_requests", []) if b["host"] not in BROWSER_SERVICE_HOSTS
    ]
    if blocked:
        hosts = sorted({f"{b['host']}:{b['port']}" for b in blocked})
        conversation.add_result(
            f"{text}: requests to {', '.join(hosts)} were blocked: "
            "not on this task's allowed_domains"
        )
    held = detail.get("held_requests", [])
    if held:
        # Our words and the request's path only: the rest of a URL is the page's.
        sent = sorted({f"{h['method']} {urlsplit(h['url']).path[:80]}" for h in held})
        conversation.add_result(
            f"{text}: the page tried to send {', '.join(sent[:5])}; held and "
            f"not sent: {held[0]['reason']}"
        )
    failure = gated.failure
    if failure is None:
        agent.failures = 0
        conversation.add_result(f"{text}: ok")
        return
    agent.failures += 1
    message = str(failure).split(": ", 1)[-1]
    conversation.add_result(f"{text}: failed: {message}")
    if agent.failures >= ctx.task.budget.max_failures:
        raise LoopStop(f"stopped: {agent.failures} failed actions in a row; last: {failure}")
