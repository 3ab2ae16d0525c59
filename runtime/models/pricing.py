"""Prices per model (USD per 1M tokens) and the cost of a call.

The defaults are list prices of common OpenAI and Anthropic models as known when this table was
written; check them against your contract and override any of them in ``corral.toml``
(``[prices."provider:model"]``). A model is matched by the longest key that prefixes its name, so
dated snapshots (``claude-sonnet-4-5-20250929``) find their family's price.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from runtime.models.types import Usage

__all__ = ["DEFAULT_PRICES", "Price", "cost_usd", "find_price"]


class Price(BaseModel):
    """USD per 1M tokens."""

    model_config = ConfigDict(extra="forbid")
    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached: float | None = Field(None, ge=0, description="cache reads; default: input")
    cache_write: float | None = Field(None, ge=0, description="cache writes; default: input")


def _p(i: float, o: float, c: float, w: float | None = None) -> Price:
    return Price(input=i, output=o, cached=c, cache_write=w)


DEFAULT_PRICES: dict[str, Price] = {
    "openai:gpt-5.4-mini": _p(0.25, 2.00, 0.025),  # assumed equal to gpt-5-mini
    "openai:gpt-5.4-nano": _p(0.05, 0.40, 0.005),  # assumed equal to gpt-5-nano
    "openai:gpt-5-mini": _p(0.25, 2.00, 0.025),
    "openai:gpt-5-nano": _p(0.05, 0.40, 0.005),
    "openai:gpt-5": _p(1.25, 10.00, 0.125),
    "openai:gpt-4.1-mini": _p(0.40, 1.60, 0.10),
    "openai:gpt-4.1-nano": _p(0.10, 0.40, 0.025),
    "openai:gpt-4.1": _p(2.00, 8.00, 0.50),
    "openai:gpt-4o-mini": _p(0.15, 0.60, 0.075),
    "openai:gpt-4o": _p(2.50, 10.00, 1.25),
    "openai:o4-mini": _p(1.10, 4.40, 0.275),
    "anthropic:claude-sonnet-4-6": _p(3.00, 15.00, 0.30, 3.75),
    "anthropic:claude-sonnet-4-5": _p(3.00, 15.00, 0.30, 3.75),
    "anthropic:claude-sonnet-4": _p(3.00, 15.00, 0.30, 3.75),
    "anthropic:claude-haiku-4-5": _p(1.00, 5.00, 0.10, 1.25),
    "anthropic:claude-opus-4-1": _p(15.00, 75.00, 1.50, 18.75),
    "anthropic:claude-3-5-haiku": _p(0.80, 4.00, 0.08, 1.00),
    "fake": _p(0.0, 0.0, 0.0, 0.0),  # runtime.testing's models: provider "fake" or "fake-*"
}


def find_price(label: str, prices: dict[str, Price]) -> Price | None:
    """The price of ``provider:model``: exact, else the longest matching prefix."""
    if label in prices:
        return prices[label]
    matches = [k for k in prices if label.startswith(k)]
    return prices[max(matches, key=len)] if matches else None


def cost_usd(usage: Usage, price: Price) -> float:
    """What a call cost."""
    cached = usage.cached_tokens
    written = usage.cache_write_tokens
    fresh = max(usage.input_tokens - cached - written, 0)
    total = (
        fresh * price.input
        + cached * (price.input if price.cached is None else price.cached)
        + written * (price.input if price.cache_write is None else price.cache_write)
        + usage.output_tokens * price.output
    )
    return round(total / 1_000_000, 8)
