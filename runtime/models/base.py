"""``SDKModel``: what the two provider adapters share, written once.

An adapter is a :class:`~runtime.models.types.Model` over a provider SDK's async client. Building
that client is the same for both SDKs: the API key (a placeholder for keyless compatible servers,
which the SDKs would otherwise refuse), an explicit base URL (so the SDK never reads one from the
environment: env is read at the edges), the timeout, the SDK's own retries, and an optional
injected ``httpx2.AsyncClient`` (a test transport, or the run's redacting client). So is sending:
time the call and translate the SDK's exception into a :class:`ModelError` without chaining it.
A subclass names its SDK client class and error class and keeps only what differs: the wire format.

Closing: :meth:`SDKModel.aclose` closes the connections of a client the model built itself. An
injected ``http_client`` belongs to the caller, who closes it; the model never does.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Awaitable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import httpx2

from runtime.models.types import Model, ModelConfigError, ModelError

__all__ = ["PLACEHOLDER_KEY", "SDKModel"]

PLACEHOLDER_KEY = "unused"
"""Sent when no key is given: local servers (Ollama, LM Studio, vLLM) ignore the key, but the
SDKs refuse an empty one."""

T = TypeVar("T")


class SDKClient(Protocol):
    """What corral needs of an SDK's async client besides its API calls."""

    async def close(self) -> None:
        """Close the client's HTTP connections."""

    def is_closed(self) -> bool:
        """True once the client's HTTP client is closed."""


ClientT = TypeVar("ClientT", bound=SDKClient)


class SDKModel(Model, Generic[ClientT]):
    """A model behind a provider SDK's async client (``openai.AsyncOpenAI``,
    ``anthropic.AsyncAnthropic``): client building, error translation and closing."""

    sdk_client: ClassVar[type[Any]]
    """The SDK's async client class; it takes ``api_key``, ``base_url``, ``timeout``,
    ``max_retries`` and ``http_client``."""
    sdk_error: ClassVar[type[Exception]]
    """The SDK's base exception: every one of them is translated into a ``ModelError``."""
    default_base_url: ClassVar[str]
    """The provider's own endpoint, used when no ``base_url`` is given."""
    default_provider: ClassVar[str]
    """The provider name in labels (``provider:model``) when none is given."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout_s: float = 60,
        max_retries: int = 2,
        http_client: httpx2.AsyncClient | None = None,
        provider: str | None = None,
        supports_vision: bool = True,
    ) -> None:
        provider = provider or self.default_provider
        self.name = model
        self.provider = provider
        self.supports_vision = supports_vision
        if not api_key and base_url is None:
            raise ModelConfigError(f"{provider}:{model}: no API key given")
        self._secrets = (api_key,) if api_key else ()
        self._owns_http_client = http_client is None
        self._client: ClientT = self.sdk_client(
            api_key=api_key or PLACEHOLDER_KEY,
            base_url=base_url or self.default_base_url,
            timeout=timeout_s,
            max_retries=max_retries,
            http_client=http_client,
        )

    @abc.abstractmethod
    def _translate(self, exc: Any) -> ModelError:
        """The corral error for ``exc``, an instance of :attr:`sdk_error`."""

    async def _send(self, call: Awaitable[T]) -> tuple[T, float]:
        """Await one SDK call: ``(its result, latency in ms)``, or raise a ``ModelError``."""
        started = time.perf_counter()
        try:
            result = await call
        except self.sdk_error as exc:
            # Not chained: the SDK's exception (its message, body, request headers) may carry
            # the API key, and a formatted traceback would print it through __cause__.
            raise self._translate(exc) from None
        return result, (time.perf_counter() - started) * 1000

    async def aclose(self) -> None:
        """Close the SDK client's connections, unless the HTTP client was passed in."""
        if self._owns_http_client:
            await self._client.close()

    def is_closed(self) -> bool:
        """True once the SDK client's HTTP client is closed (by this model or its owner)."""
        return self._client.is_closed()
