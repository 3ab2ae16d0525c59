"""The model seam, provider adapters, routing configuration, prices and fallback chains."""

from .config import CONFIG_NAME, ModelsConfig, ProviderConfig, Role, load_models_config
from .errors_map import ModelRequestError
from .fallback import Attempt, CircuitBreaker, ModelChain
from .pricing import DEFAULT_PRICES, Price, cost_usd, find_price
from .types import (
    ChainExhaustedError,
    ImagePart,
    InvalidModelOutputError,
    Message,
    Model,
    ModelAuthError,
    ModelConfigError,
    ModelError,
    ModelRateLimitError,
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
    "ModelSettings",
    "ModelTimeoutError",
    "ModelUnavailableError",
    "ModelsConfig",
    "Price",
    "ProviderConfig",
    "Role",
    "TextPart",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "cost_usd",
    "find_price",
    "load_models_config",
]
