"""Running a task on several profiles at once, with a live progress view (rich)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from runtime.app import Runtime
from runtime.errors import combined_exit_code as exit_codes
from runtime.run.runner import RunEvent, RunResult, run_task
from runtime.task import Task

__all__ = ["ProgressView", "combined_exit_code", "results_table", "run_many"]

_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "denied": "red",
    "cancelled": "yellow",
    "interrupted": "yellow",
    "waiting_approval": "magenta",
}


@dataclass
class _Row:
    profile: str
    run_id: str = ""
    step: int = 0
    total: int = 0
    text: str = "waiting for the profile lease"
    status: str = "queued"
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None


class ProgressView:
    """A live table: one row per run, updated from :class:`RunEvent`s."""

    def __init__(self, profiles: Sequence[str]) -> None:
        self.rows = {p: _Row(p) for p in profiles}

    def on_event(self, event: RunEvent) -> None:
        """Update a row from an event."""
        row = self.rows[event.profile]
        row.run_id = event.run_id
        if event.kind == "started":
            row.status, row.total, row.text = "running", event.total, "starting the browser"
        elif event.kind == "step":
            row.step, row.total, row.text = event.step, event.total, event.text
            row.status = "running"
        elif event.kind == "approval":
            row.status, row.text = "waiting_approval", event.text
        else:
            row.status, row.ended = event.status, time.monotonic()
            row.text = event.text or "done"

    def __rich__(self) -> Table:
        table = Table(title="corral runs", expand=False)
        for col in ("profile", "run", "status", "step", "doing", "time"):
            table.add_column(col)
        for row in self.rows.values():
            elapsed = (row.ended or time.monotonic()) - row.started
            table.add_row(
                row.profile,
                row.run_id,
                Text(row.status, style=_STYLE.get(row.status, "cyan")),
                f"{row.step}/{row.total}" if row.total else "",
                Text(row.text[:70], overflow="ellipsis"),
                f"{elapsed:5.1f}s",
            )
        return table


def combined_exit_code(results: Sequence[RunResult]) -> int:
    """One exit code for several runs (see :func:`runtime.errors.combined_exit_code`)."""
    return exit_codes([r.exit_code for r in results])


def results_table(results: Sequence[RunResult]) -> Table:
    """The summary table printed after runs finish (with model tokens and cost when any)."""
    table = Table(title="results")
    models = any(r.tokens for r in results)
    columns = ["profile", "run", "status", "steps ok/skipped/failed", "session", "time"]
    columns += ["tokens", "cost $"] if models else []
    for col in [*columns, "output"]:
        table.add_column(col)
    for r in results:
        output = "" if r.output is None else _summary(r.output)
        cells: list[str | Text] = [
            r.profile,
            r.run_id or "-",
            Text(r.status, style=_STYLE.get(r.status, "cyan")),
            f"{r.steps_ok}/{r.steps_skipped}/{r.steps_failed}",
            "restored" if r.session_restored else "new",
            f"{r.duration_s:.1f}s",
        ]
        if models:
            cells += [str(r.tokens), f"{r.cost_usd:.4f}"]
        cells.append(output if r.error is None else Text(r.error[:100], style="red"))
        table.add_row(*cells)
    return table


def _summary(output: object) -> str:
    if isinstance(output, list):
        return f"{len(output)} item(s)"
    text = str(output)
    return text if len(text) <= 60 else text[:57] + "..."


async def run_many(
    rt: Runtime,
    task: Task,
    profiles: Sequence[str],
    cli_vars: Mapping[str, str] | None = None,
    *,
    console: Console | None = None,
    on_event: Callable[[RunEvent], None] | None = None,
    lease_timeout_s: float | None = None,
) -> list[RunResult]:
    """Run ``task`` on every profile concurrently, each in its own isolated session."""
    view = ProgressView(profiles)

    def both(event: RunEvent) -> None:
        view.on_event(event)
        if on_event is not None:
            on_event(event)

    async def all_runs() -> list[RunResult]:
        async with asyncio.TaskGroup() as group:
            jobs = [
                group.create_task(
                    run_task(rt, task, p, cli_vars, on_event=both, lease_timeout_s=lease_timeout_s)
                )
                for p in profiles
            ]
        return [job.result() for job in jobs]

    if console is None:
        return await all_runs()
    with Live(Group(view), console=console, refresh_per_second=8, transient=False):
        return await all_runs()
