"""Test doubles for the model seam, shipped with the package: drive the real loop offline.

- :class:`FunctionModel` decides with a Python function of the conversation.
- :class:`ScriptedModel` replies with prepared responses in order and fails when over- or
  under-consumed (call :meth:`ScriptedModel.assert_consumed` at the end).

Both record every request they receive (``requests``), so tests can check what a model was sent.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from runtime.models.types import (
    Message,
    Model,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolCall,
    ToolSpec,
    Usage,
)

__all__ = ["FunctionModel", "ModelRequest", "ScriptedModel", "call", "reply"]


class ModelRequest:
    """One request a fake model received."""

    def __init__(self, messages: list[Message], tools: list[ToolSpec], settings: ModelSettings):
        self.messages = messages
        self.tools = tools
        self.settings = settings

    def body(self) -> str:
        """Everything sent, as JSON text (for leak scans)."""
        return json.dumps(
            {
                "messages": [m.model_dump(mode="json") for m in self.messages],
                "tools": [t.model_dump(mode="json") for t in self.tools],
                "settings": self.settings.model_dump(mode="json"),
            }
        )

    @property
    def has_image(self) -> bool:
        """True if any message carries an image."""
        return any(p.type == "image" for m in self.messages for p in m.content)


def call(tool: str, /, **arguments: Any) -> ToolCall:
    """A tool call with JSON arguments (ids are filled in by the fake)."""
    return ToolCall(id="", name=tool, arguments=json.dumps(arguments))


def reply(
    *calls: ToolCall, text: str = "", input_tokens: int = 100, output_tokens: int = 20
) -> ModelResponse:
    """A prepared response."""
    return ModelResponse(
        text=text,
        tool_calls=list(calls),
        usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        provider="fake",
        model="fake",
    )


class _Fake(Model):
    provider = "fake"

    def __init__(self, name: str, supports_vision: bool, provider: str = "fake") -> None:
        self.name = name
        self.provider = provider
        self.supports_vision = supports_vision
        self.requests: list[ModelRequest] = []
        self._ids = 0

    def _finish(self, response: ModelResponse) -> ModelResponse:
        calls = []
        for c in response.tool_calls:
            self._ids += 1
            calls.append(c if c.id else c.model_copy(update={"id": f"call_{self._ids}"}))
        return response.model_copy(
            update={"tool_calls": calls, "provider": self.provider, "model": self.name}
        )


class FunctionModel(_Fake):
    """A model whose answer is ``fn(messages, tools)`` (sync or async)."""

    def __init__(
        self,
        fn: Callable[[list[Message], list[ToolSpec]], ModelResponse | Awaitable[ModelResponse]],
        name: str = "function",
        supports_vision: bool = True,
        provider: str = "fake",
    ) -> None:
        super().__init__(name, supports_vision, provider)
        self.fn = fn

    async def request(
        self, messages: list[Message], tools: list[ToolSpec], settings: ModelSettings
    ) -> ModelResponse:
        self.requests.append(ModelRequest(messages, tools, settings))
        out = self.fn(messages, tools)
        if not isinstance(out, ModelResponse):
            out = await out
        return self._finish(out)


class ScriptedModel(_Fake):
    """Replies in order; a ModelError in the script is raised instead of answered."""

    def __init__(
        self,
        script: Sequence[ModelResponse | ModelError],
        name: str = "scripted",
        supports_vision: bool = True,
        provider: str = "fake",
    ) -> None:
        super().__init__(name, supports_vision, provider)
        self.script = list(script)
        self.used = 0

    async def request(
        self, messages: list[Message], tools: list[ToolSpec], settings: ModelSettings
    ) -> ModelResponse:
        self.requests.append(ModelRequest(messages, tools, settings))
        if self.used >= len(self.script):
            raise AssertionError(
                f"ScriptedModel {self.name}: request {self.used + 1} but only "
                f"{len(self.script)} response(s) were scripted"
            )
        item = self.script[self.used]
        self.used += 1
        if isinstance(item, ModelError):
            raise item
        return self._finish(item)

    def assert_consumed(self) -> None:
        """Fail if some scripted responses were never asked for."""
        if self.used != len(self.script):
            raise AssertionError(
                f"ScriptedModel {self.name}: {len(self.script) - self.used} scripted "
                "response(s) never consumed"
            )
