"""``corral demo``: the demo portal, two profiles, one task run on both in parallel."""

from __future__ import annotations

import asyncio
from pathlib import Path

from examples.portal import USERS, PortalServer
from profiles import ProfileNotFoundError, ProfileSettings

from .app import Runtime
from .cli import combined_exit_code
from .clitools import err_console, out_console
from .live import results_table, run_many
from .task import load_task

__all__ = ["DEMO_PROFILES", "DEMO_TASK", "run_demo"]

DEMO_PROFILES = ("alice", "bob")
DEMO_TASK = Path(__file__).resolve().parent.parent / "examples" / "tasks" / "unpaid-invoices.yaml"


async def ensure_demo_profiles(rt: Runtime, portal: str, fresh: bool) -> list[str]:
    """Create the demo profiles if missing, and their passwords in the vault; returns the new."""
    created = []
    for name in DEMO_PROFILES:
        user = USERS[name]
        try:
            await rt.profiles.get(name)
            if fresh:
                await rt.profiles.clear_state(name)
        except ProfileNotFoundError:
            await rt.profiles.create(name, ProfileSettings(vars={"user": user.username}))
            created.append(name)
        # Scoped to this portal's origin (its port may change between demos) and this profile.
        await rt.vault.set(f"{name}.password", user.password, [portal], [name])
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
            err_console.print(f"port {port} is busy; using a free port instead")
    raise AssertionError("unreachable")


async def run_demo(rt: Runtime, port: int, fresh: bool) -> int:
    """Run the demo end to end; returns the exit code."""
    console = out_console()
    server = await asyncio.to_thread(_start_portal, rt.settings.home, port)
    try:
        console.print(
            f"[bold]demo portal[/] (Acme Billing) at {server.url}", highlight=False, soft_wrap=True
        )
        created = await ensure_demo_profiles(rt, server.url, fresh)
        if created:
            console.print(
                f"created profiles {', '.join(created)}; their passwords are in the vault "
                "(corral secrets list)"
            )
        task = load_task(DEMO_TASK)
        results = await run_many(rt, task, list(DEMO_PROFILES), {"portal": server.url}, err_console)
    finally:
        await asyncio.to_thread(server.stop)
    console.print(results_table(results))
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
            f"  recording: {r.run_dir} (steps/*.jpg, trace.zip; corral runs show {r.run_id})",
            highlight=False,
            soft_wrap=True,
        )
    if all(not r.session_restored for r in results) and not any(r.error for r in results):
        console.print("Run `corral demo` again: the saved, encrypted sessions skip the login.")
    return combined_exit_code(results)
