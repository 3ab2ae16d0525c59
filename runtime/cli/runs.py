"""``corral run`` and ``corral runs``: running task files, and the runs they recorded.

With ``CORRAL_SERVER`` set, a task file's text is sent to the server, which runs it in its worker
pool; the command waits for the results and prints them as a local run would (Ctrl-C cancels the
runs on the server). ``runs list`` and ``runs show`` read the server's records.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import click
from rich.table import Table

from profiles import CorralError, UserError
from runtime.app import Runtime
from runtime.cli.common import cli_actor, err_console, out_console, parse_pairs, print_json
from runtime.cli.remote import either
from runtime.client import ApiClient
from runtime.models.config import BUILT_IN, CONFIG_NAME, find_models_config
from runtime.models.types import ModelConfigError
from runtime.records import ModelCallRecord, RunRecord
from runtime.run.parallel import combined_exit_code, results_table
from runtime.run.runner import RunResult
from runtime.services import RunDetail
from runtime.settings import Settings
from runtime.task import load_task, load_task_text, read_task_text

__all__ = ["run_command", "runs_group"]


@click.command("run")
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
def run_command(
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

    async def remote(client: ApiClient) -> list[RunResult]:
        if config_file is not None:
            raise UserError(
                "--config: with CORRAL_SERVER the server's model config is used (set it on the "
                "server host); drop --config"
            )
        text = read_task_text(task_file)
        load_task_text(text, str(task_file))  # bad input is reported here, before it is sent
        wanted = profiles or ([profile] if profile else [])
        started = await client.start_runs(
            text, str(task_file), wanted, cli_vars, lease_timeout_s=lease_timeout
        )
        for run in started:
            click.echo(f"{run.profile}: run {run.run_id} started on {client.base_url}", err=True)
        try:
            return list(await asyncio.gather(*(client.wait_result(run.run_id) for run in started)))
        except asyncio.CancelledError:
            # Ctrl-C: the runs stop on the server too (they are this command's).
            for run in started:
                with contextlib.suppress(CorralError):
                    await asyncio.shield(client.cancel_run(run.run_id, "the client was stopped"))
            raise

    results = either(body, remote)
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


@click.group("runs")
def runs_group() -> None:
    """Recorded runs."""


@runs_group.command("list")
@click.option("--limit", default=20, show_default=True)
@click.option("--profile")
@click.option("--schedule", help="only runs this schedule's fires started")
@click.option("--json", "as_json", is_flag=True)
def runs_list(limit: int, profile: str | None, schedule: str | None, as_json: bool) -> None:
    """The latest runs."""

    async def local(rt: Runtime) -> list[RunRecord]:
        return await rt.services.runs.list(await cli_actor(rt), limit, profile, schedule)

    async def remote(client: ApiClient) -> list[RunRecord]:
        return await client.list_runs(limit, profile, schedule)

    def body(runs: list[RunRecord]) -> None:
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

    body(either(local, remote))


@runs_group.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
def runs_show(run_id: str, as_json: bool) -> None:
    """One run: its steps, errors, model calls and cost, screenshots and files."""

    async def local(rt: Runtime) -> RunDetail:
        return await rt.services.runs.show(await cli_actor(rt), run_id)

    async def remote(client: ApiClient) -> RunDetail:
        got = await client.show_run(run_id)
        return RunDetail(got.run, got.steps, got.model_calls, got.artifacts)

    def body(detail: RunDetail) -> None:
        run, steps, calls, artifacts = detail
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

    body(either(local, remote))


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
