"""The ``corral`` command line. Exit codes: 0 succeeded, 1 failed, 2 bad input, 3 denied."""

from __future__ import annotations

import sys

import click

from runtime.app import Runtime
from runtime.cli.approvals import approvals_group
from runtime.cli.common import (
    cli_actor,
    run_async,
    with_runtime,
)
from runtime.cli.policy import policy_group
from runtime.cli.profiles import profiles_group
from runtime.cli.replay import replay_command
from runtime.cli.runs import run_command, runs_group
from runtime.cli.schedules import schedules_group
from runtime.cli.secrets import secrets_group, vault_group
from runtime.cli.serve import serve_command
from runtime.cli.users import audit_command, tokens_group, users_group

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="corral")
def cli() -> None:
    """corral: isolated, recorded browser-automation runs on web portals."""


cli.add_command(profiles_group)
cli.add_command(secrets_group)
cli.add_command(vault_group)
cli.add_command(policy_group)
cli.add_command(approvals_group)
cli.add_command(schedules_group)
cli.add_command(users_group)
cli.add_command(tokens_group)
cli.add_command(audit_command)
cli.add_command(serve_command)
cli.add_command(run_command)
cli.add_command(runs_group)
cli.add_command(replay_command)


@cli.command("demo")
@click.option("--port", default=8765, show_default=True, help="portal port (0: any free port)")
@click.option("--fresh", is_flag=True, help="forget the demo profiles' saved sessions first")
def demo(port: int, fresh: bool) -> None:
    """Start the demo portal and run two isolated sessions on it in parallel."""
    from runtime.cli.demo import run_demo

    async def body(rt: Runtime) -> int:
        return await run_demo(rt, port, fresh, await cli_actor(rt))

    code = run_async(lambda: with_runtime(body))
    sys.exit(code)


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
