"""``AnthropicModel``: corral's model seam over the Anthropic Messages API.

System messages move to ``system``; tool results (and whatever user content follows them) become
one user turn of ``tool_result`` blocks. Prompt caching marks the last tool, the first message
with ``cache=True`` (the system prompt) and the latest ones (the conversation's newest turns).
Structured output forces a tool named ``output`` whose input schema is the requested schema.
Building the client, retries (the SDK's own), error translation and closing come from
:class:`~runtime.models.base.SDKModel`; this module holds the wire format.

"Tool" here is the API's term for a function the model may call (a
:class:`~runtime.models.types.ToolSpec`, answered with ``tool_use`` and ``tool_result`` blocks),
not the ``tools`` package of browser actions that some of those calls end up running.

``ModelSettings.temperature`` is not sent: SDK 2.x dropped the sampling parameters, and the API
version it speaks (2026-10-21) answers 400 to ``temperature``/``top_p``/``top_k`` at any value.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import anthropic
from anthropic.types import (
    AssistantMessageParam,
    CacheControlEphemeralParam,
    ImageBlockParam,
    MessageParam,
    TextBlockParam,
    ToolChoiceParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlockParam,
    UserMessageParam,
)
from anthropic.types import Message as AnthropicMessage

from runtime.models.base import SDKModel
from runtime.models.errors_map import from_anthropic_error
from runtime.models.types import (
    ImagePart,
    Message,
    ModelError,
    ModelResponse,
    ModelSettings,
    TextPart,
    ToolCall,
    ToolSpec,
    Usage,
)

__all__ = ["OUTPUT_TOOL", "AnthropicModel"]

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
OUTPUT_TOOL = "output"
"""The tool forced for structured output; its input is the answer."""
NO_VISION_TEXT = "[image omitted: this model does not accept images]"
# The API accepts at most four cache breakpoints per request.
MAX_CACHE_BREAKPOINTS = 4
# A non-object schema is wrapped under this property: tool inputs must be objects.
_WRAPPED = "value"


def _ephemeral() -> CacheControlEphemeralParam:
    return {"type": "ephemeral"}


ContentBlock = TextBlockParam | ImageBlockParam | ToolUseBlockParam | ToolResultBlockParam


class AnthropicModel(SDKModel[anthropic.AsyncAnthropic]):
    """A Claude model behind the Anthropic Messages API."""

    sdk_client = anthropic.AsyncAnthropic
    sdk_error = anthropic.AnthropicError
    default_base_url = ANTHROPIC_BASE_URL
    default_provider = "anthropic"

    def _translate(self, exc: anthropic.AnthropicError) -> ModelError:
        return from_anthropic_error(
            exc, provider=self.provider, model=self.name, secrets=self._secrets
        )

    async def request(
        self, messages: list[Message], tools: list[ToolSpec], settings: ModelSettings
    ) -> ModelResponse:
        """Send one Messages request; return the answer or raise a ``ModelError``."""
        cached = cache_breakpoints(messages, has_tools=bool(tools) or _wants_output(settings))
        system, turns = to_anthropic_messages(messages, vision=self.supports_vision, cached=cached)
        wire_tools, tool_choice, wrapped = to_anthropic_tools(tools, settings)
        reply, latency_ms = await self._send(
            self._client.messages.create(
                model=self.name,
                max_tokens=settings.max_tokens,
                messages=turns,
                system=system or anthropic.omit,
                tools=wire_tools or anthropic.omit,
                tool_choice=anthropic.omit if tool_choice is None else tool_choice,
                timeout=anthropic.not_given if settings.timeout_s is None else settings.timeout_s,
            )
        )
        return self._parse(reply, latency_ms, structured=_wants_output(settings), wrapped=wrapped)

    def _parse(
        self, reply: AnthropicMessage, latency_ms: float, *, structured: bool, wrapped: bool
    ) -> ModelResponse:
        texts: list[str] = []
        calls: list[ToolCall] = []
        output: str | None = None
        for block in reply.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                if structured and block.name == OUTPUT_TOOL and output is None:
                    value: object = block.input
                    if wrapped and isinstance(value, dict):
                        value = value.get(_WRAPPED)
                    output = json.dumps(value, ensure_ascii=False)
                else:
                    calls.append(
                        ToolCall(
                            id=block.id,
                            name=block.name,
                            arguments=json.dumps(block.input, ensure_ascii=False),
                        )
                    )
        return ModelResponse(
            text="".join(texts) if output is None else output,
            tool_calls=calls,
            usage=to_usage(reply),
            provider=self.provider,
            model=self.name,
            finish_reason=reply.stop_reason,
            latency_ms=latency_ms,
        )


def _wants_output(settings: ModelSettings) -> bool:
    return settings.response_schema is not None


def to_usage(reply: AnthropicMessage) -> Usage:
    """Token counts of a reply, normalised to the OpenAI meaning of ``input_tokens``.

    Anthropic's ``input_tokens`` leaves out tokens read from or written to the cache; corral's
    counts every prompt token, with ``cached_tokens``/``cache_write_tokens`` as subsets.
    """
    usage = reply.usage
    cached = usage.cache_read_input_tokens or 0
    written = usage.cache_creation_input_tokens or 0
    details = usage.output_tokens_details
    return Usage(
        input_tokens=(usage.input_tokens or 0) + cached + written,
        output_tokens=usage.output_tokens or 0,
        cached_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=(getattr(details, "thinking_tokens", 0) or 0) if details else 0,
    )


def cache_breakpoints(messages: list[Message], *, has_tools: bool) -> set[int]:
    """Indexes of the messages that get a cache breakpoint, as many as the API allows next to
    the one on the tools: the first marked ``cache`` (the system prompt, the prefix every request
    shares) and the last ones (the latest turn, which the next request extends, and the turns
    before it, a fallback when the latest was not cached)."""
    budget = MAX_CACHE_BREAKPOINTS - (1 if has_tools else 0)
    marked = [index for index, message in enumerate(messages) if message.cache]
    if budget <= 0 or not marked:
        return set()
    return {marked[0], *marked[len(marked) - budget + 1 :]} if budget > 1 else {marked[-1]}


def _text_block(text: str) -> TextBlockParam:
    return {"type": "text", "text": text}


def _parts(
    parts: list[TextPart | ImagePart], *, vision: bool
) -> list[TextBlockParam | ImageBlockParam]:
    """Text and image blocks; empty text is dropped (the API rejects it)."""
    blocks: list[TextBlockParam | ImageBlockParam] = []
    for part in parts:
        if isinstance(part, TextPart):
            if part.text:
                blocks.append(_text_block(part.text))
        elif vision:
            blocks.append(
                {
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": part.media_type,
                        "data": part.data_b64,
                    },
                }
            )
        else:
            blocks.append(_text_block(NO_VISION_TEXT))
    return blocks


def _tool_input(arguments: str) -> dict[str, object]:
    """The parsed arguments of an earlier call; unparseable ones are kept as text."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError:
        return {"raw_arguments": arguments}
    return value if isinstance(value, dict) else {"raw_arguments": arguments}


def _mark(block: ContentBlock) -> None:
    block["cache_control"] = _ephemeral()


def to_anthropic_messages(
    messages: list[Message], *, vision: bool = True, cached: set[int] | None = None
) -> tuple[list[TextBlockParam], list[MessageParam]]:
    """Corral messages as ``(system blocks, turns)``; ``cached`` are the indexes to mark.

    Consecutive messages of one role merge into one turn, so tool results and the observation
    after them form a single user turn with the ``tool_result`` blocks first.
    """
    cached = cached if cached is not None else {i for i, m in enumerate(messages) if m.cache}
    system: list[TextBlockParam] = []
    turns: list[tuple[Literal["user", "assistant"], list[ContentBlock]]] = []
    for index, message in enumerate(messages):
        if message.role == "system":
            blocks_system = [
                _text_block(p.text) for p in message.content if isinstance(p, TextPart)
            ]
            blocks_system = [b for b in blocks_system if b["text"]]
            if blocks_system and index in cached:
                blocks_system[-1]["cache_control"] = _ephemeral()
            system.extend(blocks_system)
            continue
        role: Literal["user", "assistant"] = "assistant" if message.role == "assistant" else "user"
        blocks: list[ContentBlock]
        if message.role == "tool":
            if message.tool_call_id is None:
                raise ValueError("a tool message needs the tool_call_id it answers")
            result: ToolResultBlockParam = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
            }
            content = _parts(message.content, vision=vision)
            if content:
                result["content"] = content
            blocks = [result]
        else:
            blocks = list(_parts(message.content, vision=vision))
            blocks.extend(
                ToolUseBlockParam(
                    type="tool_use", id=call.id, name=call.name, input=_tool_input(call.arguments)
                )
                for call in message.tool_calls
            )
        if not blocks:
            continue
        if index in cached:
            _mark(blocks[-1])
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    return system, [_turn(role, blocks) for role, blocks in turns]


def _turn(role: Literal["user", "assistant"], blocks: list[ContentBlock]) -> MessageParam:
    if role == "assistant":
        return AssistantMessageParam(role="assistant", content=blocks)
    return UserMessageParam(role="user", content=blocks)


def _input_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A tool input schema for ``schema`` and whether it had to be wrapped in an object."""
    if schema.get("type") == "object":
        return schema, False
    return {"type": "object", "properties": {_WRAPPED: schema}, "required": [_WRAPPED]}, True


def to_anthropic_tools(
    tools: list[ToolSpec], settings: ModelSettings
) -> tuple[list[ToolParam], ToolChoiceParam | None, bool]:
    """``(tools, tool_choice, wrapped)``: the last tool carries the cache breakpoint.

    With a ``response_schema`` the ``output`` tool is added and forced; ``wrapped`` says its
    schema was wrapped under ``value`` because it was not an object.
    """
    wire: list[ToolParam] = [
        {"name": tool.name, "description": tool.description, "input_schema": tool.parameters}
        for tool in tools
    ]
    choice: ToolChoiceParam | None = None
    wrapped = False
    if settings.response_schema is not None:
        schema, wrapped = _input_schema(settings.response_schema)
        wire.append(
            {
                "name": OUTPUT_TOOL,
                "description": "Give the final answer as JSON matching this schema.",
                "input_schema": schema,
            }
        )
        choice = {"type": "tool", "name": OUTPUT_TOOL}
    elif wire:
        choice = to_anthropic_tool_choice(settings.tool_choice, tools)
    if wire:
        wire[-1]["cache_control"] = _ephemeral()
    return wire, choice, wrapped


def to_anthropic_tool_choice(choice: str, tools: list[ToolSpec]) -> ToolChoiceParam:
    """``auto``→auto, ``required``→any, ``none``→none; any other value forces that tool."""
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if choice not in {tool.name for tool in tools}:
        raise ValueError(f"tool_choice {choice!r} names no tool of this request")
    return {"type": "tool", "name": choice}
