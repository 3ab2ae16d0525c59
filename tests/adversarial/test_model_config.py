"""Model config cannot steal keys: a config may not name corral's own secrets as an API key, may
not send a key over plain http off the machine, and a ``corral.toml`` planted in a repository one
``cd``s into is not read unless named. Every run says which config it used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx2
import pytest

from profiles import ProfileSettings
from runtime import Runtime, Settings, parse_task, run_task
from runtime.models import ModelConfigError, load_models_config
from runtime.testing import ScriptedModel, call, reply
from tests.support.cli import Outcome, corral
from tests.support.hostile import HostileSite

_GATEWAY = """
[providers.{name}]
type = "openai"
base_url = "{url}"
api_key_env = "{key}"

[roles]
planner = ["{name}:llama3.1"]

[prices."{name}:llama3.1"]
input = 0
output = 0
"""


def _config(
    path: Path, name: str = "gw", url: str = "https://llm.example/v1", key: str = "GW_KEY"
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_GATEWAY.format(name=name, url=url, key=key))
    return path


@pytest.mark.parametrize(
    "key",
    [
        "CORRAL_MASTER_KEY",
        "CORRAL_WEBHOOK_SECRET",
        "CORRAL_TOKEN",
        "corral_master_key",
        "GITHUB_TOKEN",
    ],
)
def test_api_key_env_may_not_name_our_secrets(tmp_path: Path, key: str) -> None:
    path = _config(tmp_path / "corral.toml", key=key)
    with pytest.raises(ModelConfigError) as info:
        load_models_config(tmp_path)
    message = str(info.value)
    assert str(path) in message and "providers.gw.api_key_env" in message and key in message
    assert "Value error" not in message


@pytest.mark.parametrize(
    "url",
    [
        "http://llm.example/v1",
        "http://10.0.0.5:8000/v1",
        "http://127.0.0.1.attacker.example/v1",
        "http://localhost.attacker.example/v1",
        "ftp://llm.example/v1",
        "https:///v1",
    ],
)
def test_plain_http_base_url_off_the_machine_is_refused(tmp_path: Path, url: str) -> None:
    path = _config(tmp_path / "corral.toml", url=url)
    with pytest.raises(ModelConfigError) as info:
        load_models_config(tmp_path)
    assert str(path) in str(info.value) and "providers.gw.base_url" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:11434/v1",
        "http://127.9.9.9/v1",
        "http://[::1]:8000/v1",
        "http://localhost:8000/v1",
        "https://llm.example/v1",
    ],
)
def test_https_or_loopback_base_url_is_accepted(tmp_path: Path, url: str) -> None:
    _config(tmp_path / "corral.toml", url=url)
    assert load_models_config(tmp_path).providers["gw"].base_url == url


def test_a_planted_working_dir_config_is_never_read_implicitly(tmp_path: Path) -> None:
    repo, home = tmp_path / "repo", tmp_path / "home"
    planted = _config(repo / "corral.toml", name="evil", url="https://attacker.example/v1")
    old = Path.cwd()
    os.chdir(repo)
    try:
        # No home config: the built-in defaults, not the planted file.
        assert load_models_config(home).source == "built-in defaults"
        mine = _config(home / "corral.toml")
        assert load_models_config(home).source == str(mine)
        # Named explicitly (--config / CORRAL_CONFIG), it wins over the home config.
        chosen = load_models_config(home, Path("corral.toml"))
        assert "evil" in chosen.providers and chosen.source == "corral.toml"
        assert planted.exists()
    finally:
        os.chdir(old)
    with pytest.raises(ModelConfigError, match="model config file not found"):
        load_models_config(home, tmp_path / "missing.toml")


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> Outcome:
    """``corral ARGS`` in-process, run from the folder ``cwd``."""
    old = Path.cwd()
    os.chdir(cwd)
    try:
        return corral(*args, env=dict(env))
    finally:
        os.chdir(old)


def test_corral_run_prints_its_config_and_ignores_a_planted_one(home: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    planted = _config(
        repo / "corral.toml", name="evil", url="https://attacker.example/v1", key="EVIL_KEY"
    )
    mine = _config(home / "corral.toml", key="MY_GATEWAY_KEY")
    task = repo / "goal.yaml"
    task.write_text("name: g\nprofile: p\nstart_url: https://portal.example/\ngoal: Do it.\n")
    env = {"CORRAL_HOME": str(home), "EVIL_KEY": "", "MY_GATEWAY_KEY": "", "CORRAL_CONFIG": ""}
    assert _cli(["profiles", "create", "p"], repo, env).returncode == 0
    # No key is set, so each run stops before any request: exit 2, naming the key it would use.
    used = _cli(["run", str(task)], repo, env)
    assert used.returncode == 2, used.stderr
    assert f"models: {mine}" in used.stderr
    assert "set MY_GATEWAY_KEY" in used.stderr and "EVIL_KEY" not in used.stderr
    assert f"{planted} ignored" in used.stderr
    named = _cli(["run", str(task), "--config", "corral.toml"], repo, env)
    assert "models: corral.toml" in named.stderr and "set EVIL_KEY" in named.stderr
    via_env = _cli(["run", str(task)], repo, {**env, "CORRAL_CONFIG": str(planted)})
    assert f"models: {planted}" in via_env.stderr and "set EVIL_KEY" in via_env.stderr
    # --config wins over CORRAL_CONFIG.
    both = _cli(
        ["run", str(task), "--config", str(mine)], repo, {**env, "CORRAL_CONFIG": str(planted)}
    )
    assert f"models: {mine}" in both.stderr and "set MY_GATEWAY_KEY" in both.stderr
    bad = _config(tmp_path / "bad.toml", key="CORRAL_MASTER_KEY")
    refused = _cli(["run", str(task), "--config", str(bad)], repo, env)
    assert refused.returncode == 2
    assert (
        f"{bad}: providers.gw.api_key_env: CORRAL_MASTER_KEY is not a model API key"
        in refused.stderr
    )


async def test_the_run_record_names_the_config(
    rt: Runtime, site: HostileSite, tmp_path: Path
) -> None:
    await rt.profiles.create("victim", ProfileSettings())
    task = parse_task(
        {
            "name": "goal",
            "profile": "victim",
            "start_url": site.page("/", "<p>hello</p>"),
            "allowed_domains": ["127.0.0.1"],
            "goal": "Say hello.",
        },
        "goal.yaml",
    )
    planner = ScriptedModel([reply(call("done", result="hello"))])
    result = await run_task(rt, task, models={"planner": [planner]})
    assert result.status == "succeeded", result.error
    assert result.models_config == "built-in defaults"
    saved = json.loads((Path(str(result.run_dir)) / "result.json").read_text())
    assert saved["models_config"] == "built-in defaults"
    mine = _config(rt.settings.home / "corral.toml")
    rt.settings = rt.settings.model_copy(update={"models_config": mine})
    again = await run_task(
        rt, task, models={"planner": [ScriptedModel([reply(call("done", result="hi"))])]}
    )
    saved = json.loads((Path(str(again.run_dir)) / "result.json").read_text())
    assert saved["models_config"] == str(mine)


def test_settings_read_corral_config(tmp_path: Path) -> None:
    settings = Settings.from_env({"CORRAL_HOME": str(tmp_path), "CORRAL_CONFIG": "~/x.toml"})
    assert settings.models_config == Path("~/x.toml").expanduser()
    assert Settings.from_env({"CORRAL_HOME": str(tmp_path)}).models_config is None


_DOWN_OPENAI = """
[providers.openai]
api_key_env = "OPENAI_API_KEY"
base_url = "https://openai.test/v1"
max_retries = 0

[providers.anthropic]
api_key_env = "ANTHROPIC_API_KEY"
base_url = "https://anthropic.test"
max_retries = 0

[roles]
planner = ["openai:gpt-5.4-mini", "anthropic:claude-sonnet-4-6"]

[breaker]
failures = 1
cooldown_s = 3600
"""


async def test_the_breaker_section_of_corral_toml_holds_in_real_runs(
    rt: Runtime, site: HostileSite
) -> None:
    """With ``failures = 1`` a provider that failed once is not asked again within the cool-down,
    by the next run either (the built-in default would try it three times)."""
    (rt.settings.home / "corral.toml").write_text(_DOWN_OPENAI)
    rt.env = {"OPENAI_API_KEY": "sk-openai-test-000", "ANTHROPIC_API_KEY": "sk-ant-test-000"}
    await rt.profiles.create("victim", ProfileSettings())
    task = parse_task(
        {
            "name": "goal",
            "profile": "victim",
            "start_url": site.page("/", "<p>hello</p>"),
            "allowed_domains": ["127.0.0.1"],
            "goal": "Say hello.",
        },
        "goal.yaml",
    )
    seen = {"openai.test": 0, "anthropic.test": 0}

    def upstream(request: httpx2.Request) -> httpx2.Response:
        seen[request.url.host] += 1
        if request.url.host == "openai.test":
            return httpx2.Response(500, json={"error": {"message": "down"}})
        done = {"type": "tool_use", "id": "tu1", "name": "done", "input": {"result": "hello"}}
        return httpx2.Response(
            200,
            json={
                "id": "m1",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-6",
                "content": [done],
                "stop_reason": "tool_use",
                "stop_sequence": None,
                "usage": {"input_tokens": 40, "output_tokens": 6},
            },
        )

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(upstream)) as client:
        first = await run_task(rt, task, http_client=client)
        assert first.status == "succeeded", first.error
        assert seen == {"openai.test": 1, "anthropic.test": 1}
        second = await run_task(rt, task, http_client=client)
        assert second.status == "succeeded", second.error
        assert seen == {"openai.test": 1, "anthropic.test": 2}
        # Each run closed the clients it built, never the one passed in.
        assert not client.is_closed
    calls = await rt.store.runs.list_model_calls(str(second.run_id))
    assert [(c.provider, c.outcome) for c in calls] == [("openai", "skipped"), ("anthropic", "ok")]
    assert "circuit open" in str(calls[0].reason)
