"""Model routing configuration: providers, role chains, prices, circuit breaker.

Read from ``corral.toml`` in the working directory, else in ``CORRAL_HOME``; a task may override
role chains with its ``models:`` field. Example::

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

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .pricing import DEFAULT_PRICES, Price, find_price
from .types import Model, ModelConfigError

__all__ = ["CONFIG_NAME", "ModelsConfig", "ProviderConfig", "Role", "load_models_config"]

CONFIG_NAME = "corral.toml"
Role = Literal["planner", "vision", "extractor", "shadow"]


_DEFAULT_ROLES: dict[Role, list[str]] = {
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
    roles: dict[Role, list[str]] = Field(default_factory=lambda: dict(_DEFAULT_ROLES))
    prices: dict[str, Price] = Field(default_factory=dict)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    text_only: list[str] = Field(
        default_factory=list, description="provider:model labels that cannot take images"
    )
    source: str = Field("built-in defaults", exclude=True)

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
            from .anthropic_messages import AnthropicModel

            return AnthropicModel(name, **common)
        from .openai_chat import OpenAIChatModel

        return OpenAIChatModel(name, **common)


def _format(exc: ValidationError, where: str) -> str:
    return "; ".join(
        f"{where}: {'.'.join(map(str, e['loc']))}: "
        + ("unknown field" if e["type"] == "extra_forbidden" else e["msg"])
        for e in exc.errors(include_url=False)
    )


def load_models_config(home: Path, cwd: Path | None = None) -> ModelsConfig:
    """``corral.toml`` from the working dir, else from ``home``, else the built-in defaults."""
    for folder in (cwd or Path.cwd(), home):
        path = folder / CONFIG_NAME
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text())
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ModelConfigError(f"{path}: not valid TOML: {exc}") from exc
            try:
                config = ModelsConfig.model_validate({**data, "source": str(path)})
            except ValidationError as exc:
                raise ModelConfigError(_format(exc, str(path))) from exc
            config.validate_chains()
            return config
    config = ModelsConfig()
    config.validate_chains()
    return config
