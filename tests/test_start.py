"""A fast start: ``corral --help`` loads no command module, no browser driver, SDK or server;
``corral run`` starts the browser first and loads the rest meanwhile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

import runtime
from profiles import (
    NODE_CACHE_ENV,
    BrowserNotFoundError,
    browser_env,
    driver_compile_cache,
    start_in_background,
)
from runtime.cli.main import COMMANDS, cli
from tests.support.cli import corral_process
from tests.support.wait import until

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("playwright", "openai", "anthropic", "fastapi", "uvicorn")


def modules_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules a fresh interpreter holds after running ``code`` (its SystemExit caught)."""
    script = (
        "import json, sys\n"
        f"try:\n    exec({code!r})\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def top_level(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_help_imports_no_browser_sdk_or_server() -> None:
    loaded = modules_after(
        "import sys\nfrom runtime.cli import main\nsys.argv = ['corral', '--help']\nmain()"
    )
    assert "runtime.cli.main" in loaded  # the check ran the command
    assert top_level(loaded) & set(HEAVY) == set()
    assert not {m for m in loaded if m.startswith("runtime.cli.")} - {"runtime.cli.main"}


@pytest.mark.parametrize(
    "args", [("profiles", "list"), ("runs", "list"), ("secrets", "list"), ("policy", "show")]
)
def test_a_command_without_a_browser_imports_none_of_them(
    home: Path, args: tuple[str, ...]
) -> None:
    loaded = modules_after(
        f"import sys\nfrom runtime.cli import main\nsys.argv = ['corral', *{args!r}]\nmain()",
        {"CORRAL_HOME": str(home)},
    )
    assert "runtime.app" in loaded  # it opened the store
    assert top_level(loaded) & {*HEAVY, "jinja2"} == set()


def test_the_check_sees_a_heavy_import() -> None:
    # The same check fails on a command whose module loads Playwright.
    loaded = modules_after("import runtime.cli.observe, runtime.agent.prompt")
    assert "playwright" in top_level(loaded)


def test_importing_runtime_loads_its_names_on_use() -> None:
    loaded = modules_after("import runtime, profiles")
    assert top_level(loaded) & set(HEAVY) == set()
    from runtime import Runtime, Settings, load_task, run_task  # noqa: F401

    assert runtime.Runtime.__module__ == "runtime.app"
    assert set(runtime.__all__) <= set(dir(runtime))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = runtime.nothing  # type: ignore[attr-defined]


def test_a_name_shared_with_its_submodule_stays_the_name() -> None:
    # tools.observe is both a function and tools/observe.py; importing the module keeps the
    # package's name the function, as an eager `from .observe import observe` did.
    loaded = modules_after(
        "import tools.observe, tools.execute, tools\n"
        "assert callable(tools.observe) and tools.observe.__module__ == 'tools.observe'\n"
        "assert callable(tools.execute) and tools.execute.__module__ == 'tools.execute'\n"
        "from tools import observe\nassert observe is tools.observe"
    )
    assert "tools.observe" in loaded


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_lists_each_command_s_own_summary(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None and command.name == name
    assert command.get_short_help_str(1000) == COMMANDS[name][1]


def test_the_run_command_loads_neither_browser_nor_models_before_it_starts() -> None:
    # `corral run` starts Playwright's driver first; what it imports before that is its start.
    loaded = modules_after("import runtime.cli.run")
    assert "runtime.cli.run" in loaded
    assert top_level(loaded) & {*HEAVY, "rich", "pydantic", "cryptography", "aiosqlite"} == set()
    assert not loaded & {"runtime.app", "runtime.settings", "runtime.task", "runtime.records"}


def test_the_driver_keeps_its_compiled_code_in_a_private_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    env: dict[str, str] = {}
    folder = driver_compile_cache(env)
    assert folder is not None and env[NODE_CACHE_ENV] == str(folder)
    assert folder.is_relative_to(tmp_path / "cache")
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "cache" / "corral").stat().st_mode & 0o777 == 0o700
    # The user's own choice wins: a cache elsewhere, or none at all.
    mine = {NODE_CACHE_ENV: "/elsewhere"}
    assert driver_compile_cache(mine) is None and mine == {NODE_CACHE_ENV: "/elsewhere"}
    off = {"NODE_DISABLE_COMPILE_CACHE": "1"}
    assert driver_compile_cache(off) is None and NODE_CACHE_ENV not in off


def test_chromium_never_sees_the_compile_cache_setting() -> None:
    assert NODE_CACHE_ENV not in browser_env({NODE_CACHE_ENV: "/x", "PATH": "/usr/bin"})


async def test_a_pool_started_in_background_launches_once_configured_and_closes() -> None:
    async with start_in_background() as start:
        start.configure(os.environ.get("CORRAL_BROWSER"), True, ())
        pool = await start.ready
        # The shared browser was launched before anyone asked for it, and is the one handed out.
        assert pool.browser_pids()
        browser = await pool.browser(())
        assert browser.is_connected()
        context = await browser.new_context()
        page = await context.new_page()
        assert await page.evaluate("1 + 1") == 2
        await context.close()
    assert not browser.is_connected()


async def test_a_pool_nobody_configured_or_awaited_is_closed() -> None:
    async with start_in_background() as start:
        pass
    assert start.ready.cancelled()
    async with start_in_background() as start:
        start.configure(os.environ.get("CORRAL_BROWSER"), True, ())
    assert start.ready.done()  # it came up and went down; the suite checks no Chromium is left


async def test_a_pool_that_cannot_start_fails_where_it_is_awaited(tmp_path: Path) -> None:
    async with start_in_background() as start:
        start.configure(str(tmp_path / "no-chromium"), True, ())
        with pytest.raises(BrowserNotFoundError, match=r"CORRAL_BROWSER=.*no-chromium"):
            await start.ready


def test_a_one_step_run_process_records_everything(
    home: Path, portal: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The whole cold start as a user runs it: the browser started early, the run recorded.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(NODE_CACHE_ENV, raising=False)
    task = tmp_path / "one.yaml"
    task.write_text(f"name: one\nstart_url: {portal}/login\nsteps:\n  - goto: {portal}/login\n")
    assert corral_process("profiles", "create", "p").returncode == 0
    proc = corral_process("run", str(task), "--profile", "p", "--json")
    assert proc.returncode == 0, proc.stderr
    [result] = json.loads(proc.stdout)
    assert result["status"] == "succeeded" and result["steps_ok"] == 1
    run_dir = Path(result["run_dir"])
    assert (run_dir / "trace.zip").stat().st_size > 0
    assert [p.suffix for p in (run_dir / "steps").iterdir()] == [".jpg"]
    shown = corral_process("runs", "show", result["run_id"], "--json")
    assert json.loads(shown.stdout)["steps"][0]["status"] == "ok"
    assert list((tmp_path / "cache" / "corral" / "node-compile-cache").iterdir())


async def test_a_released_pool_closes_while_its_owner_goes_on() -> None:
    async with start_in_background() as start:
        start.configure(os.environ.get("CORRAL_BROWSER"), True, ())
        browser = await (await start.ready).browser(())
        start.release()
        await until(lambda: not browser.is_connected(), what="the released browser to close")
        assert start.ready.done() and not start.ready.cancelled()
