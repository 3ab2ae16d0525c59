"""Model routing configuration: providers, role chains, prices, circuit breaker.

Read from the file named by ``--config`` / ``CORRAL_CONFIG``, else ``CORRAL_HOME/corral.toml``,
else the built-in defaults. A ``corral.toml`` in the working directory is never read on its own:
a repository one ``cd``s into could plant one whose ``base_url`` is an attacker's server and
collect the API key sent with every request. Provider configs are checked for that too:
``api_key_env`` may not name one of corral's own variables (``CORRAL_*``: the master key, the
webhook secret, the API token) or another well-known credential, and ``base_url`` must be
``https`` unless its host is loopback. A task may override role chains with its ``models:``
field. Example::

    [providers.openai]                 # type defaults to the provider name
    api_key_env = "OPENAI_API_KEY"

    [providers.gateway]                # any OpenAI-compatible endpoint
    type = "openai"
    base_url = "http://127.0.0.1:11434/v1"
    api_key_env = "GATEWAY_KEY"
    vision = false                     # its models cannot take images

    [roles]
    planner = ["openai:gpt-5.4-mini", "anthropic:claude-sonnet-4-6"]
    vision = ["anthropic:claude-sonnet-4-6"]
    extractor = ["openai:gpt-5.4-nano"]
    shadow = ["anthropic:claude-haiku-4-5"]   # optional: recorded, never executed

    [prices."gateway:llama3.1"]
    input = 0
    output = 0
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from profiles import describe_errors
from runtime.models.pricing import DEFAULT_PRICES, Price, find_price
from runtime.models.types import Model, ModelConfigError

__all__ = [
    "BUILT_IN",
    "CONFIG_NAME",
    "BreakerConfig",
    "ModelRole",
    "ModelsConfig",
    "ProviderConfig",
    "find_models_config",
    "load_models_config",
]

CONFIG_NAME = "corral.toml"
BUILT_IN = "built-in defaults"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Credentials that are never a model provider's key: a config naming one would send it as one.
_NOT_MODEL_KEYS = frozenset(
    {
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "GITLAB_TOKEN",
        "NPM_TOKEN",
        "PYPI_TOKEN",
        "SSH_AUTH_SOCK",
    }
)
ModelRole = Literal["planner", "vision", "extractor", "shadow"]
"""What a model is asked to do in a run (the keys of ``[roles]``); not a user's role."""


_DEFAULT_ROLES: dict[ModelRole, list[str]] = {
    "planner": ["openai:gpt-5.4-mini", "anthropic:claude-sonnet-4-6"],
    "vision": ["anthropic:claude-sonnet-4-6", "openai:gpt-5.4-mini"],
    "extractor": ["openai:gpt-5.4-nano", "anthropic:claude-haiku-4-5"],
}


class ProviderConfig(BaseModel):
    """One provider endpoint."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["openai", "anthropic"]
    api_key_env: str
    base_url: str | None = None
    timeout_s: float = Field(60, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    vision: bool = True

    @field_validator("api_key_env")
    @classmethod
    def _not_ours(cls, value: str) -> str:
        if not _ENV_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        if value.upper().startswith("CORRAL_") or value.upper() in _NOT_MODEL_KEYS:
            raise ValueError(
                f"{value} is not a model API key: corral will not send it to a provider "
                "(name the variable that holds the provider's key, e.g. OPENAI_API_KEY)"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _https_or_loopback(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            parts = urlsplit(value)
            host = parts.hostname or ""
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a URL") from exc
        if parts.scheme == "https" and host:
            return value
        if parts.scheme == "http" and _is_loopback(host):
            return value
        raise ValueError(
            f"{value!r}: expected an https:// URL (plain http:// only to 127.0.0.1, ::1 or "
            "localhost): the API key is sent with every request"
        )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BreakerConfig(BaseModel):
    """Skip a provider after ``failures`` consecutive failures, for ``cooldown_s``."""

    model_config = ConfigDict(extra="forbid")
    failures: int = Field(3, ge=1)
    cooldown_s: float = Field(60, ge=0)


class ModelsConfig(BaseModel):
    """The whole routing configuration."""

    model_config = ConfigDict(extra="forbid")
    providers: dict[str, ProviderConfig] = Field(
        default_factory=lambda: {
            "openai": ProviderConfig(type="openai", api_key_env="OPENAI_API_KEY"),
            "anthropic": ProviderConfig(type="anthropic", api_key_env="ANTHROPIC_API_KEY"),
        }
    )
    roles: dict[ModelRole, list[str]] = Field(default_factory=lambda: dict(_DEFAULT_ROLES))
    prices: dict[str, Price] = Field(default_factory=dict)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    text_only: list[str] = Field(
        default_factory=list, description="provider:model labels that cannot take images"
    )
    source: str = Field(BUILT_IN, exclude=True)

    @field_validator("providers", mode="before")
    @classmethod
    def _type_from_name(cls, value: Any) -> Any:
        # [providers.openai] / [providers.anthropic] need no `type = ...` line.
        if isinstance(value, dict):
            for name, body in value.items():
                if (
                    isinstance(body, dict)
                    and "type" not in body
                    and name in ("openai", "anthropic")
                ):
                    body["type"] = name
        return value

    def all_prices(self) -> dict[str, Price]:
        """Defaults overridden by the configured prices."""
        return {**DEFAULT_PRICES, **self.prices}

    def with_roles(self, overrides: Mapping[Any, list[str]] | None, where: str) -> ModelsConfig:
        """A copy with some role chains replaced (a task's ``models:``), validated."""
        if not overrides:
            return self
        roles: dict[str, list[str]] = {str(k): v for k, v in self.roles.items()}
        roles.update({str(k): v for k, v in overrides.items()})
        copy = self.model_copy(update={"roles": roles})
        copy.validate_chains(where)
        return copy

    def validate_chains(self, where: str | None = None) -> None:
        """Every chain entry names a known provider and a model with a price."""
        where = where or self.source
        prices = self.all_prices()
        for role, chain in self.roles.items():
            if not chain:
                raise ModelConfigError(f"{where}: roles.{role}: an empty chain")
            for label in chain:
                provider, sep, model = label.partition(":")
                if not sep or not model:
                    raise ModelConfigError(
                        f"{where}: roles.{role}: {label!r}: expected 'provider:model'"
                    )
                if provider not in self.providers and not provider.startswith("fake"):
                    known = ", ".join(sorted(self.providers))
                    raise ModelConfigError(
                        f"{where}: roles.{role}: unknown provider '{provider}' (known: {known})"
                    )
                if find_price(label, prices) is None:
                    raise ModelConfigError(
                        f"{where}: roles.{role}: unknown model '{label}': add its price under "
                        f'[prices."{label}"] (input/output USD per 1M tokens)'
                    )

    def supports_vision(self, label: str) -> bool:
        """False for text-only models (by label or by provider)."""
        provider = label.partition(":")[0]
        cfg = self.providers.get(provider)
        return label not in self.text_only and (cfg is None or cfg.vision)

    def key_problem(self, label: str, env: Mapping[str, str]) -> ModelConfigError | None:
        """Why ``label`` cannot be called with ``env`` (a missing API key), or None."""
        cfg = self.providers.get(label.partition(":")[0])
        if cfg is not None and not env.get(cfg.api_key_env):
            return ModelConfigError(f"{label}: missing API key: set {cfg.api_key_env}")
        return None

    def require(self, role: str, env: Mapping[str, str]) -> None:
        """Fail before a run when no model of ``role`` can be called (no SDK client is built)."""
        chain = self.roles.get(role)  # type: ignore[call-overload]
        if not chain:
            raise ModelConfigError(f"models: no chain for role '{role}'")
        problems = [self.key_problem(label, env) for label in chain]
        if all(problems):
            reasons = "; ".join(str(p) for p in problems)
            raise ModelConfigError(f"models: no usable {role} model: {reasons}")

    def build(
        self, label: str, env: Mapping[str, str], http_client: Any = None
    ) -> Model | ModelConfigError:
        """The adapter for ``provider:model``, or the config error that prevents it."""
        provider, _, name = label.partition(":")
        cfg = self.providers[provider]
        problem = self.key_problem(label, env)
        if problem is not None:
            return problem
        key = env[cfg.api_key_env]
        common: dict[str, Any] = {
            "api_key": key,
            "base_url": cfg.base_url,
            "timeout_s": cfg.timeout_s,
            "max_retries": cfg.max_retries,
            "http_client": http_client,
            "provider": provider,
            "supports_vision": self.supports_vision(label),
        }
        if cfg.type == "anthropic":
            from runtime.models.anthropic_messages import AnthropicModel

            return AnthropicModel(name, **common)
        from runtime.models.openai_chat import OpenAIChatModel

        return OpenAIChatModel(name, **common)


def _format(exc: ValidationError, where: str) -> str:
    lines = describe_errors(exc, top="", unknown_field=True, strip_value_error=True)
    return "; ".join(f"{where}: {line}" for line in lines)


def find_models_config(home: Path, explicit: Path | None = None) -> Path | None:
    """The config file to read: ``explicit`` (``--config``/``CORRAL_CONFIG``), else
    ``home/corral.toml`` if it exists, else None (built-in defaults).

    The working directory is not searched: see the module docstring.
    """
    if explicit is not None:
        if not explicit.is_file():
            raise ModelConfigError(f"{explicit}: model config file not found")
        return explicit
    path = home / CONFIG_NAME
    return path if path.is_file() else None


def load_models_config(home: Path, explicit: Path | None = None) -> ModelsConfig:
    """The config :func:`find_models_config` picks, validated; else the built-in defaults."""
    path = find_models_config(home, explicit)
    if path is None:
        config = ModelsConfig()
        config.validate_chains()
        return config
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ModelConfigError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ModelConfigError(f"{path}: cannot read the model config: {exc}") from exc
    try:
        config = ModelsConfig.model_validate({**data, "source": str(path)})
    except ValidationError as exc:
        raise ModelConfigError(_format(exc, str(path))) from exc
    config.validate_chains()
    return config
