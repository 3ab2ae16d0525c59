"""The model seam: corral's own message, tool and response types, and the ``Model`` ABC.

Only these types cross the seam; adapters translate them to and from the SDKs.

"Tool" here keeps the model APIs' term: a :class:`ToolSpec` is a function offered to a model and
a :class:`ToolCall` the model's request to call one (the planner's toolset is in
:mod:`runtime.agent.toolset`). The ``tools`` package, the browser actions some of those calls
run, is another thing. Errors::

    RunError
    └── ModelError                 ``retryable`` says whether the next model in a chain may help
        ├── ModelAuthError         401/403: wrong or missing key (not retryable here, try the next)
        ├── ModelRateLimitError    429
        ├── ModelUnavailableError  5xx, connection errors
        ├── ModelTimeoutError      the request timed out
        ├── ModelRequestError      400/404/413/422: the request itself was refused (not retried)
        ├── InvalidModelOutputError  unparseable tool arguments, wrong structured output
        └── ChainExhaustedError    every model of a chain failed (lists every attempt)
    UserError
    └── ModelConfigError           unknown provider or model, missing API key (names the env var)
"""

from __future__ import annotations

import abc
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from profiles import RunError, UserError

__all__ = [
    "ChainExhaustedError",
    "ImagePart",
    "InvalidModelOutputError",
    "Message",
    "Model",
    "ModelAuthError",
    "ModelConfigError",
    "ModelError",
    "ModelRateLimitError",
    "ModelRequestError",
    "ModelResponse",
    "ModelSettings",
    "ModelTimeoutError",
    "ModelUnavailableError",
    "TextPart",
    "ToolCall",
    "ToolSpec",
    "Usage",
]


class ModelError(RunError):
    """A model call failed."""

    retryable: bool = True

    def __init__(self, message: str, *, provider: str = "", model: str = "") -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model


class ModelAuthError(ModelError):
    """The provider refused the credentials (401/403)."""

    retryable = False


class ModelRateLimitError(ModelError):
    """429: too many requests or tokens."""


class ModelUnavailableError(ModelError):
    """5xx or a connection failure."""


class ModelTimeoutError(ModelError):
    """The request did not finish in time."""


class InvalidModelOutputError(ModelError):
    """The model answered with something corral cannot use."""


class ModelRequestError(ModelError):
    """The provider rejected the request itself (400/404/413/422): resending it will not help."""

    retryable = False


class ChainExhaustedError(ModelError):
    """Every model in a fallback chain failed."""

    retryable = False


class ModelConfigError(UserError):
    """Bad model configuration: unknown provider/model, missing API key."""


class TextPart(BaseModel):
    """Text content."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["text"] = "text"
    text: str


class ImagePart(BaseModel):
    """An image (a screenshot), base64-encoded."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["image"] = "image"
    media_type: Literal["image/jpeg", "image/png"] = "image/jpeg"
    data_b64: str = Field(repr=False)


class ToolCall(BaseModel):
    """A tool call requested by the model; ``arguments`` is the raw JSON text."""

    model_config = ConfigDict(extra="forbid")
    id: str
    name: str
    arguments: str


class Message(BaseModel):
    """One message of a conversation."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant", "tool"]
    content: list[TextPart | ImagePart] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list, description="assistant only")
    tool_call_id: str | None = Field(None, description="tool messages: the call answered")
    cache: bool = Field(False, description="end of a stable prefix (prompt caching)")

    @classmethod
    def text(cls, role: Literal["system", "user", "assistant", "tool"], text: str) -> Message:
        """A message with one text part."""
        return cls(role=role, content=[TextPart(text=text)])


class ToolSpec(BaseModel):
    """A tool the model may call: name, description, JSON schema of its arguments."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str
    parameters: dict[str, Any]


class ModelSettings(BaseModel):
    """Per-request settings."""

    model_config = ConfigDict(extra="forbid")
    max_tokens: int = 1024
    temperature: float | None = None
    tool_choice: Literal["auto", "required", "none"] | str = "auto"
    response_schema: dict[str, Any] | None = Field(
        None, description="structured output: the answer must be JSON matching this schema"
    )
    timeout_s: float | None = None


class Usage(BaseModel):
    """Token counts, normalised across providers."""

    model_config = ConfigDict(extra="forbid")
    input_tokens: int = Field(0, description="every prompt token, cached and cache-write included")
    output_tokens: int = Field(0, description="every completion token, reasoning included")
    cached_tokens: int = Field(0, description="input tokens served from a prompt cache")
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


class ModelResponse(BaseModel):
    """What a model answered."""

    model_config = ConfigDict(extra="forbid")
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    provider: str
    model: str
    finish_reason: str | None = None
    latency_ms: float = 0.0


class Model(abc.ABC):
    """A chat model: one async request method; only corral's types cross it."""

    provider: str = ""
    name: str = ""
    supports_vision: bool = True

    @abc.abstractmethod
    async def request(
        self, messages: list[Message], tools: list[ToolSpec], settings: ModelSettings
    ) -> ModelResponse:
        """Send a conversation; return the answer or raise a :class:`ModelError`."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most fakes hold nothing
        """Release what the model holds (an SDK client's connections); nothing by default."""

    @property
    def label(self) -> str:
        """``provider:model``."""
        return f"{self.provider}:{self.name}"
