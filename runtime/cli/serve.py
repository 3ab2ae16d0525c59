"""``corral serve``: the scheduler, the worker pool and the HTTP API in one process."""

from __future__ import annotations

import asyncio
import sys

import click

from runtime.cli.common import fail
from runtime.settings import Settings

__all__ = ["serve_command"]


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=8780, show_default=True, type=int, help="0: any free port")
@click.option(
    "--workers",
    default=4,
    show_default=True,
    type=click.IntRange(1, 256),
    help="runs at once (they share one browser)",
)
@click.option(
    "--grace",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0),
    help="seconds running runs get to finish after SIGTERM before they are cancelled",
)
@click.option(
    "--public-url",
    metavar="URL",
    help="where people open the console (approval webhooks link there); default: "
    "CORRAL_PUBLIC_URL, else the address it listens on",
)
def serve_command(host: str, port: int, workers: int, grace: float, public_url: str | None) -> None:
    """Run schedules and the HTTP API until SIGTERM (which drains)."""
    from profiles import CorralError
    from runtime.errors import exit_code_for
    from runtime.serve.server import ServeOptions, serve

    def announce(line: str) -> None:
        click.echo(line, err=True)

    options = ServeOptions(
        host=host, port=port, workers=workers, grace_s=grace, public_url=public_url
    )
    try:
        asyncio.run(serve(Settings.from_env(), options, announce=announce))
    except CorralError as exc:
        fail(str(exc), exit_code_for(exc))
    sys.exit(0)
