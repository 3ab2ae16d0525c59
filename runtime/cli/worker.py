"""``corral worker``: run scheduled fires from the job queue shared by every host."""

from __future__ import annotations

import asyncio
import sys

import click

from runtime.cli.common import fail
from runtime.settings import Settings

__all__ = ["worker_command"]


@click.command("worker")
@click.option(
    "--concurrency",
    default=4,
    show_default=True,
    type=click.IntRange(1, 256),
    help="runs at once in this process (they share one browser)",
)
@click.option(
    "--grace",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0),
    help="seconds running runs get to finish after SIGTERM before they are cancelled",
)
def worker_command(concurrency: int, grace: float) -> None:
    """Run fires that `corral serve` queued, until SIGTERM (needs CORRAL_DATABASE_URL)."""
    from profiles import CorralError
    from runtime.errors import exit_code_for
    from runtime.serve.queue import work

    def announce(line: str) -> None:
        click.echo(line, err=True)

    try:
        asyncio.run(work(Settings.from_env(), concurrency, grace, announce=announce))
    except CorralError as exc:
        fail(str(exc), exit_code_for(exc))
    sys.exit(0)
