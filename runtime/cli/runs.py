"""``corral run`` and ``corral runs``: running task files, and the runs they recorded.

With ``CORRAL_SERVER`` set, a task file's text is sent to the server, which runs it in its worker
pool; the command waits for the results and prints them as a local run would (Ctrl-C cancels the
runs on the server). ``runs list`` and ``runs show`` read the server's records.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table
from rich.text import Text

from profiles import CorralError, UserError
from runtime.cli.common import cli_actor, err_console, out_console, parse_pairs, print_json
from runtime.cli.remote import either

if TYPE_CHECKING:
    # What a command needs is imported where it runs: `runs list` never loads the browser
    # driver, `run` never loads the replay's templates.
    from runtime.app import Runtime
    from runtime.client import ApiClient
    from runtime.records import RunRecord
    from runtime.review import RunReview, StepView
    from runtime.run.runner import RunResult
    from runtime.settings import Settings

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
    from runtime.run.parallel import combined_exit_code
    from runtime.task import load_task, load_task_text, read_task_text

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
@click.option("--json", "as_json", is_flag=True, help="print the run's review (RunReview) as JSON")
def runs_show(run_id: str, as_json: bool) -> None:
    """One run, step by step: what was done to what, the verdict, the approval, the model,
    tokens, cost and time, what was blocked; then the cost by role and model."""

    async def local(rt: Runtime) -> RunReview:
        return await rt.services.runs.review(await cli_actor(rt), run_id)

    async def remote(client: ApiClient) -> RunReview:
        return await client.review(run_id)

    review = either(local, remote)
    if as_json:
        print_json(review.model_dump(mode="json"))
        return
    _print_review(review)


# Control characters (and bidi overrides) from a page would steer the terminal: shown escaped.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _plain(text: object) -> str:
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode(), str(text))


_STYLES = {
    "ok": "green",
    "succeeded": "green",
    "allow": "green",
    "approved": "green",
    "executed": "green",
    "failed": "red",
    "denied": "red",
    "deny": "red",
    "expired": "red",
    "interrupted": "red",
    "skipped": "yellow",
    "cancelled": "yellow",
    "require_approval": "magenta",
    "waiting_approval": "magenta",
    "pending": "magenta",
}


def _line(label: str, *parts: tuple[str, str | None]) -> Text:
    text = Text("     ")
    text.append(f"{label}: ", style="dim")
    for part, style in parts:
        text.append(_plain(part), style=style)
    return text


def _step_lines(step: StepView) -> list[Text]:
    from runtime.review.replay import seconds_text, usd, when

    head = Text()
    head.append(f"{step.number:>4} ", style="bold")
    head.append(step.status, style=_STYLES.get(step.status))
    head.append("  ")
    head.append(_plain(step.words), style="bold")
    head.append(f"  ({step.kind}, {seconds_text(step.duration_ms / 1000)})", style="dim")
    lines = [head]
    if step.target is not None:
        target = step.target.words() or ""
        ref = (
            f" (ref {step.target.ref})"
            if step.target.ref and target != f"ref {step.target.ref}"
            else ""
        )
        lines.append(_line("target", (target + ref, None)))
    if step.navigated:
        lines.append(_line("url", (f"{step.url_before or ''} -> {step.url_after}", None)))
    if step.decision:
        verdict = step.decision + (
            f": {'; '.join(step.reasons)}" if step.reasons and step.decision != "allow" else ""
        )
        lines.append(_line("verdict", (verdict, _STYLES.get(step.decision))))
    if step.approval is not None:
        a = step.approval
        who = f" by {a.decided_by}" if a.decided_by else ""
        at = f" at {when(a.decided_at)}" if a.decided_at else ""
        said = f": {a.comment}" if a.comment else ""
        lines.append(
            _line("approval", (a.status, _STYLES.get(a.status)), (f"{who}{at}{said}", None))
        )
    if step.answered_by or step.models:
        model = step.answered_by or "no answer"
        fallbacks = f" (after {'; '.join(step.fallbacks)})" if step.fallbacks else ""
        lines.append(
            _line(
                "model",
                (
                    f"{model}{fallbacks}, {step.input_tokens} in / {step.output_tokens} out "
                    f"tokens, {usd(step.cost_usd)}, {seconds_text(step.model_latency_ms / 1000)}",
                    None,
                ),
            )
        )
    if step.reason:
        lines.append(_line("reason", (step.reason, None)))
    if step.blocked_hosts:
        lines.append(_line("blocked", (", ".join(step.blocked_hosts), "yellow")))
    if step.held_requests:
        lines.append(_line("held", ("; ".join(step.held_requests), "yellow")))
    if step.error:
        lines.append(_line("error", (step.error, "red")))
    return lines


def _cost_table(review: RunReview) -> Table:
    """Calls, tokens, latency and cost per role and model."""
    from runtime.review.replay import seconds_text

    table = Table(title="model calls by role")
    for col in ("role", "model", "calls", "failed", "input", "output", "latency", "$"):
        table.add_column(col)
    for line in review.summary.by_role_model:
        table.add_row(
            line.role,
            _plain(line.model),
            str(line.calls),
            str(line.failed),
            str(line.input_tokens),
            str(line.output_tokens),
            seconds_text(line.latency_ms / 1000),
            f"{line.cost_usd:.4f}",
        )
    summary = review.summary
    table.add_row(
        "total",
        "",
        str(sum(line.calls for line in summary.by_role_model)),
        str(sum(line.failed for line in summary.by_role_model)),
        str(summary.input_tokens),
        str(summary.output_tokens),
        "",
        f"{summary.cost_usd:.4f}",
    )
    return table


def _print_review(review: RunReview) -> None:
    from runtime.review.replay import seconds_text, usd

    console = out_console()
    run, summary = review.run, review.summary
    head = Text()
    head.append(f"run {run.id}", style="bold")
    head.append(f"  task {_plain(run.task_name)}  profile {_plain(run.profile)}  status ")
    head.append(summary.status, style=_STYLES.get(summary.status))
    took = seconds_text(summary.duration_s)
    head.append(
        f"  {took or 'still going'}  {summary.steps} steps  {usd(summary.cost_usd)}  "
        f"{summary.input_tokens + summary.output_tokens} tokens"
    )
    console.print(head, soft_wrap=True)
    if summary.hit_cap:
        console.print(Text("stopped by a budget cap", style="yellow"))
    for error in summary.errors:
        console.print(Text(f"error: {_plain(error)}", style="red"), soft_wrap=True)
    for step in review.steps:
        for line in _step_lines(step):
            console.print(line, soft_wrap=True)
    if summary.by_role_model:
        console.print(_cost_table(review))
    console.print(Text(f"folder: {run.run_dir}"), soft_wrap=True)
    if review.trace:
        trace = Path(run.run_dir) / review.trace
        console.print(Text(f"  trace: {trace}  (playwright show-trace {trace})"), soft_wrap=True)
    shots = sum(s.screenshot is not None for s in review.steps)
    console.print(
        Text(f"  screenshots: {shots} in steps/  (corral replay {run.id})"), soft_wrap=True
    )
    if review.output is not None:
        console.print("output:")
        console.print_json(data=review.output)
