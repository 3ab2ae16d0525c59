"""The planner's consultations that do nothing on the page: ``look`` (the vision role describes a
marked screenshot) and ``extract_data`` (the extractor role reads the page into JSON)."""

from __future__ import annotations

import base64
import json
from typing import Any

import jsonschema

from profiles import CorralError
from runtime.agent.toolset import ExtractData
from runtime.agent.turn import Agent
from runtime.errors import StepFailedError
from runtime.models.types import (
    ImagePart,
    InvalidModelOutputError,
    Message,
    ModelResponse,
    ModelSettings,
    TextPart,
)
from tools import Observation, marked_screenshot

__all__ = ["extract", "look", "summarize"]

_SUMMARY_WORDS = 150


async def look(agent: Agent, question: str) -> str | None:
    """Ask the vision role about a marked screenshot; None if no vision model can take it."""
    router = agent.router
    if not router.has("vision") or not any(
        m.supports_vision for m in router.chains["vision"].usable
    ):
        return None
    image, refs = await marked_screenshot(agent.ctx.tabs, agent.ctx.shows_secret)
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


async def extract(agent: Agent, request: ExtractData, obs: Observation) -> Any:
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
        response = await agent.router.ask("extractor", messages, [], settings, validate=validate)
    except CorralError as exc:
        raise StepFailedError(f"extract_data({request.name}): {exc}") from exc
    return json.loads(response.text)


async def summarize(agent: Agent) -> str | None:
    """The extractor role's summary of the conversation's turns so far (what was done and found,
    what is left), for a restarted conversation; None without an extractor, or if it fails
    (the restart then keeps the latest result lines alone)."""
    router = agent.router
    lines = agent.conversation.results_so_far()
    if not router.has("extractor") or not lines:
        return None
    messages = [
        Message.text(
            "system",
            f"Summarize a browser agent's progress in at most {_SUMMARY_WORDS} words: what it "
            "did, what it found (values it will need), what is left. Plain text.",
        ),
        Message.text(
            "user", f"Task: {agent.conversation.goal}\n\nCalls so far:\n" + "\n".join(lines)
        ),
    ]
    try:
        response = await router.ask("extractor", messages, [], ModelSettings(max_tokens=400))
    except CorralError:
        return None
    words = response.text.split()
    return agent.ctx.redactor.text(" ".join(words[: _SUMMARY_WORDS * 2])) or None
