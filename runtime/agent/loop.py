"""The agent loop for goal-driven tasks, split by phase.

Each turn: *observe* the page (redacted, compact) -> *decide* (the planner picks one tool call;
a shadow planner, if configured, is asked the same and only recorded) -> *validate* the arguments
(pydantic; an invalid call goes back to the model, bounded) -> *check* (``runtime.run.gate``: risk
verdict; a person's approval where needed) ->
*act* (tools.execute) -> *record* (step row, screenshot, model calls with tokens and cost).

Stop rules: ``done(result)`` validated against ``output_schema`` (an invalid result goes back to the
model, bounded); ``budget.max_steps``; the spend and token caps (checked before every model call
from an estimate and after it from the real usage); the run's wall time (``budget.timeout_s``,
enforced by the caller); ``budget.max_failures`` consecutive failed actions; and loop detection:
the same action on the same page state ``LOOP_REPEATS`` times.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import jsonschema

from profiles import BROWSER_SERVICE_HOSTS, CorralError, origin_of
from runtime.agent.prompt import History, planner_messages, render_observation
from runtime.agent.router import ModelRouter
from runtime.agent.toolset import Done, ExtractData, Look, ToolArgsError, parse_call, tool_specs
from runtime.errors import StepFailedError
from runtime.models.types import (
    ImagePart,
    InvalidModelOutputError,
    Message,
    ModelResponse,
    ModelSettings,
    TextPart,
)
from runtime.run.gate import Gate
from runtime.run.recorder import Recorder
from runtime.run.steps import RunState, describe, record
from tools import (
    ActionContext,
    Observation,
    Tabs,
    marked_screenshot,
    observe,
    snapshot_elements,
)

__all__ = ["LOOP_REPEATS", "run_goal"]

LOOP_REPEATS = 3
MAX_INVALID_CALLS = 3
MAX_INVALID_RESULTS = 2
# Too little in the snapshot to act on: let the vision model describe the screen.
_MIN_REFS_FOR_TEXT = 1


class _Stop(StepFailedError):
    """A stop rule ended the run."""


def _call_summary(response: ModelResponse) -> str | None:
    if not response.tool_calls:
        return None
    call = response.tool_calls[0]
    try:
        args = json.dumps(json.loads(call.arguments), sort_keys=True)
    except ValueError:
        args = call.arguments
    return f"{call.name}({args})"


async def run_goal(
    state: RunState,
    tabs: Tabs,
    ctx: ActionContext,
    recorder: Recorder,
    router: ModelRouter,
    gate: Gate,
) -> None:
    """Pursue ``state.task.goal`` until done() or a stop rule; raises StepFailedError on a stop."""
    task = state.task
    assert task.goal is not None
    history = History()
    specs = tool_specs()
    seen: Counter[str] = Counter()
    invalid_calls = invalid_results = failures = 0
    state.shadow_agreed = state.shadow_total = 0
    # The screenshot and record of the last action, taken while the next turn observes and asks
    # the model (both only read the page); always awaited before the next action and on exit.
    pending: asyncio.Task[None] | None = None
    try:
        while True:
            if state.idx >= task.budget.max_steps:
                raise _Stop(f"stopped: budget max_steps={task.budget.max_steps} reached")
            router.step_idx = state.idx
            # observe
            redactor = state.lease.redactor if state.lease else None
            obs = await observe(tabs, redact=redactor.text if redactor else None)
            origin = origin_of(obs.url)
            secrets = state.lease.available_on(origin) if state.lease else []
            notes = []
            if task.vision == "always" or (
                task.vision == "auto" and len(snapshot_elements(obs.snapshot)) <= _MIN_REFS_FOR_TEXT
            ):
                description = await _look(
                    tabs,
                    router,
                    "Describe this page and what can be done on it; name elements by their ref.",
                    redactor,
                )
                if description is not None:
                    notes.append(f"A vision model describes the screen: {description}")
            messages = planner_messages(
                task.goal, task.output_schema, history, render_observation(obs, secrets), notes
            )
            settings = ModelSettings(tool_choice="required", max_tokens=1024)
            # decide
            response = await router.ask("planner", messages, specs, settings)
            shadow_note: dict[str, Any] = {}
            if router.has("shadow"):
                shadow = await router.shadow(messages, specs, settings)
                if shadow is not None:
                    agrees = _call_summary(shadow) == _call_summary(response)
                    state.shadow_total += 1
                    state.shadow_agreed += agrees
                    shadow_note = {"shadow": _call_summary(shadow), "shadow_agrees": agrees}
            if not response.tool_calls:
                invalid_calls += 1
                history.add("(you answered without calling a tool; call exactly one tool)")
                if invalid_calls > MAX_INVALID_CALLS:
                    raise _Stop("stopped: the planner kept answering without a tool call")
                continue
            call = response.tool_calls[0]
            model_note = {
                "model": f"{response.provider}:{response.model}",
                "tool": call.name,
                **shadow_note,
            }
            # validate
            try:
                parsed = parse_call(call)
            except ToolArgsError as exc:
                invalid_calls += 1
                history.add(f"{call.name}: rejected: {exc}")
                if invalid_calls > MAX_INVALID_CALLS:
                    raise _Stop(
                        f"stopped: {MAX_INVALID_CALLS + 1} invalid tool calls in a row; last: {exc}"
                    ) from exc
                continue
            invalid_calls = 0
            if isinstance(parsed, Done):
                if task.output_schema is not None:
                    try:
                        jsonschema.validate(parsed.result, task.output_schema)
                    except jsonschema.ValidationError as exc:
                        invalid_results += 1
                        history.add(
                            "done: result rejected, it does not match the output schema: "
                            + exc.message
                        )
                        if invalid_results > MAX_INVALID_RESULTS:
                            raise _Stop(
                                "stopped: done() results kept failing the output schema: "
                                + exc.message
                            ) from exc
                        continue
                state.result, state.has_result = parsed.result, True
                return
            if isinstance(parsed, Look):
                answer = await _look(tabs, router, parsed.question, redactor)
                history.add(f"look({parsed.question!r}) -> {answer or 'no vision model available'}")
                continue
            if isinstance(parsed, ExtractData):
                value = await _extract(tabs, router, parsed, obs)
                state.extracted[parsed.name] = value
                history.add(f"extract_data({parsed.name}) -> {json.dumps(value)[:300]}")
                continue
            # loop detection: the same action on the same page state
            key = hashlib.sha256(
                (obs.url + "\n" + obs.snapshot + "\n" + parsed.model_dump_json()).encode()
            ).hexdigest()
            seen[key] += 1
            if seen[key] >= LOOP_REPEATS:
                raise _Stop(
                    f"stopped: loop detected: {describe(parsed)} on the same page state "
                    f"{LOOP_REPEATS} times"
                )
            # check, then act (or ask a person first), then record while the next turn observes
            # and asks the model; the verdict only reads the page, so it overlaps the recording
            verdict = await gate.verdict(parsed, obs)
            if pending is not None:
                await pending
                pending = None
            gated = await gate.act(
                parsed, ctx, describe(parsed), task.budget.max_steps, obs, model_note, verdict
            )
            pending = asyncio.create_task(record(state, tabs, recorder, gated.step))
            if gated.outcome != "done":
                # Not done, but recorded with its verdict; the model is told why and may go on.
                history.add(f"{describe(parsed)}: not done: {gated.message}")
                continue
            blocked = [
                b
                for b in (gated.step.detail or {}).get("blocked_requests", [])
                if b["host"] not in BROWSER_SERVICE_HOSTS
            ]
            if blocked:
                hosts = sorted({f"{b['host']}:{b['port']}" for b in blocked})
                history.add(
                    f"{describe(parsed)}: requests to {', '.join(hosts)} were blocked: "
                    "not on this task's allowed_domains"
                )
            held = (gated.step.detail or {}).get("held_requests", [])
            if held:
                # Our words and the request's path only: the rest of a URL is the page's.
                sent = sorted({f"{h['method']} {urlsplit(h['url']).path[:80]}" for h in held})
                history.add(
                    f"{describe(parsed)}: the page tried to send {', '.join(sent[:5])}; held and "
                    f"not sent: {held[0]['reason']}"
                )
            failure = gated.failure
            if failure is None:
                failures = 0
                history.add(f"{describe(parsed)}: ok")
            else:
                failures += 1
                message = str(failure).split(": ", 1)[-1]
                history.add(f"{describe(parsed)}: failed: {message}")
                if failures >= task.budget.max_failures:
                    raise _Stop(f"stopped: {failures} failed actions in a row; last: {failure}")
    finally:
        if pending is not None:
            await pending


async def _look(tabs: Tabs, router: ModelRouter, question: str, redactor: Any) -> str | None:
    """Ask the vision role about a marked screenshot; None if no vision model can take it."""
    if not router.has("vision") or not any(
        m.supports_vision for m in router.chains["vision"].usable
    ):
        return None
    image, refs = await marked_screenshot(tabs, redactor.found_in_text if redactor else None)
    if image is None:
        return "the screenshot is withheld because the page shows a secret"
    messages = [
        Message(
            role="user",
            content=[
                TextPart(
                    text=f"{question}\nInteractive elements are boxed and labelled with "
                    f"their refs ({', '.join(refs[:80])}). Answer briefly."
                ),
                ImagePart(data_b64=base64.b64encode(image).decode()),
            ],
        )
    ]
    response = await router.ask(
        "vision", messages, [], ModelSettings(max_tokens=400), need_vision=True
    )
    return response.text.strip()


async def _extract(tabs: Tabs, router: ModelRouter, request: ExtractData, obs: Observation) -> Any:
    """Ask the extractor role for JSON matching the schema, validated; invalid -> next model."""
    page = getattr(obs, "compact", None) or obs.snapshot

    def validate(response: ModelResponse) -> None:
        try:
            jsonschema.validate(json.loads(response.text), request.json_schema)
        except (ValueError, jsonschema.ValidationError) as exc:
            raise InvalidModelOutputError(f"extraction does not match the schema: {exc}") from exc

    messages = [
        Message.text(
            "system",
            "Extract data from the web page below as JSON matching the "
            "given schema. Use only what the page shows.",
        ),
        Message.text("user", f"Instruction: {request.instruction}\n\nPage ({obs.url}):\n{page}"),
    ]
    settings = ModelSettings(max_tokens=4096, response_schema=request.json_schema)
    try:
        response = await router.ask("extractor", messages, [], settings, validate=validate)
    except CorralError as exc:
        raise StepFailedError(f"extract_data({request.name}): {exc}") from exc
    return json.loads(response.text)
