"""The model seam, provider adapters, routing configuration, prices and fallback chains."""

from __future__ import annotations

from typing import TYPE_CHECKING

from profiles import LazyExports

if TYPE_CHECKING:
    from runtime.models.base import SDKModel
    from runtime.models.config import (
        CONFIG_NAME,
        BreakerConfig,
        ModelRole,
        ModelsConfig,
        ProviderConfig,
        load_models_config,
    )
    from runtime.models.fallback import Attempt, CircuitBreaker, ModelChain
    from runtime.models.pricing import DEFAULT_PRICES, Price, cost_usd, find_price
    from runtime.models.types import (
        ChainExhaustedError,
        ImagePart,
        InvalidModelOutputError,
        Message,
        Model,
        ModelAuthError,
        ModelConfigError,
        ModelError,
        ModelRateLimitError,
        ModelRequestError,
        ModelResponse,
        ModelSettings,
        ModelTimeoutError,
        ModelUnavailableError,
        TextPart,
        ToolCall,
        ToolSpec,
        Usage,
    )

__all__ = [
    "CONFIG_NAME",
    "DEFAULT_PRICES",
    "Attempt",
    "BreakerConfig",
    "ChainExhaustedError",
    "CircuitBreaker",
    "ImagePart",
    "InvalidModelOutputError",
    "Message",
    "Model",
    "ModelAuthError",
    "ModelChain",
    "ModelConfigError",
    "ModelError",
    "ModelRateLimitError",
    "ModelRequestError",
    "ModelResponse",
    "ModelRole",
    "ModelSettings",
    "ModelTimeoutError",
    "ModelUnavailableError",
    "ModelsConfig",
    "Price",
    "ProviderConfig",
    "SDKModel",
    "TextPart",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "cost_usd",
    "find_price",
    "load_models_config",
]

_LAZY = LazyExports(__name__, __file__)


def __getattr__(name: str) -> object:
    """Import a public name's module on first use."""
    return _LAZY.load(name)


def __dir__() -> list[str]:
    return _LAZY.names()
