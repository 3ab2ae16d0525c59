"""Fallback chains with a circuit breaker, and the record of every attempt.

A :class:`ModelChain` tries its models in order. A model is skipped while its provider's circuit
is open (after ``failures`` consecutive failures, for ``cooldown_s``) or when it cannot be built
(missing API key). Any :class:`ModelError` (after the SDK's own retries), a timeout, or output that
``validate`` rejects moves on to the next model; every attempt is reported through ``on_attempt``
with its reason, and when all fail, :class:`ChainExhaustedError` lists each one.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from runtime.models.types import (
    ChainExhaustedError,
    InvalidModelOutputError,
    Message,
    Model,
    ModelConfigError,
    ModelError,
    ModelResponse,
    ModelSettings,
    ToolSpec,
)

__all__ = ["Attempt", "CircuitBreaker", "ModelChain"]


@dataclass
class Attempt:
    """One try of one model in a chain."""

    label: str
    outcome: str  # ok | error | skipped
    reason: str | None = None
    response: ModelResponse | None = None
    latency_ms: float = 0.0


@dataclass
class CircuitBreaker:
    """Per-provider consecutive-failure counter with a cool-down; shared across chains."""

    failures: int = 3
    cooldown_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _count: dict[str, int] = field(default_factory=dict)
    _open_until: dict[str, float] = field(default_factory=dict)

    def is_open(self, provider: str) -> bool:
        """True while the provider is being skipped."""
        until = self._open_until.get(provider)
        if until is None:
            return False
        if self.clock() >= until:
            # Half-open: let one request through; a failure re-opens at once.
            del self._open_until[provider]
            self._count[provider] = self.failures - 1
            return False
        return True

    def success(self, provider: str) -> None:
        """A provider answered."""
        self._count[provider] = 0

    def failure(self, provider: str) -> None:
        """A provider failed."""
        self._count[provider] = self._count.get(provider, 0) + 1
        if self._count[provider] >= self.failures:
            self._open_until[provider] = self.clock() + self.cooldown_s


class ModelChain:
    """An ordered chain of models for one role."""

    def __init__(
        self,
        role: str,
        models: list[Model | ModelConfigError],
        labels: list[str],
        breaker: CircuitBreaker,
        on_attempt: Callable[[str, Attempt], Awaitable[None]] | None = None,
    ) -> None:
        self.role = role
        self.models = models
        self.labels = labels
        self.breaker = breaker
        self.on_attempt = on_attempt

    @property
    def usable(self) -> list[Model]:
        """The models that could be built."""
        return [m for m in self.models if isinstance(m, Model)]

    async def _report(self, attempt: Attempt, attempts: list[Attempt]) -> None:
        attempts.append(attempt)
        if self.on_attempt is not None:
            await self.on_attempt(self.role, attempt)

    async def request(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        settings: ModelSettings,
        validate: Callable[[ModelResponse], None] | None = None,
        need_vision: bool = False,
    ) -> ModelResponse:
        """The first good answer along the chain."""
        attempts: list[Attempt] = []
        for label, model in zip(self.labels, self.models, strict=True):
            provider = label.partition(":")[0]
            if isinstance(model, ModelConfigError):
                await self._report(Attempt(label, "skipped", str(model)), attempts)
                continue
            if need_vision and not model.supports_vision:
                await self._report(Attempt(label, "skipped", "text-only model"), attempts)
                continue
            if self.breaker.is_open(provider):
                reason = f"circuit open for provider {provider} (repeated failures)"
                await self._report(Attempt(label, "skipped", reason), attempts)
                continue
            start = time.perf_counter()
            try:
                response = await model.request(messages, tools, settings)
                if validate is not None:
                    validate(response)
            except ModelError as exc:
                latency = (time.perf_counter() - start) * 1000
                if not isinstance(exc, InvalidModelOutputError):
                    self.breaker.failure(provider)
                reason = f"{type(exc).__name__}: {exc}"
                await self._report(Attempt(label, "error", reason, None, latency), attempts)
                continue
            self.breaker.success(provider)
            latency = (time.perf_counter() - start) * 1000
            response = response.model_copy(update={"latency_ms": round(latency, 1)})
            await self._report(Attempt(label, "ok", None, response, latency), attempts)
            return response
        listing = "; ".join(f"{a.label}: {a.reason}" for a in attempts)
        raise ChainExhaustedError(f"every {self.role} model failed: {listing}")
