"""The ``corral`` command in tests: in-process through click's runner (fast, for what the
command says and returns), or as a real process (for the entry point, signals and crashes)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from runtime.cli import cli

__all__ = ["CORRAL", "Outcome", "corral", "corral_process"]

CORRAL = [str(Path(sys.executable).parent / "corral")]
"""The installed console script, for tests that need a real process."""


@dataclass(frozen=True)
class Outcome:
    """What a command did: its exit code and what it wrote (the fields of a finished process)."""

    returncode: int
    stdout: str
    stderr: str


def corral(
    *args: str, stdin: str | None = None, env: dict[str, str | None] | None = None
) -> Outcome:
    """Run ``corral ARGS`` in this process, with ``env`` on top of the current environment
    (``None`` removes a variable) and ``stdin`` piped in. An exception the command does not turn
    into an exit code is raised here, where a real process would print a traceback."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:  # the command runs its own event loop
        raise RuntimeError("corral() runs the command's own event loop: call it in a thread")
    result = CliRunner().invoke(
        cli, list(args), input=stdin, env=env, catch_exceptions=True, prog_name="corral"
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)


def corral_process(
    *args: str,
    stdin: str | None = None,
    env: dict[str, str | None] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``corral ARGS`` as a real process (``env`` on top of this one's; ``None`` removes)."""
    merged = {**os.environ, **(env or {})}
    return subprocess.run(
        [*CORRAL, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={k: v for k, v in merged.items() if v is not None},
    )
