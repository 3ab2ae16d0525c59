"""``corral gc`` (delete run data past its retention) and ``corral retention show|set|clear``.

Both work on the store itself (admin): with ``CORRAL_SERVER`` set, run them on the server host,
where ``corral serve`` also runs the same gc every ``CORRAL_GC_INTERVAL`` seconds.
"""

from __future__ import annotations

import click
from rich.table import Table

from runtime.app import Runtime
from runtime.cli.common import cli_actor, out_console, print_json, run_async, with_runtime
from runtime.retention import KINDS, Retention
from runtime.services.retention import GcReport, RuleReport

__all__ = ["gc_command", "retention_group"]


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    if n < 1_000_000:
        return f"{n / 1000:.1f} kB"
    return f"{n / 1_000_000:.1f} MB"


def _print_report(report: GcReport) -> None:
    verb = "would delete" if report.dry_run else "deleted"
    if not report.deletions:
        click.echo(f"nothing expired (aged against {report.now:%Y-%m-%d %H:%M:%SZ})")
    else:
        table = Table(title="expired run data" + (" (dry run)" if report.dry_run else ""))
        for col in ("run", "task", "profile", "kind", "rule", "ended", "files", "size", "records"):
            table.add_column(col)
        for d in report.deletions:
            size = f"{d.bytes} chars" if d.kind == "excerpts" else _size(d.bytes)
            table.add_row(
                d.run_id,
                d.task,
                d.profile,
                d.kind,
                d.rule,
                f"{d.ended_at:%Y-%m-%d %H:%M}",
                str(d.files),
                size,
                str(d.records),
            )
        out_console().print(table)
        runs = len({d.run_id for d in report.deletions})
        click.echo(f"{verb}: {len(report.deletions)} kind(s) of data of {runs} run(s)")
    for line in report.failed:
        click.echo(f"warning: left for the next gc: {line}", err=True)


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="only list what would be deleted")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def gc_command(dry_run: bool, as_json: bool) -> None:
    """Delete run data past its retention: screenshots, traces, page excerpts, results (admin).

    Only runs that have ended, aged from their end. Each deletion is in the audit log (which
    run, what kind, how much, under which rule), never the data. Exit 1 if some run's data
    could not be deleted (it is retried by the next gc).
    """

    async def body(rt: Runtime) -> GcReport:
        return await rt.services.retention.gc(await cli_actor(rt), dry_run=dry_run)

    report = run_async(lambda: with_runtime(body))
    if as_json:
        data = report.model_dump(mode="json")
        data.update(files=report.files, bytes=report.bytes)
        print_json(data)
    else:
        _print_report(report)
    if report.failed:
        raise SystemExit(1)


@click.group("retention")
def retention_group() -> None:
    """How long run data is kept: per task (its file's retention:), per profile, global."""


def _print_rules(report: RuleReport) -> None:
    table = Table(title="retention rules (task > profile > global; unset: forever)")
    table.add_column("level")
    table.add_column("name")
    for kind in KINDS:
        table.add_column(kind)

    def row(level: str, name: str, rules: dict[str, str]) -> None:
        table.add_row(level, name, *(rules.get(k, "") for k in KINDS))

    row("global", "CORRAL_RETENTION_*", report.default)
    for name, rules in report.profiles.items():
        row("profile", name, rules)
    for name, rules in report.tasks.items():
        row("task", name, rules)
    out_console().print(table)
    if report.applied is not None:
        click.echo("applies: " + ", ".join(f"{k} {r.words()}" for k, r in report.applied.items()))


@retention_group.command("show")
@click.option("--task", help="also say what applies to this task's runs")
@click.option("--profile", help="also say what applies to runs on this profile")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def show_command(task: str | None, profile: str | None, as_json: bool) -> None:
    """The rules set at each level, and what applies to a task's runs on a profile."""

    async def body(rt: Runtime) -> RuleReport:
        return await rt.services.retention.rules(await cli_actor(rt), task, profile)

    report = run_async(lambda: with_runtime(body))
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        _print_rules(report)


@retention_group.command("set")
@click.option("--profile", required=True, help="the profile whose runs the rule is for")
@click.argument("rules", nargs=-1, required=True, metavar="KIND=DURATION...")
def set_command(profile: str, rules: tuple[str, ...]) -> None:
    """Set a profile's rule, e.g. ``screenshots=7d traces=1d results=forever`` (kinds not
    given keep what the profile had; a task file's retention: still beats it)."""

    async def body(rt: Runtime) -> Retention:
        rule = Retention.from_pairs(rules, "corral retention set")
        await rt.services.retention.set_profile_rule(await cli_actor(rt), profile, rule)
        return rule

    rule = run_async(lambda: with_runtime(body))
    click.echo(f"profile {profile}: " + ", ".join(f"{k}={v}" for k, v in rule.given().items()))


@retention_group.command("clear")
@click.option("--profile", required=True, help="the profile whose rule to remove")
def clear_command(profile: str) -> None:
    """Remove a profile's rule: its runs follow the global default again."""

    async def body(rt: Runtime) -> bool:
        return await rt.services.retention.clear_profile_rule(await cli_actor(rt), profile)

    removed = run_async(lambda: with_runtime(body))
    click.echo(f"profile {profile}: " + ("rule removed" if removed else "had no rule"))
