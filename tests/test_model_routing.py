"""Routing across real SDK adapters over an in-process transport: fallback from OpenAI to
Anthropic and back, 401 handling, the circuit breaker, configuration errors, and the router
closing the SDK clients it built (never the caller's)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from profiles import Redactor
from runtime.agent.router import Meter, ModelRouter
from runtime.models import (
    ChainExhaustedError,
    CircuitBreaker,
    Message,
    ModelChain,
    ModelConfigError,
    ModelsConfig,
    ModelSettings,
    ProviderConfig,
    SDKModel,
    ToolSpec,
    load_models_config,
)
from runtime.models.fallback import Attempt
from runtime.models.openai_chat import OpenAIChatModel
from runtime.store import Store

CLICK = ToolSpec(
    name="click",
    description="Click an element by its ref.",
    parameters={"type": "object", "properties": {"ref": {"type": "string"}}},
)
ENV = {"OPENAI_API_KEY": "sk-openai-test-key-000", "ANTHROPIC_API_KEY": "sk-ant-test-key-000"}
FAST = {"retry-after-ms": "1"}


def openai_ok() -> httpx2.Response:
    return httpx2.Response(
        200,
        json={
            "id": "c1",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-5.4-mini",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "t1",
                                "type": "function",
                                "function": {"name": "click", "arguments": '{"ref": "e1"}'},
                            }
                        ],
                    },
                }
            ],
            "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55},
        },
    )


def anthropic_ok() -> httpx2.Response:
    return httpx2.Response(
        200,
        json={
            "id": "m1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-6",
            "content": [{"type": "tool_use", "id": "tu1", "name": "click", "input": {"ref": "e2"}}],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": 40, "output_tokens": 6},
        },
    )


def failing(status: int) -> httpx2.Response:
    return httpx2.Response(status, headers=FAST, json={"error": {"message": f"status {status}"}})


class Upstream:
    """Both providers behind one transport, answering by host from per-host queues."""

    def __init__(self) -> None:
        self.queues: dict[str, list[httpx2.Response]] = {"openai.test": [], "anthropic.test": []}
        self.seen: dict[str, int] = {"openai.test": 0, "anthropic.test": 0}

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        host = request.url.host
        self.seen[host] += 1
        queue = self.queues[host]
        return queue.pop(0) if queue else httpx2.Response(418, json={"error": "unscripted"})


def config() -> ModelsConfig:
    return ModelsConfig(
        providers={
            "openai": ProviderConfig(
                type="openai",
                api_key_env="OPENAI_API_KEY",
                base_url="https://openai.test/v1",
                max_retries=1,
            ),
            "anthropic": ProviderConfig(
                type="anthropic",
                api_key_env="ANTHROPIC_API_KEY",
                base_url="https://anthropic.test",
                max_retries=1,
            ),
        },
        roles={"planner": ["openai:gpt-5.4-mini", "anthropic:claude-sonnet-4-6"]},
    )


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Upstream, httpx2.AsyncClient]]:
    up = Upstream()
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(up)) as client:
        yield up, client


def chain(
    labels: list[str],
    client: httpx2.AsyncClient,
    breaker: CircuitBreaker | None = None,
    env: dict[str, str] = ENV,
) -> tuple[ModelChain, list[Attempt]]:
    cfg = config()
    attempts: list[Attempt] = []

    async def keep(role: str, attempt: Attempt) -> None:
        attempts.append(attempt)

    models = [cfg.build(label, env, client) for label in labels]
    return ModelChain("planner", models, labels, breaker or CircuitBreaker(), keep), attempts


async def ask(c: ModelChain) -> Any:
    return await c.request([Message.text("user", "click something")], [CLICK], ModelSettings())


async def test_openai_outage_falls_back_to_anthropic_and_back(
    upstream: tuple[Upstream, httpx2.AsyncClient],
) -> None:
    up, client = upstream
    forward, attempts = chain(["openai:gpt-5.4-mini", "anthropic:claude-sonnet-4-6"], client)
    up.queues["openai.test"] = [failing(500), failing(500)]  # first try + one SDK retry
    up.queues["anthropic.test"] = [anthropic_ok()]
    response = await ask(forward)
    assert response.provider == "anthropic" and response.tool_calls[0].arguments == '{"ref": "e2"}'
    assert up.seen == {"openai.test": 2, "anthropic.test": 1}
    assert [(a.label, a.outcome) for a in attempts] == [
        ("openai:gpt-5.4-mini", "error"),
        ("anthropic:claude-sonnet-4-6", "ok"),
    ]
    assert "ModelUnavailableError" in str(attempts[0].reason)
    assert response.usage.input_tokens == 40

    backward, attempts = chain(["anthropic:claude-sonnet-4-6", "openai:gpt-5.4-mini"], client)
    up.queues["anthropic.test"] = [failing(529), failing(529)]
    up.queues["openai.test"] = [openai_ok()]
    response = await ask(backward)
    assert response.provider == "openai" and response.tool_calls[0].name == "click"
    assert [a.outcome for a in attempts] == ["error", "ok"]


async def test_rate_limit_is_retried_by_the_sdk_before_any_fallback(
    upstream: tuple[Upstream, httpx2.AsyncClient],
) -> None:
    up, client = upstream
    c, attempts = chain(["openai:gpt-5.4-mini", "anthropic:claude-sonnet-4-6"], client)
    up.queues["openai.test"] = [failing(429), openai_ok()]
    response = await ask(c)
    assert response.provider == "openai" and up.seen["openai.test"] == 2
    assert up.seen["anthropic.test"] == 0 and [a.outcome for a in attempts] == ["ok"]


async def test_401_is_not_retried_and_the_next_model_answers(
    upstream: tuple[Upstream, httpx2.AsyncClient],
) -> None:
    up, client = upstream
    c, attempts = chain(["openai:gpt-5.4-mini", "anthropic:claude-sonnet-4-6"], client)
    up.queues["openai.test"] = [failing(401)]
    up.queues["anthropic.test"] = [anthropic_ok()]
    await ask(c)
    assert up.seen["openai.test"] == 1  # no retry on a bad key
    assert "ModelAuthError" in str(attempts[0].reason)
    assert ENV["OPENAI_API_KEY"] not in str(attempts[0].reason)


async def test_circuit_breaker_skips_a_failing_provider_then_tries_it_again(
    upstream: tuple[Upstream, httpx2.AsyncClient],
) -> None:
    up, client = upstream
    now = [0.0]
    breaker = CircuitBreaker(failures=3, cooldown_s=60, clock=lambda: now[0])
    c, attempts = chain(["openai:gpt-5.4-mini", "anthropic:claude-sonnet-4-6"], client, breaker)
    for _ in range(3):
        up.queues["openai.test"] = [failing(503), failing(503)]
        up.queues["anthropic.test"] = [anthropic_ok()]
        await ask(c)
    assert up.seen["openai.test"] == 6
    up.queues["anthropic.test"] = [anthropic_ok()]
    await ask(c)
    assert up.seen["openai.test"] == 6  # skipped without a request while the circuit is open
    assert attempts[-2].outcome == "skipped" and "circuit open" in str(attempts[-2].reason)
    now[0] = 61.0  # after the cool-down one request goes through again (half-open)
    up.queues["openai.test"] = [openai_ok()]
    response = await ask(c)
    assert response.provider == "openai" and up.seen["openai.test"] == 7


async def test_chain_exhausted_lists_every_attempt(
    upstream: tuple[Upstream, httpx2.AsyncClient],
) -> None:
    up, client = upstream
    c, _ = chain(
        ["openai:gpt-5.4-mini", "anthropic:claude-sonnet-4-6"],
        client,
        env={"OPENAI_API_KEY": "sk-x-key-000"},
    )
    up.queues["openai.test"] = [failing(500), failing(500)]
    with pytest.raises(ChainExhaustedError) as info:
        await ask(c)
    message = str(info.value)
    assert "openai:gpt-5.4-mini: ModelUnavailableError" in message
    assert "missing API key: set ANTHROPIC_API_KEY" in message


def test_config_file_errors_name_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "corral.toml"
    cases = {
        '[roles]\nplanner = ["mystery:model-1"]\n': "roles.planner: unknown provider 'mystery'",
        '[roles]\nplanner = ["openai:gpt-nonexistent"]\n': "unknown model 'openai:gpt-nonexistent'",
        '[roles]\nplanner = ["gpt-5"]\n': "expected 'provider:model'",
        "[providers.x]\ntype = 'openai'\n": "providers.x.api_key_env: Field required",
        "[roles\n": "not valid TOML",
        "colour = 1\n": "colour: unknown field",
    }
    for text, expected in cases.items():
        path.write_text(text)
        with pytest.raises(ModelConfigError, match=re.escape(expected)) as info:
            load_models_config(tmp_path)
        assert str(path) in str(info.value)


def test_gateway_config_with_prices_and_text_only_models(tmp_path: Path) -> None:
    (tmp_path / "corral.toml").write_text(
        '[providers.gateway]\ntype = "openai"\nbase_url = "http://127.0.0.1:11434/v1"\n'
        'api_key_env = "GATEWAY_KEY"\nvision = false\n\n'
        '[roles]\nplanner = ["gateway:llama3.1"]\n\n'
        '[prices."gateway:llama3.1"]\ninput = 0\noutput = 0\n'
    )
    cfg = load_models_config(tmp_path)
    assert cfg.roles["planner"] == ["gateway:llama3.1"]
    assert not cfg.supports_vision("gateway:llama3.1")
    model = cfg.build("gateway:llama3.1", {"GATEWAY_KEY": "k-000000"})
    assert not isinstance(model, ModelConfigError)
    assert model.label == "gateway:llama3.1" and not model.supports_vision
    missing = cfg.build("gateway:llama3.1", {})
    assert isinstance(missing, ModelConfigError) and "set GATEWAY_KEY" in str(missing)
    assert json.dumps(cfg.roles)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "corral.db")
    try:
        yield opened
    finally:
        await opened.close()


def two_provider_config() -> ModelsConfig:
    cfg = config()
    cfg.roles["vision"] = ["anthropic:claude-sonnet-4-6"]
    return cfg


def sdk_models(router: ModelRouter) -> list[SDKModel[Any]]:
    models = [m for chain in router.chains.values() for m in chain.usable]
    assert all(isinstance(m, SDKModel) for m in models)
    return [m for m in models if isinstance(m, SDKModel)]


async def test_router_close_closes_the_sdk_clients_it_built(store: Store) -> None:
    # No http_client and no redactor: each SDK client owns its HTTP client (never used here).
    router = ModelRouter(two_provider_config(), store, "run-1", Meter(None, None), ENV)
    models = sdk_models(router)
    assert len(models) == 3 and not any(m.is_closed() for m in models)
    await router.aclose()
    assert all(m.is_closed() for m in models)
    await router.aclose()  # twice is harmless


async def test_router_close_leaves_the_callers_http_client_and_models_open(
    store: Store, upstream: tuple[Upstream, httpx2.AsyncClient]
) -> None:
    up, client = upstream
    # The caller's own model (its SDK client owns its connections): injected, so not closed.
    mine = OpenAIChatModel("gpt-5.4-mini", api_key=ENV["OPENAI_API_KEY"])
    router = ModelRouter(
        two_provider_config(),
        store,
        "run-2",
        Meter(None, None),
        ENV,
        models={"shadow": [mine]},
        http_client=client,
        redactor=Redactor(),
    )
    up.queues["openai.test"] = [openai_ok()]
    await router.ask("planner", [Message.text("user", "hi")], [CLICK], ModelSettings())
    built = [m for m in sdk_models(router) if m is not mine]
    assert len(built) == 3
    await router.aclose()
    # The SDK clients ran over the router's redacting client, which it closed...
    assert all(m.is_closed() for m in built)
    # ...but the HTTP client under it and the injected model belong to the caller.
    assert not client.is_closed and not mine.is_closed()
    up.queues["openai.test"] = [openai_ok()]
    assert (await client.post("https://openai.test/v1/chat/completions")).status_code == 200
    await mine.aclose()
    assert mine.is_closed()
