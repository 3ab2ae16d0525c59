"""The ``corral`` command line. Exit codes: 0 succeeded, 1 failed, 2 bad input, 3 denied."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from runtime.app import Runtime
from runtime.cli.approvals import approvals_group
from runtime.cli.common import (
    cli_actor,
    err_console,
    out_console,
    parse_pairs,
    print_json,
    run_async,
    with_runtime,
)
from runtime.cli.policy import policy_group
from runtime.cli.profiles import profiles_group
from runtime.cli.schedules import schedules_group
from runtime.cli.secrets import secrets_group, vault_group
from runtime.cli.serve import serve_command
from runtime.cli.users import audit_command, tokens_group, users_group
from runtime.models.config import BUILT_IN, CONFIG_NAME, find_models_config
from runtime.models.types import ModelConfigError
from runtime.records import ModelCallRecord
from runtime.run.parallel import combined_exit_code, results_table
from runtime.run.runner import RunResult
from runtime.settings import Settings
from runtime.task import load_task

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


@cli.command("run")
@click.argument("task_file", type=click.Path(path_type=Path))
@click.option("--profile", help="run on this profile (overrides the task's profile)")
@click.option("--parallel", help="comma-separated profiles to run on at once, each isolated")
@click.option("--var", "vars_", multiple=True, help="NAME=VALUE, overrides {{var:NAME}}")
@click.option("--json", "as_json", is_flag=True, help="print machine-readable results only")
@click.option("--lease-timeout", type=float, help="seconds to wait for a profile in use")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="model config file (corral.toml) for goal tasks; else CORRAL_CONFIG, else "
    "CORRAL_HOME/corral.toml (./corral.toml is read only when named here)",
)
def run(
    task_file: Path,
    profile: str | None,
    parallel: str | None,
    vars_: tuple[str, ...],
    as_json: bool,
    lease_timeout: float | None,
    config_file: Path | None,
) -> None:
    """Run a task file on one profile, or on several with --parallel."""
    cli_vars = parse_pairs(vars_, "--var")
    profiles = [p.strip() for p in parallel.split(",") if p.strip()] if parallel else []
    if parallel and not profiles:
        raise click.UsageError("--parallel: expected profile names, e.g. alice,bob")
    if len(set(profiles)) != len(profiles):
        raise click.UsageError("--parallel: a profile is listed twice (one run per profile)")

    async def body(rt: Runtime) -> list[RunResult]:
        actor = await cli_actor(rt)
        task = load_task(task_file)
        if config_file is not None:
            rt.settings = rt.settings.model_copy(update={"models_config": config_file})
        if task.goal:
            _announce_models_config(rt.settings)
        runs = rt.services.runs
        live = None if as_json or not sys.stderr.isatty() else err_console
        if profiles:
            return await runs.run_many(
                actor, task, profiles, cli_vars, console=live, lease_timeout_s=lease_timeout
            )
        if live is None:
            return [await runs.run(actor, task, profile, cli_vars, lease_timeout_s=lease_timeout)]
        name = profile or task.profile or "?"
        return await runs.run_many(
            actor, task, [name], cli_vars, console=live, lease_timeout_s=lease_timeout
        )

    results = run_async(lambda: with_runtime(body))
    if as_json:
        print_json([r.model_dump(mode="json") for r in results])
    else:
        _print_results(results)
    sys.exit(combined_exit_code(results))


def _announce_models_config(settings: Settings) -> None:
    """Say on stderr which model config a goal run uses (the key goes where it points)."""
    try:
        path = find_models_config(settings.home, settings.models_config)
    except ModelConfigError:
        return  # the run reports it, with the file named
    click.echo(f"models: {path if path is not None else BUILT_IN}", err=True)
    here = Path.cwd() / CONFIG_NAME
    if here.is_file() and (path is None or here.resolve() != path.resolve()):
        click.echo(
            f"models: {here} ignored: a config in the working directory is read only when "
            f"named (--config {CONFIG_NAME} or CORRAL_CONFIG)",
            err=True,
        )


def _print_results(results: list[RunResult]) -> None:
    console = out_console()
    if len(results) > 1 or any(r.run_id for r in results):
        console.print(results_table(results))
    for r in results:
        if r.run_id is None:
            click.echo(f"error: {r.error}", err=True)
            continue
        if r.error:
            click.echo(f"error: {r.profile}: {r.error}", err=True)
        if r.output is not None:
            console.print(f"[bold]{r.profile}[/] output:")
            console.print_json(data=r.output)
        console.print(
            f"recording: {r.run_dir}  (corral runs show {r.run_id})",
            highlight=False,
            soft_wrap=True,
        )


@cli.group("runs")
def runs_group() -> None:
    """Recorded runs."""


@runs_group.command("list")
@click.option("--limit", default=20, show_default=True)
@click.option("--profile")
@click.option("--schedule", help="only runs this schedule's fires started")
@click.option("--json", "as_json", is_flag=True)
def runs_list(limit: int, profile: str | None, schedule: str | None, as_json: bool) -> None:
    """The latest runs."""

    async def body(rt: Runtime) -> None:
        runs = await rt.services.runs.list(await cli_actor(rt), limit, profile, schedule)
        if as_json:
            print_json([r.model_dump(mode="json") for r in runs])
            return
        table = Table(title="runs")
        for col in ("run", "task", "profile", "schedule", "status", "started", "took", "error"):
            table.add_column(col)
        for r in runs:
            took = (r.finished_at - r.started_at).total_seconds() if r.finished_at else None
            table.add_row(
                r.id,
                r.task_name,
                r.profile,
                r.schedule or "",
                r.status,
                r.started_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
                f"{took:.1f}s" if took is not None else "",
                (r.error or "")[:60],
            )
        out_console().print(table)

    run_async(lambda: with_runtime(body))


@runs_group.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
def runs_show(run_id: str, as_json: bool) -> None:
    """One run: its steps, errors, model calls and cost, screenshots and files."""

    async def body(rt: Runtime) -> None:
        run, steps, calls, artifacts = await rt.services.runs.show(await cli_actor(rt), run_id)
        if as_json:
            print_json(
                {
                    "run": run.model_dump(mode="json"),
                    "steps": [s.model_dump(mode="json") for s in steps],
                    "model_calls": [c.model_dump(mode="json") for c in calls],
                    "artifacts": [a.model_dump(mode="json") for a in artifacts],
                }
            )
            return
        step_cost: dict[int | None, float] = {}
        for c in calls:
            step_cost[c.step_idx] = step_cost.get(c.step_idx, 0.0) + c.cost_usd
        console = out_console()
        console.print(
            f"[bold]run {run.id}[/]  task {run.task_name}  profile {run.profile}  "
            f"status {run.status}",
            highlight=False,
        )
        if run.error:
            console.print(f"[red]error: {run.error}[/]", highlight=False, soft_wrap=True)
        table = Table()
        for col in ("#", "action", "target", "status", "ms", "model $", "url after", "error"):
            table.add_column(col)
        for s in steps:
            cost = step_cost.get(s.idx)
            table.add_row(
                str(s.idx + 1),
                s.kind,
                s.target or _action_arg(s.action),
                s.status,
                f"{s.duration_ms:.0f}",
                f"{cost:.4f}" if cost is not None else "",
                s.url_after or "",
                s.error or "",
            )
        console.print(table)
        if calls:
            console.print(_cost_by_role(calls))
        console.print(f"folder: {run.run_dir}", highlight=False, soft_wrap=True)
        for a in artifacts:
            if a.kind != "screenshot":
                console.print(
                    f"  {a.kind}: {a.path} ({a.bytes:,} bytes)", highlight=False, soft_wrap=True
                )
        shots = sum(a.kind == "screenshot" for a in artifacts)
        console.print(f"  screenshots: {shots} in steps/", highlight=False, soft_wrap=True)
        if run.result is not None:
            console.print("result:")
            console.print_json(data=run.result)

    run_async(lambda: with_runtime(body))


def _cost_by_role(calls: list[ModelCallRecord]) -> Table:
    """Tokens and cost per role and model; failed and skipped attempts counted apart."""
    table = Table(title="model calls by role")
    for col in ("role", "model", "answered", "failed/skipped", "input", "cached", "output", "$"):
        table.add_column(col)
    groups: dict[tuple[str, str], list[ModelCallRecord]] = {}
    for c in calls:
        groups.setdefault((c.role, f"{c.provider}:{c.model}"), []).append(c)
    for (role, label), group in sorted(groups.items()):
        table.add_row(
            role,
            label,
            str(sum(c.outcome == "ok" for c in group)),
            str(sum(c.outcome in ("error", "skipped") for c in group)),
            str(sum(c.input_tokens for c in group)),
            str(sum(c.cached_tokens for c in group)),
            str(sum(c.output_tokens for c in group)),
            f"{sum(c.cost_usd for c in group):.4f}",
        )
    table.add_row("total", "", "", "", "", "", "", f"{sum(c.cost_usd for c in calls):.4f}")
    return table


def _action_arg(action: dict[str, object]) -> str:
    return str(action.get("url", ""))


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
