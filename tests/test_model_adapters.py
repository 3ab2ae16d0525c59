"""The OpenAI and Anthropic adapters against the real SDKs, over an in-process HTTP transport.

No network: each test scripts the provider's HTTP answers with ``httpx2.MockTransport`` (the
transport of the HTTP library both SDKs are built on) and asserts on the JSON the SDK actually sent.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest

from runtime.models.anthropic_messages import AnthropicModel
from runtime.models.errors_map import ModelRequestError
from runtime.models.openai_chat import OpenAIChatModel
from runtime.models.types import (
    ImagePart,
    InvalidModelOutputError,
    Message,
    Model,
    ModelAuthError,
    ModelConfigError,
    ModelError,
    ModelRateLimitError,
    ModelSettings,
    ModelTimeoutError,
    ModelUnavailableError,
    TextPart,
    ToolCall,
    ToolSpec,
)

KEY = "sk-corral-test-0123456789abcdef"
OPENAI_URL = "http://openai.test/v1"
ANTHROPIC_URL = "http://anthropic.test"
IMAGE_B64 = base64.b64encode(b"\xff\xd8\xff\xe0 not really a jpeg").decode()
# Short server-directed backoff so retry tests take milliseconds.
RETRY_NOW = {"retry-after-ms": "1"}

CLICK = ToolSpec(
    name="click",
    description="Click an element by its ref.",
    parameters={"type": "object", "properties": {"ref": {"type": "string"}}, "required": ["ref"]},
)
DONE = ToolSpec(
    name="done",
    description="Finish the task.",
    parameters={"type": "object", "properties": {"summary": {"type": "string"}}},
)

Step = httpx2.Response | Exception | Callable[[httpx2.Request], httpx2.Response]


class Script:
    """A MockTransport handler: answers with the scripted steps in order, records every request."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if not self.steps:
            # Not an exception: the SDKs would retry or wrap it; a 418 fails the test visibly.
            return httpx2.Response(418, json={"error": {"message": "unscripted request"}})
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx2.Response):
            return step
        return step(request)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]


@asynccontextmanager
async def openai_model(
    script: Script, *, key: str = KEY, **kwargs: Any
) -> AsyncIterator[OpenAIChatModel]:
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(script)) as http:
        yield OpenAIChatModel(
            "gpt-test", api_key=key, base_url=OPENAI_URL, http_client=http, **kwargs
        )


@asynccontextmanager
async def anthropic_model(
    script: Script, *, key: str = KEY, **kwargs: Any
) -> AsyncIterator[AnthropicModel]:
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(script)) as http:
        yield AnthropicModel(
            "claude-test", api_key=key, base_url=ANTHROPIC_URL, http_client=http, **kwargs
        )


ADAPTERS = {"openai": openai_model, "anthropic": anthropic_model}


def chat_completion(
    *, content: str | None = "ok", tool_calls: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-test",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
        **extra,
    }


def claude_message(
    *content: dict[str, Any], stop: str = "end_turn", usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": list(content) or [{"type": "text", "text": "ok"}],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 10, "output_tokens": 2},
    }


def ok_body(provider: str) -> dict[str, Any]:
    return chat_completion() if provider == "openai" else claude_message()


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"type": "error", "code": str(status), "message": message}}


def conversation() -> list[Message]:
    """A step of a browser agent: a screenshot, an earlier call and its result with an image."""
    return [
        Message.text("system", "You operate a web portal."),
        Message(
            role="user",
            content=[TextPart(text="Open the invoices."), ImagePart(data_b64=IMAGE_B64)],
        ),
        Message(
            role="assistant",
            content=[TextPart(text="Looking at the menu.")],
            tool_calls=[ToolCall(id="call_0", name="click", arguments='{"ref": "e3"}')],
        ),
        Message(
            role="tool",
            tool_call_id="call_0",
            content=[
                TextPart(text="clicked e3"),
                ImagePart(media_type="image/png", data_b64=IMAGE_B64),
            ],
        ),
        Message.text("user", "What next?"),
    ]


SETTINGS = ModelSettings(max_tokens=300, temperature=0.2, tool_choice="required")


# --- OpenAI Chat Completions ------------------------------------------------------------------


async def test_openai_tool_call_round_trip_with_image() -> None:
    script = Script(
        httpx2.Response(
            200,
            json=chat_completion(
                content=None,
                tool_calls=[
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "click", "arguments": '{"ref": "e12"}'},
                    },
                    # Malformed JSON is the agent loop's to judge: it must come back untouched.
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "done", "arguments": '{"summary": '},
                    },
                ],
            ),
        )
    )
    async with openai_model(script) as model:
        response = await model.request(conversation(), [CLICK, DONE], SETTINGS)

    (request,) = script.requests
    assert request.url == f"{OPENAI_URL}/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = script.bodies[0]
    assert body["model"] == "gpt-test"
    assert body["max_completion_tokens"] == 300
    assert "max_tokens" not in body
    assert body["temperature"] == 0.2
    assert body["tool_choice"] == "required"
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "click",
                "description": CLICK.description,
                "parameters": CLICK.parameters,
            },
        },
        {
            "type": "function",
            "function": {
                "name": "done",
                "description": DONE.description,
                "parameters": DONE.parameters,
            },
        },
    ]
    system, user, assistant, tool, images, last = body["messages"]
    assert system == {"role": "system", "content": "You operate a web portal."}
    assert user == {
        "role": "user",
        "content": [
            {"type": "text", "text": "Open the invoices."},
            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{IMAGE_B64}"}},
        ],
    }
    assert assistant == {
        "role": "assistant",
        "content": "Looking at the menu.",
        "tool_calls": [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "click", "arguments": '{"ref": "e3"}'},
            }
        ],
    }
    assert tool == {"role": "tool", "tool_call_id": "call_0", "content": "clicked e3"}
    # Tool messages carry text only: the result's image follows as a user message.
    assert images["role"] == "user"
    assert images["content"][1] == {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{IMAGE_B64}"},
    }
    assert last == {"role": "user", "content": "What next?"}

    assert response.tool_calls == [
        ToolCall(id="call_1", name="click", arguments='{"ref": "e12"}'),
        ToolCall(id="call_2", name="done", arguments='{"summary": '),
    ]
    assert response.text == ""
    assert response.finish_reason == "tool_calls"
    assert (response.provider, response.model) == ("openai", "gpt-test")
    assert response.latency_ms > 0


async def test_openai_usage_with_cached_and_reasoning_tokens() -> None:
    detailed = chat_completion(
        usage={
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 256},
        }
    )
    # A compatible server that reports only the basic counts, and one without usage at all.
    bare = chat_completion()
    no_usage = {k: v for k, v in chat_completion().items() if k != "usage"}
    script = Script(*(httpx2.Response(200, json=b) for b in (detailed, bare, no_usage)))
    async with openai_model(script) as model:
        first = await model.request([Message.text("user", "hi")], [], ModelSettings())
        second = await model.request([Message.text("user", "hi")], [], ModelSettings())
        third = await model.request([Message.text("user", "hi")], [], ModelSettings())

    assert first.usage.model_dump() == {
        "input_tokens": 1200,
        "output_tokens": 300,
        "cached_tokens": 1024,
        "cache_write_tokens": 64,
        "reasoning_tokens": 256,
    }
    assert first.text == "ok"
    assert first.finish_reason == "stop"
    assert second.usage.model_dump() == {
        "input_tokens": 10,
        "output_tokens": 2,
        "cached_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
    }
    assert third.usage.input_tokens == 0
    # No tools: neither tools nor tool_choice may be sent (the API rejects a lone tool_choice).
    assert all("tools" not in b and "tool_choice" not in b for b in script.bodies)
    assert all("temperature" not in b for b in script.bodies)


async def test_openai_forced_tool_and_response_schema() -> None:
    schema = {"type": "object", "properties": {"total": {"type": "number"}}}
    script = Script(
        httpx2.Response(200, json=chat_completion()),
        httpx2.Response(200, json=chat_completion(content='{"total": 12.5}')),
    )
    async with openai_model(script) as model:
        await model.request(
            [Message.text("user", "pay")], [CLICK, DONE], ModelSettings(tool_choice="done")
        )
        answer = await model.request(
            [Message.text("user", "total?")], [], ModelSettings(response_schema=schema)
        )

    forced, structured = script.bodies
    assert forced["tool_choice"] == {"type": "function", "function": {"name": "done"}}
    assert structured["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": False},
    }
    assert json.loads(answer.text) == {"total": 12.5}


async def test_openai_without_vision_sends_no_images() -> None:
    script = Script(httpx2.Response(200, json=chat_completion()))
    async with openai_model(script, supports_vision=False) as model:
        await model.request(conversation(), [CLICK], ModelSettings())

    sent = json.dumps(script.bodies[0])
    assert IMAGE_B64 not in sent
    assert "image_url" not in sent
    assert "does not accept images" in sent


async def test_openai_sparse_compatible_server_answers() -> None:
    """Local servers leave fields out: a call without an id gets one; no choice is an error."""
    sparse = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "tool_calls": [
                        {"type": "function", "function": {"name": "click", "arguments": "{}"}}
                    ],
                }
            }
        ]
    }
    script = Script(httpx2.Response(200, json=sparse), httpx2.Response(200, json={"choices": []}))
    async with openai_model(script, provider="lmstudio") as model:
        response = await model.request([Message.text("user", "hi")], [CLICK], ModelSettings())
        with pytest.raises(InvalidModelOutputError, match="lmstudio:gpt-test"):
            await model.request([Message.text("user", "hi")], [CLICK], ModelSettings())

    assert response.tool_calls == [ToolCall(id="call_0", name="click", arguments="{}")]
    assert response.usage.input_tokens == 0
    assert response.finish_reason is None


# --- Anthropic Messages ---------------------------------------------------------------------


async def test_anthropic_tool_call_round_trip_with_image() -> None:
    script = Script(
        httpx2.Response(
            200,
            json=claude_message(
                {"type": "text", "text": "Opening invoices."},
                {"type": "tool_use", "id": "toolu_1", "name": "click", "input": {"ref": "e12"}},
                stop="tool_use",
            ),
        )
    )
    async with anthropic_model(script) as model:
        response = await model.request(conversation(), [CLICK, DONE], SETTINGS)

    (request,) = script.requests
    assert request.url == f"{ANTHROPIC_URL}/v1/messages"
    body = script.bodies[0]
    assert body["model"] == "claude-test"
    assert body["max_tokens"] == 300
    # SDK 2.x speaks an API version that rejects sampling parameters outright.
    assert "temperature" not in body
    assert body["tool_choice"] == {"type": "any"}
    assert [t["name"] for t in body["tools"]] == ["click", "done"]
    assert body["tools"][0] == {
        "name": "click",
        "description": CLICK.description,
        "input_schema": CLICK.parameters,
    }
    assert body["system"] == [{"type": "text", "text": "You operate a web portal."}]
    user, assistant, results = body["messages"]
    assert user == {
        "role": "user",
        "content": [
            {"type": "text", "text": "Open the invoices."},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/jpeg", "data": IMAGE_B64},
            },
        ],
    }
    assert assistant == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Looking at the menu."},
            {"type": "tool_use", "id": "call_0", "name": "click", "input": {"ref": "e3"}},
        ],
    }
    # The tool result (with its image) and the next user text form one user turn, results first.
    assert results["role"] == "user"
    result, follow_up = results["content"]
    assert result["type"] == "tool_result"
    assert result["tool_use_id"] == "call_0"
    assert result["content"][0] == {"type": "text", "text": "clicked e3"}
    assert result["content"][1]["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": IMAGE_B64,
    }
    assert follow_up == {"type": "text", "text": "What next?"}

    assert response.text == "Opening invoices."
    assert response.tool_calls == [ToolCall(id="toolu_1", name="click", arguments='{"ref": "e12"}')]
    assert json.loads(response.tool_calls[0].arguments) == {"ref": "e12"}
    assert response.finish_reason == "tool_use"
    assert (response.provider, response.model) == ("anthropic", "claude-test")


async def test_anthropic_usage_with_cache_and_thinking_tokens() -> None:
    usage = {
        "input_tokens": 40,
        "output_tokens": 300,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 160,
        "output_tokens_details": {"thinking_tokens": 120},
    }
    script = Script(
        httpx2.Response(200, json=claude_message(usage=usage)),
        httpx2.Response(200, json=claude_message()),
    )
    async with anthropic_model(script) as model:
        first = await model.request([Message.text("user", "hi")], [], ModelSettings())
        second = await model.request([Message.text("user", "hi")], [], ModelSettings())

    # input_tokens counts every prompt token, as OpenAI's does; the cache counts are subsets.
    assert first.usage.model_dump() == {
        "input_tokens": 1200,
        "output_tokens": 300,
        "cached_tokens": 1000,
        "cache_write_tokens": 160,
        "reasoning_tokens": 120,
    }
    assert second.usage.model_dump() == {
        "input_tokens": 10,
        "output_tokens": 2,
        "cached_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
    }
    assert all("tools" not in b and "tool_choice" not in b for b in script.bodies)


async def test_anthropic_cache_control_on_last_tool_and_cached_messages() -> None:
    messages = [
        Message(role="system", content=[TextPart(text="Rules."), TextPart(text="More rules.")]),
        Message(
            role="user",
            content=[TextPart(text="Task: pay invoice 7."), ImagePart(data_b64=IMAGE_B64)],
            cache=True,
        ),
        Message(
            role="assistant",
            tool_calls=[
                ToolCall(id="a", name="click", arguments='{"ref": "e1"}'),
                ToolCall(id="b", name="click", arguments="{not json"),
            ],
        ),
        Message.text("tool", "clicked e1").model_copy(update={"tool_call_id": "a"}),
        Message.text("tool", "clicked e2").model_copy(update={"tool_call_id": "b", "cache": True}),
        Message.text("user", "Now?"),
    ]
    script = Script(httpx2.Response(200, json=claude_message()))
    async with anthropic_model(script) as model:
        await model.request(messages, [CLICK, DONE], ModelSettings())

    body = script.bodies[0]
    ephemeral = {"type": "ephemeral"}
    assert "cache_control" not in body["tools"][0]
    assert body["tools"][-1]["cache_control"] == ephemeral
    assert body["tool_choice"] == {"type": "auto"}
    assert body["system"] == [
        {"type": "text", "text": "Rules."},
        {"type": "text", "text": "More rules."},
    ]
    user, assistant, results = body["messages"]
    # The cached message's last block (the screenshot) ends the cached prefix.
    assert "cache_control" not in user["content"][0]
    assert user["content"][-1]["type"] == "image"
    assert user["content"][-1]["cache_control"] == ephemeral
    # Earlier calls are sent back as parsed input; unparseable arguments survive as text.
    assert [block["input"] for block in assistant["content"]] == [
        {"ref": "e1"},
        {"raw_arguments": "{not json"},
    ]
    # Consecutive tool results are grouped into one user turn, the follow-up text after them.
    assert [block["type"] for block in results["content"]] == ["tool_result", "tool_result", "text"]
    first, second, follow_up = results["content"]
    assert [first["tool_use_id"], second["tool_use_id"]] == ["a", "b"]
    assert "cache_control" not in first
    assert second["cache_control"] == ephemeral
    assert "cache_control" not in follow_up
    breakpoints = json.dumps(body).count('"cache_control"')
    assert breakpoints == 3


async def test_anthropic_caps_cache_breakpoints_at_four() -> None:
    messages = [
        Message(role="system", content=[TextPart(text="Rules.")], cache=True),
        *(
            Message(role=r, content=[TextPart(text=f"turn {i}")], cache=True)
            for i, r in enumerate(["user", "assistant", "user", "assistant", "user"])
        ),
    ]
    script = Script(httpx2.Response(200, json=claude_message()))
    async with anthropic_model(script) as model:
        await model.request(messages, [CLICK], ModelSettings())

    body = script.bodies[0]
    assert json.dumps(body).count('"cache_control"') == 4
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    # The system prompt's breakpoint (every request's prefix) and the latest ones (the longest
    # prefix, and the one before it) are kept.
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    marked = ["cache_control" in m["content"][0] for m in body["messages"]]
    assert marked == [False, False, False, True, True]


@pytest.mark.parametrize(
    ("schema", "tool_input", "expected"),
    [
        (
            {"type": "object", "properties": {"total": {"type": "number"}}},
            {"total": 12.5},
            {"total": 12.5},
        ),
        # Tool inputs must be objects: other schemas are wrapped and the answer unwrapped.
        ({"type": "array", "items": {"type": "string"}}, {"value": ["a", "b"]}, ["a", "b"]),
    ],
)
async def test_anthropic_response_schema_forces_output_tool(
    schema: dict[str, Any], tool_input: dict[str, Any], expected: Any
) -> None:
    script = Script(
        httpx2.Response(
            200,
            json=claude_message(
                {"type": "tool_use", "id": "toolu_9", "name": "output", "input": tool_input},
                stop="tool_use",
            ),
        )
    )
    async with anthropic_model(script) as model:
        answer = await model.request(
            [Message.text("user", "total?")], [CLICK], ModelSettings(response_schema=schema)
        )

    body = script.bodies[0]
    assert body["tool_choice"] == {"type": "tool", "name": "output"}
    assert [t["name"] for t in body["tools"]] == ["click", "output"]
    output_tool = body["tools"][-1]
    if schema["type"] == "object":
        assert output_tool["input_schema"] == schema
    else:
        assert output_tool["input_schema"]["properties"]["value"] == schema
    assert output_tool["cache_control"] == {"type": "ephemeral"}
    assert json.loads(answer.text) == expected
    assert answer.tool_calls == []


# --- Errors and retries, both SDKs ----------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("status", [401, 403])
async def test_auth_error_is_not_retried(provider: str, status: int) -> None:
    script = Script(
        httpx2.Response(status, json=error_body(status, "invalid x-api-key"), headers=RETRY_NOW)
    )
    async with ADAPTERS[provider](script, max_retries=2) as model:
        with pytest.raises(ModelAuthError) as caught:
            await model.request([Message.text("user", "hi")], [], ModelSettings())

    assert len(script.requests) == 1
    assert caught.value.retryable is False
    assert f"{model.label} " in str(caught.value)
    assert str(status) in str(caught.value)
    assert (caught.value.provider, caught.value.model) == (model.provider, model.name)
    # Not chained to the SDK exception: its message and request may carry the key.
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_rate_limit_then_success_uses_sdk_retries(provider: str) -> None:
    limited = httpx2.Response(429, json=error_body(429, "slow down"), headers=RETRY_NOW)
    script = Script(limited, limited, httpx2.Response(200, json=ok_body(provider)))
    async with ADAPTERS[provider](script, max_retries=2) as model:
        response = await model.request([Message.text("user", "hi")], [], ModelSettings())

    assert response.text == "ok"
    assert len(script.requests) == 3
    # Every attempt sent the same body.
    assert len({request.content for request in script.requests}) == 1


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_rate_limit_exhausted(provider: str) -> None:
    limited = httpx2.Response(429, json=error_body(429, "slow down"), headers=RETRY_NOW)
    script = Script(limited, limited)
    async with ADAPTERS[provider](script, max_retries=1) as model:
        with pytest.raises(ModelRateLimitError) as caught:
            await model.request([Message.text("user", "hi")], [], ModelSettings())

    assert len(script.requests) == 2
    assert caught.value.retryable is True
    assert "429" in str(caught.value)
    assert "slow down" in str(caught.value)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("status", [500, 503, 529])
async def test_server_errors_exhaust_into_unavailable(provider: str, status: int) -> None:
    failing = httpx2.Response(status, json=error_body(status, "overloaded"), headers=RETRY_NOW)
    script = Script(failing, failing, failing)
    async with ADAPTERS[provider](script, max_retries=2) as model:
        with pytest.raises(ModelUnavailableError) as caught:
            await model.request([Message.text("user", "hi")], [], ModelSettings())

    assert len(script.requests) == 3
    assert caught.value.retryable is True
    assert str(status) in str(caught.value)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_timeout_maps_to_model_timeout(provider: str) -> None:
    script = Script(httpx2.ReadTimeout("read timed out"))
    async with ADAPTERS[provider](script, max_retries=0) as model:
        with pytest.raises(ModelTimeoutError) as caught:
            await model.request([Message.text("user", "hi")], [], ModelSettings(timeout_s=5))

    assert len(script.requests) == 1
    assert caught.value.retryable is True
    assert model.label in str(caught.value)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_timeout_then_success_is_retried(provider: str) -> None:
    script = Script(
        httpx2.ReadTimeout("read timed out"), httpx2.Response(200, json=ok_body(provider))
    )
    async with ADAPTERS[provider](script, max_retries=1) as model:
        response = await model.request([Message.text("user", "hi")], [], ModelSettings())

    assert response.text == "ok"
    assert len(script.requests) == 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_connection_error_maps_to_unavailable(provider: str) -> None:
    script = Script(httpx2.ConnectError("connection refused"))
    async with ADAPTERS[provider](script, max_retries=0) as model:
        with pytest.raises(ModelUnavailableError) as caught:
            await model.request([Message.text("user", "hi")], [], ModelSettings())

    assert "could not be reached" in str(caught.value)
    assert "connection refused" in str(caught.value)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("status", [400, 404, 422])
async def test_bad_request_is_not_retryable(provider: str, status: int) -> None:
    script = Script(httpx2.Response(status, json=error_body(status, "model: unknown model")))
    async with ADAPTERS[provider](script, max_retries=2) as model:
        with pytest.raises(ModelRequestError) as caught:
            await model.request([Message.text("user", "hi")], [], ModelSettings())

    assert len(script.requests) == 1
    assert isinstance(caught.value, ModelError)
    assert caught.value.retryable is False
    assert "unknown model" in str(caught.value)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("key", [KEY, "plain-token-ABCDEFGH12345678"])
@pytest.mark.parametrize(
    "failure",
    [
        401,
        400,
        429,
        500,
        httpx2.ReadTimeout("timed out"),
        httpx2.ConnectError("refused"),
    ],
    ids=["401", "400", "429", "500", "timeout", "connect"],
)
async def test_api_key_never_in_error_message(
    provider: str, key: str, failure: int | Exception
) -> None:
    def echo_key(request: httpx2.Request) -> httpx2.Response:
        assert isinstance(failure, int)
        # Providers quote (part of) the key back on auth errors; a careless gateway quotes it all.
        message = f"Incorrect API key provided: {key} (header {request.headers['authorization']})"
        return httpx2.Response(failure, json=error_body(failure, message))

    script = Script(failure if isinstance(failure, Exception) else echo_key)
    async with ADAPTERS[provider](script, key=key, max_retries=0) as model:
        with pytest.raises(ModelError) as caught:
            await model.request([Message.text("user", "hi")], [], ModelSettings())

    assert key in script.requests[0].headers["authorization"]
    assert key not in str(caught.value)
    assert key not in repr(caught.value)
    assert key[-8:] not in str(caught.value)


@pytest.mark.parametrize("cls", [OpenAIChatModel, AnthropicModel])
def test_missing_key_is_a_config_error(cls: type[OpenAIChatModel | AnthropicModel]) -> None:
    with pytest.raises(ModelConfigError, match="no API key"):
        cls("m", api_key="")


async def test_compatible_server_without_key_gets_a_placeholder() -> None:
    script = Script(httpx2.Response(200, json=chat_completion()))
    async with openai_model(script, key="", provider="ollama") as model:
        response = await model.request([Message.text("user", "hi")], [], ModelSettings())

    assert isinstance(model, Model)
    assert model.label == "ollama:gpt-test"
    assert response.provider == "ollama"
    assert script.requests[0].headers["authorization"] == "Bearer unused"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_tool_choice_must_name_a_tool(provider: str) -> None:
    script = Script()
    async with ADAPTERS[provider](script) as model:
        with pytest.raises(ValueError, match="names no tool"):
            await model.request(
                [Message.text("user", "hi")], [CLICK], ModelSettings(tool_choice="nope")
            )
    assert script.requests == []


# --- Closing ----------------------------------------------------------------------------------

CLASSES: dict[str, type[OpenAIChatModel | AnthropicModel]] = {
    "openai": OpenAIChatModel,
    "anthropic": AnthropicModel,
}
URLS = {"openai": OPENAI_URL, "anthropic": ANTHROPIC_URL}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_aclose_closes_a_client_the_model_built(provider: str) -> None:
    model = CLASSES[provider]("m", api_key=KEY, base_url=URLS[provider])
    assert model.provider == provider and not model.is_closed()
    await model.aclose()
    assert model.is_closed()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_aclose_never_closes_an_injected_http_client(provider: str) -> None:
    script = Script(
        httpx2.Response(200, json=ok_body(provider)), httpx2.Response(200, json=ok_body(provider))
    )
    async with ADAPTERS[provider](script) as model:
        await model.request([Message.text("user", "hi")], [], ModelSettings())
        await model.aclose()
        assert not model.is_closed()
        # The caller's client still works, for this model too.
        response = await model.request([Message.text("user", "again")], [], ModelSettings())
    assert response.text == "ok" and len(script.requests) == 2
    assert model.is_closed()  # closed by its owner, the ``async with`` above
