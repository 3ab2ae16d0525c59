"""``OpenAIChatModel``: corral's model seam over the OpenAI Chat Completions API.

Works against any OpenAI-compatible ``base_url`` (gateways, vLLM, Ollama, LM Studio). Building
the client, retries (the SDK's own ``max_retries``, honouring ``retry-after``), error translation
and closing come from :class:`~runtime.models.base.SDKModel`; this module holds the wire format.

"Tool" here is the API's term for a function the planner model may call (a
:class:`~runtime.models.types.ToolSpec`, answered with a ``ToolCall``), not the ``tools`` package
of browser actions that some of those calls end up running.
"""

from __future__ import annotations

from typing import Any

import openai
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionContentPartParam,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
    ChatCompletionToolChoiceOptionParam,
)
from openai.types.shared_params import ResponseFormatJSONSchema

from runtime.models.base import SDKModel
from runtime.models.errors_map import from_openai_error
from runtime.models.types import (
    ImagePart,
    InvalidModelOutputError,
    Message,
    ModelError,
    ModelResponse,
    ModelSettings,
    TextPart,
    ToolCall,
    ToolSpec,
    Usage,
)

__all__ = ["OpenAIChatModel"]

OPENAI_BASE_URL = "https://api.openai.com/v1"
NO_VISION_TEXT = "[image omitted: this model does not accept images]"


class OpenAIChatModel(SDKModel[openai.AsyncOpenAI]):
    """A chat model behind the OpenAI Chat Completions API or a compatible server."""

    sdk_client = openai.AsyncOpenAI
    sdk_error = openai.OpenAIError
    default_base_url = OPENAI_BASE_URL
    default_provider = "openai"

    def _translate(self, exc: openai.OpenAIError) -> ModelError:
        return from_openai_error(
            exc, provider=self.provider, model=self.name, secrets=self._secrets
        )

    async def request(
        self, messages: list[Message], tools: list[ToolSpec], settings: ModelSettings
    ) -> ModelResponse:
        """Send one Chat Completions request; return the answer or raise a ``ModelError``."""
        wire_messages = to_openai_messages(messages, vision=self.supports_vision)
        wire_tools = [to_openai_tool(tool) for tool in tools]
        completion, latency_ms = await self._send(
            self._client.chat.completions.create(
                model=self.name,
                messages=wire_messages,
                max_completion_tokens=settings.max_tokens,
                temperature=openai.omit if settings.temperature is None else settings.temperature,
                tools=wire_tools or openai.omit,
                tool_choice=to_openai_tool_choice(settings.tool_choice, tools)
                if tools
                else openai.omit,
                response_format=openai.omit
                if settings.response_schema is None
                else to_openai_response_format(settings.response_schema),
                timeout=openai.not_given if settings.timeout_s is None else settings.timeout_s,
            )
        )
        return self._parse(completion, latency_ms)

    def _parse(self, completion: ChatCompletion, latency_ms: float) -> ModelResponse:
        # The SDK does not validate bodies, so a compatible server's gaps arrive as None.
        choice = completion.choices[0] if completion.choices else None
        message = choice.message if choice else None
        if choice is None or message is None:
            raise InvalidModelOutputError(
                f"{self.label} answered without a message", provider=self.provider, model=self.name
            )
        calls: list[ToolCall] = []
        for index, call in enumerate(message.tool_calls or []):
            if not isinstance(call, ChatCompletionMessageFunctionToolCall):
                continue  # custom (grammar) tools: corral never offers them
            if call.function is None or not call.function.name:
                raise InvalidModelOutputError(
                    f"{self.label} answered with a tool call without a name",
                    provider=self.provider,
                    model=self.name,
                )
            calls.append(
                ToolCall(
                    # Some compatible servers omit call ids; the loop still needs one to answer.
                    id=call.id or f"call_{index}",
                    name=call.function.name,
                    arguments=call.function.arguments or "",
                )
            )
        return ModelResponse(
            text=message.content or message.refusal or "",
            tool_calls=calls,
            usage=to_usage(completion),
            provider=self.provider,
            model=self.name,
            finish_reason=choice.finish_reason,
            latency_ms=latency_ms,
        )


def to_usage(completion: ChatCompletion) -> Usage:
    """Token counts of a completion; fields a server leaves out count as 0."""
    usage = completion.usage
    if usage is None:
        return Usage()
    prompt_details = usage.prompt_tokens_details
    completion_details = usage.completion_tokens_details
    return Usage(
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        cached_tokens=(prompt_details.cached_tokens or 0) if prompt_details else 0,
        cache_write_tokens=(prompt_details.cache_write_tokens or 0) if prompt_details else 0,
        reasoning_tokens=(completion_details.reasoning_tokens or 0) if completion_details else 0,
    )


def _image_url(part: ImagePart) -> str:
    return f"data:{part.media_type};base64,{part.data_b64}"


def _user_content(
    parts: list[TextPart | ImagePart], *, vision: bool
) -> str | list[ChatCompletionContentPartParam]:
    """A single text part stays a plain string: the form every compatible server accepts."""
    if len(parts) == 1 and isinstance(parts[0], TextPart):
        return parts[0].text
    content: list[ChatCompletionContentPartParam] = []
    for part in parts:
        if isinstance(part, TextPart):
            content.append({"type": "text", "text": part.text})
        elif vision:
            content.append({"type": "image_url", "image_url": {"url": _image_url(part)}})
        else:
            content.append({"type": "text", "text": NO_VISION_TEXT})
    return content


def _text_of(parts: list[TextPart | ImagePart], *, image_text: str | None = None) -> str:
    """The text parts joined; images become ``image_text`` or are left out."""
    texts = [
        part.text if isinstance(part, TextPart) else image_text
        for part in parts
        if isinstance(part, TextPart) or image_text is not None
    ]
    return "\n\n".join(text for text in texts if text is not None)


def to_openai_messages(
    messages: list[Message], *, vision: bool = True
) -> list[ChatCompletionMessageParam]:
    """Corral messages as Chat Completions messages.

    Tool messages may only carry text, so a tool result's images follow the run of tool messages
    as one user message (the API wants every tool answer right after the assistant's calls).
    """
    out: list[ChatCompletionMessageParam] = []
    no_image = None if vision else NO_VISION_TEXT
    pending_images: list[ChatCompletionContentPartParam] = []

    def flush_images() -> None:
        if pending_images:
            out.append({"role": "user", "content": list(pending_images)})
            pending_images.clear()

    for message in messages:
        if message.role != "tool":
            flush_images()
        if message.role == "system":
            out.append({"role": "system", "content": _text_of(message.content)})
        elif message.role == "user":
            out.append({"role": "user", "content": _user_content(message.content, vision=vision)})
        elif message.role == "assistant":
            calls: list[ChatCompletionMessageFunctionToolCallParam] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in message.tool_calls
            ]
            text = _text_of(message.content)
            if calls:
                out.append({"role": "assistant", "content": text or None, "tool_calls": calls})
            else:
                out.append({"role": "assistant", "content": text})
        else:
            if message.tool_call_id is None:
                raise ValueError("a tool message needs the tool_call_id it answers")
            images = [p for p in message.content if isinstance(p, ImagePart)]
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": message.tool_call_id,
                    "content": _text_of(message.content, image_text=no_image),
                }
            )
            if images and vision:
                pending_images.append(
                    {"type": "text", "text": f"Images from tool call {message.tool_call_id}:"}
                )
                pending_images.extend(
                    {"type": "image_url", "image_url": {"url": _image_url(image)}}
                    for image in images
                )
    flush_images()
    return out


def to_openai_tool(tool: ToolSpec) -> ChatCompletionFunctionToolParam:
    """A corral tool as a Chat Completions function tool."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def to_openai_tool_choice(
    choice: str, tools: list[ToolSpec]
) -> ChatCompletionToolChoiceOptionParam:
    """``auto``/``required``/``none`` as they are; any other value forces that tool."""
    if choice == "auto":
        return "auto"
    if choice == "required":
        return "required"
    if choice == "none":
        return "none"
    if choice not in {tool.name for tool in tools}:
        raise ValueError(f"tool_choice {choice!r} names no tool of this request")
    return {"type": "function", "function": {"name": choice}}


def to_openai_response_format(schema: dict[str, Any]) -> ResponseFormatJSONSchema:
    """Structured output: non-strict, so any JSON schema is accepted (corral validates)."""
    return {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": False},
    }
