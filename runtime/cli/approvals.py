"""``corral approvals list|show|approve|deny``: a person's decisions on gated actions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from runtime.app import Runtime
from runtime.approvals import ApprovalRequest
from runtime.cli.common import cli_actor, out_console, print_json
from runtime.cli.remote import either

if TYPE_CHECKING:
    # The HTTP client loads only when the command goes to a server.
    from runtime.client import ApiClient

__all__ = ["approvals_group", "for_terminal"]


def _clean(text: str) -> str:
    """A summary made safe to print (the gate's own sanitizer, loaded with its first use)."""
    from runtime.run.gate import sanitize_summary

    return sanitize_summary(text)


def for_terminal(text: object) -> str:
    """Page-derived text for rich: no escape sequences or control characters, markup shown
    as text, not obeyed."""
    return escape(_clean(str(text)))


def _left(request: ApprovalRequest) -> str:
    if request.status != "pending":
        return request.status
    seconds = (request.expires_at - datetime.now(UTC)).total_seconds()
    return f"pending, {max(seconds, 0) / 60:.0f} min left"


def _warning(request: ApprovalRequest) -> str | None:
    if not request.prior:
        return None
    runs = ", ".join(f"{p['run_id']} ({p['status']})" for p in request.prior)
    return f"the same action was approved before and ran or may have run: {runs}"


@click.group("approvals")
def approvals_group() -> None:
    """Gated actions waiting for a person: list, show, approve, deny."""


@approvals_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="every request, not only pending ones")
@click.option("--run", "run_id", help="only this run's requests")
@click.option("--json", "as_json", is_flag=True)
def list_(show_all: bool, run_id: str | None, as_json: bool) -> None:
    """Pending approval requests (expired ones are expired on the way)."""

    async def local(rt: Runtime) -> list[ApprovalRequest]:
        return await rt.services.approvals.list(
            await cli_actor(rt), None if show_all else "pending", run_id
        )

    async def remote(client: ApiClient) -> list[ApprovalRequest]:
        return await client.list_approvals("all" if show_all else "pending", run_id)

    requests = either(local, remote)
    if as_json:
        print_json([r.model_dump(mode="json") for r in requests])
        return
    if not requests:
        click.echo("no pending approval requests" if not show_all else "no approval requests")
        return
    table = Table("id", "run", "profile", "action", "why", "status")
    for r in requests:
        table.add_row(
            r.id,
            r.run_id,
            r.profile,
            for_terminal(r.summary),
            for_terminal("; ".join(r.reasons)),
            _left(r),
        )
    out_console().print(table)


@approvals_group.command("show")
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True)
def show(request_id: str, as_json: bool) -> None:
    """One request: the exact action, why it is gated, its screenshot, and earlier runs of it."""

    async def local(rt: Runtime) -> ApprovalRequest:
        return await rt.services.approvals.get(await cli_actor(rt), request_id)

    async def remote(client: ApiClient) -> ApprovalRequest:
        return await client.show_approval(request_id)

    r = either(local, remote)
    if as_json:
        print_json(r.model_dump(mode="json"))
        return
    clean = _clean
    lines = [
        f"{r.id}  {_left(r)}",
        f"  action:     {clean(r.summary)}",
        f"  exact:      {clean(str(r.action))}",
        f"  why:        {clean('; '.join(r.reasons))}",
        f"  run:        {r.run_id} (task {r.task_name}, profile {r.profile}, "
        f"step {r.step_idx + 1})",
        f"  page:       {clean(r.page_url or '-')}",
        f"  screenshot: {r.screenshot or '-'}",
        f"  expires:    {r.expires_at:%Y-%m-%d %H:%M:%S} UTC",
    ]
    if r.decided_by:
        lines.append(
            f"  decided:    {r.status} by {r.decided_by} ({clean(r.comment or 'no comment')})"
        )
    if r.outcome:
        lines.append(f"  outcome:    {clean(r.outcome)}")
    warning = _warning(r)
    if warning:
        lines.append(f"  WARNING:    {warning}")
    click.echo("\n".join(lines))


def _decide(request_id: str, approve: bool, comment: str | None, as_json: bool) -> None:
    async def local(rt: Runtime) -> ApprovalRequest:
        return await rt.services.approvals.decide(await cli_actor(rt), request_id, approve, comment)

    async def remote(client: ApiClient) -> ApprovalRequest:
        return await client.decide(request_id, "approve" if approve else "deny", comment)

    r = either(local, remote)
    if as_json:
        print_json(r.model_dump(mode="json"))
        return
    click.echo(f"{r.id} {r.status} by {r.decided_by}: {_clean(r.summary)}")


@approvals_group.command("approve")
@click.argument("request_id")
@click.option("--comment", help="why (kept in the audit log and shown to the run)")
@click.option("--json", "as_json", is_flag=True)
def approve(request_id: str, comment: str | None, as_json: bool) -> None:
    """Approve a pending request: the run does that exact action, once."""
    _decide(request_id, True, comment, as_json)


@approvals_group.command("deny")
@click.argument("request_id")
@click.option("--comment", help="why (a model-driven run is told this and may go on)")
@click.option("--json", "as_json", is_flag=True)
def deny(request_id: str, comment: str | None, as_json: bool) -> None:
    """Deny a pending request: a scripted run stops (exit 3), a model is told why."""
    _decide(request_id, False, comment, as_json)
