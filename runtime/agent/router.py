"""The model router for one run: a chain per model role (``ModelRole``: planner, vision,
extractor, shadow; not a user's role), the budget, and a record of every model call.

The router owns the model adapters it builds from the config and its redacting HTTP client;
:meth:`ModelRouter.aclose` closes them at the end of the run.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

from profiles import Redactor, RunError
from runtime.errors import BudgetExceededError
from runtime.models.config import ModelRole, ModelsConfig
from runtime.models.fallback import Attempt, CircuitBreaker, ModelChain
from runtime.models.pricing import Price, cost_usd, find_price
from runtime.models.redacting import redacting_client
from runtime.models.types import (
    ImagePart,
    Message,
    Model,
    ModelConfigError,
    ModelResponse,
    ModelSettings,
    TextPart,
    ToolSpec,
    Usage,
)
from runtime.records import ModelCallRecord
from runtime.store import Store

__all__ = ["BudgetExceededError", "Meter", "ModelRouter"]


class Meter:
    """Spend and tokens of one run against its caps."""

    def __init__(self, max_usd: float | None, max_tokens: int | None) -> None:
        self.max_usd = max_usd
        self.max_tokens = max_tokens
        self.usd = 0.0
        self.tokens = 0

    def check_before(self, estimate_usd: float, estimate_tokens: int) -> None:
        """Refuse a call that would, by its estimate, go past a cap."""
        if self.max_usd is not None and self.usd + estimate_usd > self.max_usd:
            raise BudgetExceededError(
                f"budget: the next model call (about ${estimate_usd:.4f}) would take the run "
                f"past max_usd={self.max_usd:g} (spent ${self.usd:.4f})"
            )
        if self.max_tokens is not None and self.tokens + estimate_tokens > self.max_tokens:
            raise BudgetExceededError(
                f"budget: the next model call (about {estimate_tokens} tokens) would take the "
                f"run past max_tokens={self.max_tokens} (used {self.tokens})"
            )

    def add(self, usd: float, tokens: int) -> None:
        """Count a finished call."""
        self.usd += usd
        self.tokens += tokens

    def enforce(self) -> None:
        """Stop if a cap was passed (estimates can be wrong)."""
        if self.max_usd is not None and self.usd > self.max_usd:
            raise BudgetExceededError(
                f"budget: spent ${self.usd:.4f}, past max_usd={self.max_usd:g}"
            )
        if self.max_tokens is not None and self.tokens > self.max_tokens:
            raise BudgetExceededError(
                f"budget: used {self.tokens} tokens, past max_tokens={self.max_tokens}"
            )


def _estimate_tokens(messages: list[Message], tools: list[ToolSpec]) -> int:
    # About 4 characters a token for text; an image costs on the order of 1,000 tokens.
    chars = sum(len(p.text) for m in messages for p in m.content if p.type == "text")
    chars += len(json.dumps([t.model_dump() for t in tools]))
    images = sum(1 for m in messages for p in m.content if p.type == "image")
    return chars // 4 + 1000 * images


class ModelRouter:
    """Chains per role for one run; every attempt is stored with tokens and cost."""

    def __init__(
        self,
        config: ModelsConfig,
        store: Store,
        run_id: str,
        meter: Meter,
        env: Mapping[str, str],
        breaker: CircuitBreaker | None = None,
        models: Mapping[str, list[Model]] | None = None,
        http_client: object = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.config = config
        self.redactor = redactor
        """The run's redactor, applied once more to every request sent to a model."""
        self._http: Any = None
        if redactor is not None and config.roles:
            # Every body the SDKs send goes through the run's redactor on the wire.
            self._http = redacting_client(redactor.text, redactor.data, http_client)
            http_client = self._http
        self.store = store
        self.run_id = run_id
        self.meter = meter
        self.step_idx: int | None = None
        self.errors: Counter[str] = Counter()
        """Failed calls by provider in this run (for the upstream-errors alert)."""
        self.prices = config.all_prices()
        breaker = breaker or CircuitBreaker(config.breaker.failures, config.breaker.cooldown_s)
        self._built: list[Model] = []
        """The adapters this router made from the config, closed by :meth:`aclose`."""
        self.chains: dict[str, ModelChain] = {}
        for role, labels in config.roles.items():
            chain: list[Model | ModelConfigError]
            if models is not None and role in models:
                chain = list(models[role])
                labels = [m.label for m in models[role]]
            else:
                chain = [config.build(label, env, http_client) for label in labels]
                self._built.extend(m for m in chain if isinstance(m, Model))
            self.chains[role] = ModelChain(role, chain, list(labels), breaker, self._record)
        for extra, injected in (models or {}).items():
            if extra not in self.chains:
                names = [m.label for m in injected]
                self.chains[extra] = ModelChain(extra, list(injected), names, breaker, self._record)

    def _redacted(self, messages: list[Message]) -> list[Message]:
        """``messages`` with every secret form in their text replaced (images are pixels)."""
        redactor = self.redactor
        if not redactor:
            return messages
        assert redactor is not None
        out = []
        for message in messages:
            content: list[TextPart | ImagePart] = [
                part.model_copy(update={"text": redactor.text(part.text)})
                if isinstance(part, TextPart)
                else part
                for part in message.content
            ]
            calls = [
                call.model_copy(update={"arguments": redactor.text(call.arguments)})
                for call in message.tool_calls
            ]
            out.append(message.model_copy(update={"content": content, "tool_calls": calls}))
        return out

    async def aclose(self) -> None:
        """Close what this router made: the SDK clients of the models it built from the config,
        then its redacting HTTP client. Injected models and an injected ``http_client`` belong
        to the caller and stay open. Safe to call twice."""
        built, self._built = self._built, []
        http, self._http = self._http, None
        async with AsyncExitStack() as stack:
            # Callbacks run last-in first-out, and each one even if an earlier one raised.
            if http is not None:
                # Closes its transport, and the inner client if the router made that too.
                stack.push_async_callback(http.aclose)
            for model in built:
                stack.push_async_callback(model.aclose)

    def has(self, role: ModelRole) -> bool:
        """True if the role has a chain."""
        return role in self.chains

    def _price(self, label: str) -> Price:
        price = find_price(label, self.prices)
        if price is None:
            raise ModelConfigError(f"no price for model '{label}'")
        return price

    async def _record(self, role: str, attempt: Attempt, outcome: Any = None) -> None:
        provider, _, model = attempt.label.partition(":")
        usage = attempt.response.usage if attempt.response else Usage()
        cost = cost_usd(usage, self._price(attempt.label)) if attempt.response else 0.0
        if attempt.response is not None:
            self.meter.add(cost, usage.input_tokens + usage.output_tokens)
        if attempt.outcome == "error":
            self.errors[provider] += 1
        await self.store.runs.add_model_call(
            ModelCallRecord(
                run_id=self.run_id,
                step_idx=self.step_idx,
                role=role,
                provider=provider,
                model=model,
                outcome=outcome or attempt.outcome,
                reason=attempt.reason,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cached_tokens=usage.cached_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                cost_usd=cost,
                latency_ms=round(attempt.latency_ms, 1),
                at=datetime.now(UTC),
            )
        )

    async def ask(
        self,
        role: ModelRole,
        messages: list[Message],
        tools: list[ToolSpec],
        settings: ModelSettings,
        validate: Callable[[ModelResponse], None] | None = None,
        need_vision: bool = False,
    ) -> ModelResponse:
        """One request along ``role``'s chain, within the budget."""
        chain = self.chains[role]
        messages = self._redacted(messages)
        self.meter.check_before(*self._estimate(chain, messages, tools, settings))
        response = await chain.request(messages, tools, settings, validate, need_vision)
        self.meter.enforce()
        return response

    async def shadow(
        self, messages: list[Message], tools: list[ToolSpec], settings: ModelSettings
    ) -> ModelResponse | None:
        """Ask the shadow planner (if configured); its answer is recorded, never executed."""
        chain = self.chains.get("shadow")
        if chain is None:
            return None
        messages = self._redacted(messages)
        try:
            # Trying a model must not overspend: a shadow call that would pass a cap is skipped.
            self.meter.check_before(*self._estimate(chain, messages, tools, settings))
            return await chain.request(messages, tools, settings)
        except RunError:
            return None

    def _estimate(
        self,
        chain: ModelChain,
        messages: list[Message],
        tools: list[ToolSpec],
        settings: ModelSettings,
    ) -> tuple[float, int]:
        """Estimated cost and tokens of a call, priced at the chain's first usable model."""
        first = next(
            (
                label
                for label, m in zip(chain.labels, chain.models, strict=True)
                if isinstance(m, Model)
            ),
            chain.labels[0],
        )
        tokens = _estimate_tokens(messages, tools)
        usage = Usage(input_tokens=tokens, output_tokens=settings.max_tokens)
        return cost_usd(usage, self._price(first)), tokens + settings.max_tokens
