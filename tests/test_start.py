"""A fast start: ``corral --help`` loads no command module, no browser driver, SDK or server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

import runtime
from runtime.cli.main import COMMANDS, cli

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
