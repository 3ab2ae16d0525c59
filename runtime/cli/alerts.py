"""``corral alerts``: what runs raised (token burn, provider errors, spend near the cap) and what
a person does about it: acknowledge, lift a freeze, resume or stop a paused run.

Alerts live in the store: these commands work on a local ``CORRAL_HOME``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.table import Table

from runtime.cli.common import cli_actor, out_console, print_json, run_async, with_runtime
from runtime.cli.remote import local_only

if TYPE_CHECKING:
    from runtime.alerts import Alert
    from runtime.app import Runtime

__all__ = ["alerts_group"]


def _done(alert: Alert, as_json: bool) -> None:
    if as_json:
        print_json(alert.model_dump(mode="json"))
        return
    out_console().print(
        f"{alert.id}: {alert.kind} in run {alert.run_id} ({alert.task} on {alert.profile}), "
        f"then {alert.then}: {alert.state}"
        + (f" by {alert.resolved_by}" if alert.resolved_by else "")
        + f"\n{alert.message}",
        markup=False,
        highlight=False,
    )


@click.group("alerts")
def alerts_group() -> None:
    """Alerts runs raised, and their runbook: acknowledge, lift, resume, stop."""


@alerts_group.command("list")
@click.option("--open", "only_open", is_flag=True, help="only alerts nobody dealt with")
@click.option("--run", "run_id", help="only this run's")
@click.option("--json", "as_json", is_flag=True)
def alerts_list(only_open: bool, run_id: str | None, as_json: bool) -> None:
    """Alerts you may see, newest first."""
    local_only()

    async def body(rt: Runtime) -> list[Alert]:
        return await rt.services.alerts.list(
            await cli_actor(rt), state="open" if only_open else None, run_id=run_id
        )

    alerts = run_async(lambda: with_runtime(body))
    if as_json:
        print_json([a.model_dump(mode="json") for a in alerts])
        return
    table = Table(title="alerts")
    for col in ("id", "kind", "run", "task / profile", "then", "state", "raised", "message"):
        table.add_column(col)
    for a in alerts:
        table.add_row(
            a.id,
            a.kind,
            a.run_id,
            f"{a.task} / {a.profile}",
            a.then,
            a.state,
            a.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            a.message,
        )
    out_console().print(table)


@alerts_group.command("show")
@click.argument("alert_id")
@click.option("--json", "as_json", is_flag=True)
def alerts_show(alert_id: str, as_json: bool) -> None:
    """One alert."""
    local_only()

    async def body(rt: Runtime) -> Alert:
        return await rt.services.alerts.show(await cli_actor(rt), alert_id)

    _done(run_async(lambda: with_runtime(body)), as_json)


@alerts_group.command("ack")
@click.argument("alert_id")
def alerts_ack(alert_id: str) -> None:
    """Mark an announcing alert (then: continue) seen."""
    local_only()

    async def body(rt: Runtime) -> Alert:
        return await rt.services.alerts.acknowledge(await cli_actor(rt), alert_id)

    _done(run_async(lambda: with_runtime(body)), False)


@alerts_group.command("lift")
@click.argument("alert_id")
def alerts_lift(alert_id: str) -> None:
    """End a freeze: the task's actions are decided by the policy again (admin)."""
    local_only()

    async def body(rt: Runtime) -> Alert:
        return await rt.services.alerts.lift(await cli_actor(rt), alert_id)

    _done(run_async(lambda: with_runtime(body)), False)


@alerts_group.command("resume")
@click.argument("alert_id")
@click.option("--comment", help="kept with the decision")
def alerts_resume(alert_id: str, comment: str | None) -> None:
    """Let a run an alert paused go on (admin; the same as approving its resume request)."""
    local_only()

    async def body(rt: Runtime) -> Alert:
        return await rt.services.alerts.decide(await cli_actor(rt), alert_id, True, comment)

    _done(run_async(lambda: with_runtime(body)), False)


@alerts_group.command("stop")
@click.argument("alert_id")
@click.option("--comment", help="kept with the decision")
def alerts_stop(alert_id: str, comment: str | None) -> None:
    """Stop a run an alert paused (admin; the same as denying its resume request)."""
    local_only()

    async def body(rt: Runtime) -> Alert:
        return await rt.services.alerts.decide(await cli_actor(rt), alert_id, False, comment)

    _done(run_async(lambda: with_runtime(body)), False)
