"""``corral run``: run a task file on one profile, or on several at once.

With ``CORRAL_SERVER`` set, a task file's text is sent to the server, which runs it in its worker
pool; the command waits for the results and prints them as a local run would (Ctrl-C cancels the
runs on the server).

A local run is a cold start every time, so this module imports little: Playwright's driver and
the browser start first, and the rest of corral is imported meanwhile (``with_runtime``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from profiles import CorralError, UserError
from runtime.cli.common import cli_actor, err_console, out_console, parse_pairs, print_json
from runtime.cli.remote import either

if TYPE_CHECKING:
    from runtime.app import Runtime
    from runtime.client import ApiClient
    from runtime.run.runner import RunResult
    from runtime.settings import Settings

__all__ = ["run_command"]

# What a local run imports, loaded while the browser starts (see ``with_runtime``).
_RUN_MODULES = (
    "runtime.app",
    "runtime.services.users",
    "runtime.services.runs",
    "runtime.task",
    "runtime.run.runner",
    "runtime.run.parallel",
)


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
        results = await run_here(rt)
        # Printed while the browser closes: the runs are over and their state is saved.
        rt.release_browsers()
        _report(results, as_json)
        return results

    async def run_here(rt: Runtime) -> list[RunResult]:
        from runtime.task import load_task

        actor = await cli_actor(rt)
        task = load_task(task_file)
        if config_file is not None:
            rt.settings = rt.settings.model_copy(update={"models_config": config_file})
        if task.goal:
            _announce_models_config(rt.settings)
        runs = rt.services.runs
        live = None if as_json or not sys.stderr.isatty() else err_console()
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
        results = await run_there(client)
        _report(results, as_json)
        return results

    async def run_there(client: ApiClient) -> list[RunResult]:
        from runtime.task import load_task_text, read_task_text

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

    results = either(body, remote, browser=_RUN_MODULES)
    from runtime.run.parallel import combined_exit_code

    sys.exit(combined_exit_code(results))


def _report(results: list[RunResult], as_json: bool) -> None:
    if as_json:
        print_json([r.model_dump(mode="json") for r in results])
    else:
        _print_results(results)


def _announce_models_config(settings: Settings) -> None:
    """Say on stderr which model config a goal run uses (the key goes where it points)."""
    from runtime.models.config import BUILT_IN, CONFIG_NAME, find_models_config
    from runtime.models.types import ModelConfigError

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
    from runtime.run.parallel import results_table

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
            f"recording: {r.run_dir}  (corral runs show {r.run_id}; corral replay {r.run_id})",
            highlight=False,
            soft_wrap=True,
        )
