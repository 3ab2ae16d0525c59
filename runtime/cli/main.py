"""The ``corral`` command line. Exit codes: 0 succeeded, 1 failed, 2 bad input, 3 denied.

Each command's module is imported only when that command runs, so ``corral --help`` and the
commands that never drive a browser do not load Playwright, the model SDKs or the HTTP server.
"""

from __future__ import annotations

import importlib

import click

__all__ = ["COMMANDS", "cli", "main"]

COMMANDS: dict[str, tuple[str, str]] = {
    "alerts": (
        "runtime.cli.alerts:alerts_group",
        "Alerts runs raised, and their runbook: acknowledge, lift, resume, stop.",
    ),
    "approvals": (
        "runtime.cli.approvals:approvals_group",
        "Gated actions waiting for a person: list, show, approve, deny.",
    ),
    "audit": (
        "runtime.cli.users:audit_command",
        "The append-only audit log: who decided what, and when (admin).",
    ),
    "demo": (
        "runtime.cli.demo:demo_command",
        "Start the demo portal and run two isolated sessions on it in parallel.",
    ),
    "eval": (
        "runtime.cli.eval:eval_command",
        "Run a suite under model configs and report success, cost, latency, validity, overrides.",
    ),
    "gc": (
        "runtime.cli.gc:gc_command",
        "Delete run data past its retention: screenshots, traces, page excerpts, results (admin).",
    ),
    "memory": (
        "runtime.cli.memory:memory_group",
        "Notes the planner reads: per task and per profile (a portal's quirks, a rule).",
    ),
    "observe": (
        "runtime.cli.observe:observe_command",
        "Print a page as the planner would get it, and its size in tokens.",
    ),
    "policy": ("runtime.cli.policy:policy_group", "Risk rules for actions."),
    "profiles": ("runtime.cli.profiles:profiles_group", "Isolated browser identities."),
    "replay": (
        "runtime.cli.replay:replay_command",
        "Write a run's replay: one HTML file, screenshots embedded, that works offline.",
    ),
    "retention": (
        "runtime.cli.gc:retention_group",
        "How long run data is kept: per task (its file's retention:), per profile, global.",
    ),
    "run": (
        "runtime.cli.run:run_command",
        "Run a task file on one profile, or on several with --parallel.",
    ),
    "runs": ("runtime.cli.runs:runs_group", "Recorded runs."),
    "schedules": (
        "runtime.cli.schedules:schedules_group",
        "Tasks that run on profiles at set times (run by `corral serve`).",
    ),
    "secrets": (
        "runtime.cli.secrets:secrets_group",
        "The credential vault: scoped, encrypted secrets.",
    ),
    "serve": (
        "runtime.cli.serve:serve_command",
        "Run schedules and the HTTP API until SIGTERM (which drains).",
    ),
    "tokens": (
        "runtime.cli.users:tokens_group",
        "API tokens (CORRAL_TOKEN): random, stored hashed, expiring, revocable.",
    ),
    "users": (
        "runtime.cli.users:users_group",
        "Users, their roles and the profiles granted to them.",
    ),
    "vault": ("runtime.cli.secrets:vault_group", "The master key."),
    "worker": (
        "runtime.cli.worker:worker_command",
        "Run fires that `corral serve` queued, until SIGTERM (needs CORRAL_DATABASE_URL).",
    ),
}
"""Each command: where it is defined (``module:attribute``) and its one-line summary, which
``corral --help`` prints without importing the module (a test checks it is the command's own)."""


class LazyGroup(click.Group):
    """A group whose commands are imported from :data:`COMMANDS` when first asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, sorted."""
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``, its module imported now (None if there is no such one)."""
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, _, attribute = entry[0].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help``, from the summaries (no command module imported)."""
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [
            (name, click.Command(name, help=summary).get_short_help_str(limit))
            for name, (_, summary) in COMMANDS.items()
        ]
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="corral")
def cli() -> None:
    """corral: isolated, recorded browser-automation runs on web portals."""


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
