"""``corral schedules``: register a task to run on profiles at set times, and manage it.

The task file's text is registered when a schedule is added (and again by ``update --task``), so
a later edit of the file never changes what a schedule runs. Times without an offset are read in
the schedule's zone (``--tz``, else the schedule's own, else UTC).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

import click
from rich.table import Table

from runtime.app import Runtime
from runtime.cli.common import cli_actor, out_console, parse_pairs, print_json
from runtime.cli.remote import LocalSchedules, SchedulesApi, either
from runtime.cli.schedule_flags import (
    ScheduleFlags,
    parse_time,
    policy_from,
    read_task,
    schedule_options,
    timing_from,
)
from runtime.errors import ScheduleError
from runtime.schedules import Fire, Schedule, SchedulePolicy, format_duration
from runtime.services import ScheduleChanges, ScheduleInput

if TYPE_CHECKING:
    # The HTTP client loads only when the command goes to a server.
    from runtime.client import ApiClient

__all__ = ["schedules_group"]

T = TypeVar("T")


_SHOWN_FIRES = 10

# --- rendering ----------------------------------------------------------------------------------


def _dump(schedule: Schedule, with_task: bool = False) -> dict[str, Any]:
    return schedule.model_dump(mode="json", exclude=None if with_task else {"task_yaml"})


def _when(schedule: Schedule) -> str:
    t = schedule.timing
    if t.cron:
        return f"cron '{t.cron}' {t.tz}"
    assert t.every_s is not None
    return f"every {format_duration(t.every_s)}" + (f" ({t.tz})" if t.tz != "UTC" else "")


def _local(value: datetime | None, tz: str) -> str:
    if value is None:
        return "-"
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S %Z")


def _paused(schedule: Schedule) -> str:
    return f"yes: {schedule.paused_reason}" if schedule.paused else "no"


def _fires_table(fires: list[Fire], tz: str, title: str | None = None) -> Table:
    table = Table("scheduled", "profile", "kind", "status", "attempt", "run", "note", title=title)
    for f in fires:
        table.add_row(
            _local(f.scheduled_at, tz),
            f.profile,
            f.kind,
            f.status,
            str(f.attempt),
            f.run_id or "",
            f.note or "",
        )
    return table


def _echo_schedule(verb: str, schedule: Schedule, as_json: bool) -> None:
    if as_json:
        print_json(_dump(schedule))
    else:
        click.echo(f"schedule {schedule.name} {verb}: {_when(schedule)}, {_paused(schedule)}")


def _run(body: Callable[[SchedulesApi], Awaitable[T]]) -> T:
    """Run ``body`` on the schedules here (as the acting user) or on ``CORRAL_SERVER``;
    errors become exit codes."""

    async def local(rt: Runtime) -> T:
        return await body(LocalSchedules(rt.services.schedules, await cli_actor(rt)))

    async def remote(client: ApiClient) -> T:
        return await body(client.schedules)

    return either(local, remote)


# --- commands -----------------------------------------------------------------------------------


@click.group("schedules")
def schedules_group() -> None:
    """Tasks that run on profiles at set times (run by `corral serve`)."""


@schedules_group.command("add")
@click.argument("name")
@click.option("--task", "task_file", required=True, help="the task file (its text is registered)")
@schedule_options
def add(name: str, task_file: str, as_json: bool, **given: Any) -> None:
    """Register a task to run on profiles by a cron expression or at a fixed interval."""
    flags = ScheduleFlags(**given)

    async def body(ops: SchedulesApi) -> Schedule:
        timing = timing_from(flags, None)
        assert timing is not None
        text, source = read_task(task_file)
        spec = ScheduleInput(
            name=name,
            task_yaml=text,
            task_source=source,
            profiles=list(flags.profiles),
            vars=parse_pairs(flags.vars_, "--var"),
            timing=timing,
            policy=policy_from(flags, SchedulePolicy()) or SchedulePolicy(),
        )
        return await ops.add(spec)

    _echo_schedule("added", _run(body), as_json)


@schedules_group.command("update")
@click.argument("name")
@click.option("--task", "task_file", help="register this task file's text in place of the old")
@schedule_options
def update(name: str, task_file: str | None, as_json: bool, **given: Any) -> None:
    """Change a schedule: only what is given changes (--profile, --var, --exclude-date replace)."""
    flags = ScheduleFlags(**given)

    async def body(ops: SchedulesApi) -> Schedule:
        current = await ops.get(name)
        text, source = read_task(task_file) if task_file else (None, None)
        changes = ScheduleChanges(
            task_yaml=text,
            task_source=source,
            profiles=list(flags.profiles) or None,
            vars=parse_pairs(flags.vars_, "--var") if flags.vars_ else None,
            timing=timing_from(flags, current.timing),
            policy=policy_from(flags, current.policy),
        )
        if not changes.model_dump(exclude_none=True):
            raise ScheduleError(f"update {name}: nothing to change (give --task, --cron, ...)")
        return await ops.update(name, changes)

    _echo_schedule("updated", _run(body), as_json)


@schedules_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="machine output on stdout")
def list_(as_json: bool) -> None:
    """The schedules you may see (admins: all), with their next fire and last outcome."""

    async def body(ops: SchedulesApi) -> list[tuple[Schedule, datetime | None, Fire | None]]:
        rows = []
        for s in await ops.list():
            upcoming = await ops.next_fires(s.name, 1)
            last = await ops.fires(s.name, limit=1)
            rows.append((s, upcoming[0] if upcoming else None, last[0] if last else None))
        return rows

    rows = _run(body)
    if as_json:
        print_json(
            [
                {
                    **_dump(s),
                    "next_fire": nxt.isoformat() if nxt else None,
                    "last_fire": last.model_dump(mode="json") if last else None,
                }
                for s, nxt, last in rows
            ]
        )
        return
    if not rows:
        click.echo("no schedules (add one: corral schedules add NAME --task FILE --cron ...)")
        return
    table = Table("name", "task", "profiles", "when", "next fire", "paused", "last fire", "owner")
    for s, nxt, last in rows:
        table.add_row(
            s.name,
            s.task_name,
            ", ".join(s.profiles),
            _when(s),
            _local(nxt, s.timing.tz),
            _paused(s),
            last.status if last else "-",
            s.owner,
        )
    out_console().print(table)


@schedules_group.command("show")
@click.argument("name")
@click.option("--task", "with_task", is_flag=True, help="print the registered task text")
@click.option("--json", "as_json", is_flag=True, help="machine output on stdout")
def show(name: str, with_task: bool, as_json: bool) -> None:
    """One schedule: every setting, its last fires; the registered task text with --task."""

    async def body(ops: SchedulesApi) -> tuple[Schedule, list[Fire]]:
        schedule = await ops.get(name)
        return schedule, await ops.fires(name, limit=_SHOWN_FIRES)

    schedule, fires = _run(body)
    if as_json:
        dumped = {
            "schedule": _dump(schedule, with_task),
            "fires": [f.model_dump(mode="json") for f in fires],
        }
        print_json(dumped)
        return
    if with_task:
        click.echo(schedule.task_yaml, nl=not schedule.task_yaml.endswith("\n"))
        return
    t, p = schedule.timing, schedule.policy
    lines = [
        f"{schedule.name}  task {schedule.task_name} (registered from {schedule.task_source})",
        f"  owner:      {schedule.owner}",
        f"  profiles:   {', '.join(schedule.profiles)}",
        f"  vars:       {', '.join(f'{k}={v}' for k, v in schedule.vars.items()) or '-'}",
        f"  when:       {_when(schedule)}",
        f"  start/end:  {_local(t.start_at, t.tz)} / {_local(t.end_at, t.tz)}",
        f"  jitter:     {format_duration(t.jitter_s)}",
        f"  excluded:   {', '.join(d.isoformat() for d in t.exclude_dates) or '-'}",
        f"  overlap:    {p.overlap}",
        f"  catch-up:   {format_duration(p.catchup_s)}",
        f"  retries:    {p.retries} (backoff {format_duration(p.backoff_s)}, "
        f"at most {format_duration(p.max_backoff_s)})",
        "  pause:      "
        + (f"after {p.pause_after} failed fires in a row" if p.pause_after else "never")
        + f" ({schedule.consecutive_failures} failed in a row now)",
        f"  limits:     origin {p.origin_limit or '-'}, concurrency {p.concurrency or '-'}",
        f"  notify:     {','.join(p.notify) or 'none'}",
        "  canary:     "
        + (f"{p.canary.share:.0%} of fires on {p.canary.models}" if p.canary else "-"),
        f"  paused:     {_paused(schedule)}",
    ]
    click.echo("\n".join(lines))
    if fires:
        out_console().print(_fires_table(fires, t.tz, title=f"last {len(fires)} fires"))
    else:
        click.echo("  no fires yet")


@schedules_group.command("next")
@click.argument("name")
@click.option("-n", "count", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="machine output on stdout")
def next_(name: str, count: int, as_json: bool) -> None:
    """The next fire times, in the schedule's zone and in UTC (none while paused)."""

    async def body(ops: SchedulesApi) -> tuple[Schedule, list[datetime]]:
        return await ops.get(name), await ops.next_fires(name, count)

    schedule, times = _run(body)
    zone = ZoneInfo(schedule.timing.tz)
    if as_json:
        print_json(
            {
                "schedule": schedule.name,
                "tz": schedule.timing.tz,
                "paused": schedule.paused,
                "times": [
                    {"local": t.astimezone(zone).isoformat(), "utc": t.astimezone(UTC).isoformat()}
                    for t in times
                ],
            }
        )
        return
    if not times:
        click.echo(f"{name}: no coming fires" + (" (paused)" if schedule.paused else ""))
        return
    for t in times:
        click.echo(f"{_local(t, schedule.timing.tz)}  ({t.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC)")


@schedules_group.command("pause")
@click.argument("name")
@click.option("--reason", help="why (shown in lists)")
@click.option("--json", "as_json", is_flag=True, help="machine output on stdout")
def pause(name: str, reason: str | None, as_json: bool) -> None:
    """Stop new fires until resumed (a running fire goes on)."""
    _echo_schedule(
        "paused",
        _run(lambda ops: ops.pause(name, reason)),
        as_json,
    )


@schedules_group.command("resume")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="machine output on stdout")
def resume(name: str, as_json: bool) -> None:
    """Fire again from now on (fires due while paused are not made up)."""
    _echo_schedule("resumed", _run(lambda ops: ops.resume(name)), as_json)


def _echo_fires(name: str, verb: str, fires: list[Fire], as_json: bool) -> None:
    if as_json:
        print_json([f.model_dump(mode="json") for f in fires])
        return
    click.echo(f"{name}: {len(fires)} fire(s) {verb}; `corral serve` runs them")
    for f in fires:
        click.echo(f"  {f.id}  {f.scheduled_at.isoformat()}  {f.profile}")


@schedules_group.command("run-now")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="machine output on stdout")
def run_now(name: str, as_json: bool) -> None:
    """A fire for now on every profile of the schedule (a paused one too)."""
    fires = _run(lambda ops: ops.run_now(name))
    _echo_fires(name, "queued", fires, as_json)


@schedules_group.command("backfill")
@click.argument("name")
@click.option("--from", "start", required=True, help="ISO 8601; without an offset: the zone's")
@click.option("--to", "end", required=True, help="ISO 8601; without an offset: the zone's")
@click.option("--json", "as_json", is_flag=True, help="machine output on stdout")
def backfill(name: str, start: str, end: str, as_json: bool) -> None:
    """Fires for the schedule's times in (--from, --to] that never fired (none run twice)."""

    async def body(ops: SchedulesApi) -> list[Fire]:
        tz = (await ops.get(name)).timing.tz
        begin, finish = parse_time(start, "--from", tz), parse_time(end, "--to", tz)
        return await ops.backfill(name, begin, finish)

    _echo_fires(name, "added", _run(body), as_json)


@schedules_group.command("rm")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="machine output on stdout")
def rm(name: str, as_json: bool) -> None:
    """Remove a schedule: queued fires are skipped; past fires stay on record."""
    _run(lambda ops: ops.remove(name))
    if as_json:
        print_json({"removed": name})
    else:
        click.echo(f"schedule {name} removed")


@schedules_group.command("fires")
@click.argument("name")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="machine output on stdout")
def fires(name: str, limit: int, as_json: bool) -> None:
    """A schedule's fires, latest first: status, attempt, run and why."""

    async def body(ops: SchedulesApi) -> tuple[Schedule, list[Fire]]:
        return await ops.get(name), await ops.fires(name, limit=limit)

    schedule, found = _run(body)
    if as_json:
        print_json([f.model_dump(mode="json") for f in found])
    elif not found:
        click.echo(f"{name}: no fires yet")
    else:
        out_console().print(_fires_table(found, schedule.timing.tz))
