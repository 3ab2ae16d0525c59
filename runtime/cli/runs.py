"""``corral runs``: the runs that were recorded (``corral run`` is in :mod:`runtime.cli.run`).

With ``CORRAL_SERVER`` set, ``runs list`` and ``runs show`` read the server's records.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table
from rich.text import Text

from profiles import CorralError
from runtime.cli.common import cli_actor, out_console, print_json
from runtime.cli.remote import either

if TYPE_CHECKING:
    # What a command needs is imported where it runs: `runs list` never loads the browser
    # driver, `run` never loads the replay's templates.
    from runtime.app import Runtime
    from runtime.client import ApiClient
    from runtime.records import RunRecord
    from runtime.review import RunReview, StepView

__all__ = ["runs_group"]


@click.group("runs")
def runs_group() -> None:
    """Recorded runs."""


def _when(text: str | None, flag: str) -> datetime | None:
    """``7d``, ``12h`` (that long ago) or an ISO date or time (UTC unless it says)."""
    if text is None:
        return None
    from runtime.schedules.timing import parse_duration

    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        try:
            return datetime.now(UTC) - timedelta(seconds=parse_duration(text, flag))
        except CorralError:
            raise click.BadParameter(
                f"{text!r}: expected a duration ago (7d, 12h, 30m) or an ISO date (2026-11-30)",
                param_hint=flag,
            ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@runs_group.command("list")
@click.option("--limit", default=20, show_default=True)
@click.option("--profile")
@click.option("--schedule", help="only runs this schedule's fires started")
@click.option("--task", help="only runs of this task (its name)")
@click.option(
    "--status",
    type=click.Choice(
        ["succeeded", "failed", "denied", "cancelled", "interrupted", "running", "queued"]
    ),
    help="only runs that ended (or are) so",
)
@click.option("--since", help="started at or after: 7d, 12h (ago) or a date, 2026-11-30")
@click.option("--until", help="started before: the same forms")
@click.option("--json", "as_json", is_flag=True)
def runs_list(
    limit: int,
    profile: str | None,
    schedule: str | None,
    task: str | None,
    status: str | None,
    since: str | None,
    until: str | None,
    as_json: bool,
) -> None:
    """The latest runs, newest first; search them by task, profile, outcome and date."""
    after, before = _when(since, "--since"), _when(until, "--until")

    async def local(rt: Runtime) -> list[RunRecord]:
        return await rt.services.runs.list(
            await cli_actor(rt),
            limit,
            profile,
            schedule,
            task=task,
            status=status,
            since=after,
            until=before,
        )

    async def remote(client: ApiClient) -> list[RunRecord]:
        return await client.list_runs(
            limit, profile, schedule, task=task, status=status, since=after, until=before
        )

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
