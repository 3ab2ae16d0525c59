"""``corral demo``: the demo portal, two profiles, one task run on both in parallel, then a payment
that waits for a person's approval."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
from rich.console import Console

from profiles import ProfileNotFoundError, ProfileSettings
from runtime.app import Runtime
from runtime.approvals import ApprovalError
from runtime.auth import Actor
from runtime.cli.approvals import for_terminal
from runtime.cli.common import cli_actor, err_console, out_console, run_async, with_runtime
from runtime.demo import DEMO_TASK, PAY_TASK
from runtime.demo.portal import USERS, PortalServer
from runtime.run.parallel import combined_exit_code, results_table
from runtime.run.runner import RunResult
from runtime.task import load_task

__all__ = ["DEMO_PROFILES", "demo_command", "run_demo"]

DEMO_PROFILES = ("alice", "bob")


async def ensure_demo_profiles(rt: Runtime, actor: Actor, portal: str, fresh: bool) -> list[str]:
    """Create the demo profiles if missing, and their passwords in the vault; returns the new."""
    services = rt.services
    created = []
    for name in DEMO_PROFILES:
        user = USERS[name]
        try:
            await services.profiles.show(actor, name)
            if fresh:
                await services.profiles.clear(actor, name)
        except ProfileNotFoundError:
            await services.profiles.create(
                actor, name, ProfileSettings(vars={"user": user.username})
            )
            created.append(name)
        # Scoped to this portal's origin (its port may change between demos) and this profile.
        await services.secrets.set(actor, f"{name}.password", user.password, [portal], [name])
    return created


def _start_portal(home: Path, port: int) -> PortalServer:
    db = home / "demo" / "portal.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    for candidate in (port, 0):
        server = PortalServer(port=candidate, db_path=db)
        try:
            server.start()
            return server
        except OSError:
            if candidate == 0:
                raise
            err_console().print(f"port {port} is busy; using a free port instead")
    raise AssertionError("unreachable")


async def _answer_requests(rt: Runtime, actor: Actor, console: Console, ask: bool) -> None:
    """Show each approval request the payment run makes, and decide it: the person at the
    terminal if there is one, else a denial (the demo never pays unattended)."""
    seen: set[str] = set()
    while True:
        for request in reversed(await rt.services.approvals.list(actor)):
            if request.id in seen:
                continue
            seen.add(request.id)
            console.print(
                f"[magenta]approval needed[/] {request.id}: {for_terminal(request.summary)} "
                f"({for_terminal('; '.join(request.reasons))})\n"
                f"  screenshot: {request.screenshot}\n"
                f"  (or from another terminal: corral approvals approve|deny {request.id})",
                highlight=False,
                soft_wrap=True,
            )
            yes = ask and await asyncio.to_thread(click.confirm, "  approve?", default=False)
            comment = "approved at the demo's prompt" if yes else "the demo does not pay unasked"
            try:
                await rt.services.approvals.decide(actor, request.id, yes, comment)
            except ApprovalError as exc:  # decided elsewhere first
                console.print(f"  {exc}", highlight=False, soft_wrap=True)
        await asyncio.sleep(0.2)


async def _pay_one(
    rt: Runtime, actor: Actor, portal: str, invoice: str, console: Console
) -> RunResult:
    console.print(
        f"\n[bold]alice[/]: now pay invoice {invoice} "
        "(every irreversible click waits for a person)",
        highlight=False,
        soft_wrap=True,
    )
    ask = sys.stdin.isatty() and sys.stdout.isatty()
    async with asyncio.TaskGroup() as tg:
        answering = tg.create_task(_answer_requests(rt, actor, console, ask))
        result = await rt.services.runs.run(
            actor, load_task(PAY_TASK), "alice", {"portal": portal, "invoice": invoice}
        )
        answering.cancel()
    if result.status == "succeeded":
        console.print(f"[green]invoice {invoice}: {result.output}[/] (approved, paid once)")
    else:
        console.print(
            f"[yellow]invoice {invoice} not paid[/]: {result.error} (exit code {result.exit_code})",
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        f"  decisions are in the audit log: corral audit; run: corral runs show {result.run_id}"
    )
    return result


async def run_demo(rt: Runtime, port: int, fresh: bool, actor: Actor) -> int:
    """Run the demo end to end as ``actor`` (an admin); returns the exit code (of the reading
    runs)."""
    rt.services.runs.authorize_demo(actor)
    console = out_console()
    server = await asyncio.to_thread(_start_portal, rt.settings.home, port)
    try:
        console.print(
            f"[bold]demo portal[/] (Acme Billing) at {server.url}", highlight=False, soft_wrap=True
        )
        created = await ensure_demo_profiles(rt, actor, server.url, fresh)
        if created:
            console.print(
                f"created profiles {', '.join(created)}; their passwords are in the vault "
                "(corral secrets list)"
            )
        task = load_task(DEMO_TASK)
        results = await rt.services.runs.run_many(
            actor, task, list(DEMO_PROFILES), {"portal": server.url}, console=err_console()
        )
        console.print(results_table(results))
        _report(console, results)
        unpaid = results[0].output or []
        if results[0].status == "succeeded" and unpaid:
            await _pay_one(rt, actor, server.url, str(unpaid[-1]["Number"]), console)
    finally:
        await asyncio.to_thread(server.stop)
    if all(not r.session_restored for r in results) and not any(r.error for r in results):
        console.print("Run `corral demo` again: the saved, encrypted sessions skip the login.")
    return combined_exit_code(results)


def _report(console: Console, results: list[RunResult]) -> None:
    for r in results:
        if r.error:
            console.print(f"[red]{r.profile}: {r.error}[/]", highlight=False, soft_wrap=True)
            continue
        rows = r.output or []
        total = sum(
            float(str(x.get("Amount", "0")).replace("$", "").replace(",", "")) for x in rows
        )
        how = (
            f"saved session reused, login skipped ({r.steps_skipped} steps skipped)"
            if r.session_restored and r.steps_skipped
            else "signed in with username and password"
        )
        console.print(
            f"[bold]{r.profile}[/]: {len(rows)} unpaid invoices, ${total:,.2f} due; {how}",
            highlight=False,
            soft_wrap=True,
        )
        console.print(
            f"  recording: {r.run_dir} (corral runs show {r.run_id}; "
            f"corral replay {r.run_id} --open)",
            highlight=False,
            soft_wrap=True,
        )


@click.command("demo")
@click.option("--port", default=8765, show_default=True, help="portal port (0: any free port)")
@click.option("--fresh", is_flag=True, help="forget the demo profiles' saved sessions first")
def demo_command(port: int, fresh: bool) -> None:
    """Start the demo portal and run two isolated sessions on it in parallel."""

    async def body(rt: Runtime) -> int:
        return await run_demo(rt, port, fresh, await cli_actor(rt))

    code = run_async(lambda: with_runtime(body))
    sys.exit(code)
