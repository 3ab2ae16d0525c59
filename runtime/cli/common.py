"""Shared plumbing for the CLI: running coroutines, errors to exit codes, output helpers."""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from profiles import CorralError, RedactingFilter, UserError
from runtime.errors import EXIT_BAD_INPUT, exit_code_for

if TYPE_CHECKING:
    from rich.console import Console

    from profiles import PoolStart
    from runtime.app import Runtime
    from runtime.auth import Actor
    from runtime.settings import Settings

__all__ = [
    "SERVER_ENV",
    "cli_actor",
    "err_console",
    "fail",
    "local_only_message",
    "out_console",
    "parse_pairs",
    "print_json",
    "read_hidden",
    "run_async",
    "server_url",
    "with_runtime",
]

T = TypeVar("T")


@functools.cache
def err_console() -> Console:
    """The console for progress and notes on stderr (rich loads when it is first asked for)."""
    from rich.console import Console

    return Console(stderr=True)


def out_console() -> Console:
    """The console for command output: the terminal's width, or 160 columns when piped, so
    tables in files and pipes keep their content instead of ellipses."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print ``error: message`` to stderr and exit with ``code``."""
    # Plain text, never wrapped: scripts and people grep these lines.
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; corral errors become their exit codes, Ctrl-C exits 130."""
    try:
        return asyncio.run(make())  # type: ignore[arg-type]
    except CorralError as exc:
        fail(str(exc), exit_code_for(exc))
    except KeyboardInterrupt as exc:
        err_console().print("interrupted")
        sys.exit(exit_code_for(exc))


SERVER_ENV = "CORRAL_SERVER"


def server_url() -> str | None:
    """The server the CLI talks to, if ``CORRAL_SERVER`` is set."""
    return os.environ.get(SERVER_ENV, "").strip() or None


def local_only_message() -> str:
    """Why a command that needs the store and key itself does not run against a server."""
    context = click.get_current_context(silent=True)
    command = context.command_path if context is not None else "this command"
    return (
        f"{command} works on the store and key themselves, so it is not available through "
        f"{SERVER_ENV}; run it on the server host as the account that owns CORRAL_HOME (or "
        "unset CORRAL_SERVER to work on a local CORRAL_HOME)"
    )


async def with_runtime(
    body: Callable[[Runtime], Awaitable[T]], *, browser: Sequence[str] | None = None
) -> T:
    """Open the runtime from the environment and run ``body`` with it.

    ``browser`` is for a command that drives a browser: Playwright's driver starts first; the
    settings, then the modules ``browser`` names, are read in a thread meanwhile (about as long
    as the driver takes), and the browser launches once the driver is up and the settings say
    how.

    Never with ``CORRAL_SERVER`` set: then the server alone opens the store and the key, and a
    command that needs them here stops with exit 2 (commands that can go through the server use
    :func:`runtime.cli.remote.either`)."""
    if server_url():
        raise UserError(local_only_message())
    if browser is None:
        return await _with_runtime(_settings_from_env(), body, None)
    from profiles import driver_compile_cache, start_in_background

    # A process of its own: the driver it starts may keep its compiled code for the next one.
    driver_compile_cache(os.environ)
    async with start_in_background() as pool:
        # In a thread, so the loop meanwhile talks to the driver as it comes up.
        settings = await asyncio.to_thread(_settings_from_env)
        # Without host overrides every state-mode session launches with the base arguments.
        pool.configure(
            settings.browser,
            settings.headless,
            None if settings.host_map else (),
            settings.max_sessions,
        )
        await asyncio.to_thread(_import_all, browser)
        return await _with_runtime(settings, body, pool)


def _settings_from_env() -> Settings:
    from runtime.settings import Settings

    return Settings.from_env()


def _import_all(modules: Iterable[str]) -> None:
    for module in modules:
        importlib.import_module(module)


async def _with_runtime(
    settings: Settings,
    body: Callable[[Runtime], Awaitable[T]],
    starting: PoolStart | None,
) -> T:
    from runtime.app import Runtime

    async with Runtime.open(settings, starting=starting) as rt:
        # Log lines pass through the runtime's redactor: no secret value reaches stderr.
        handler = logging.StreamHandler()
        handler.addFilter(RedactingFilter(rt.redactor))
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            return await body(rt)
        finally:
            root.removeHandler(handler)


async def cli_actor(rt: Runtime) -> Actor:
    """Who the CLI acts as: ``CORRAL_TOKEN``'s user, or the local actor while no users exist."""
    return await rt.services.actor(rt.settings.token)


def parse_pairs(pairs: Iterable[str], flag: str) -> dict[str, str]:
    """``K=V`` strings into a dict; a malformed pair is a usage error."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.UsageError(f"{flag} {pair!r}: expected NAME=VALUE")
        out[key] = value
    return out


def print_json(data: Any) -> None:
    """Machine-readable output on stdout."""
    click.echo(json.dumps(data, indent=2, default=str))


def read_hidden(prompt: str, confirm: bool = False) -> str:
    """A value from stdin when piped, else from a hidden prompt (never from argv)."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm))
