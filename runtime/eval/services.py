"""What a suite's tasks run against: the demo portal and the MiniWoB++ pages, started for the
eval on 127.0.0.1, and the variables they give the tasks (``{{var:portal}}``, ...)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from profiles import ProfileNotFoundError, ProfileSettings
from runtime.app import Runtime

__all__ = ["ensure_profiles", "services"]

VarsFn = Callable[[], dict[str, str]]


@asynccontextmanager
async def services(rt: Runtime, names: Iterable[str]) -> AsyncIterator[VarsFn]:
    """Start the named services; yields a function giving their variables as they are now (the
    portal's unpaid invoices change as runs pay them)."""
    makers: list[VarsFn] = []
    async with AsyncExitStack() as stack:
        for name in names:
            if name == "portal":
                makers.append(await _portal(rt, stack))
            elif name == "miniwob":
                from runtime.eval.miniwob import MiniWobServer

                server = stack.enter_context(MiniWobServer())
                found = {
                    "miniwob": server.url,
                    "miniwob_origin": server.origin,
                    "miniwob_reward": server.origin + "/reward/",
                }
                makers.append(lambda found=found: dict(found))  # type: ignore[misc]

        def current() -> dict[str, str]:
            out: dict[str, str] = {}
            for make in makers:
                out.update(make())
            return out

        yield current


async def _portal(rt: Runtime, stack: AsyncExitStack) -> VarsFn:
    """A fresh demo portal (its own database) and its users as profiles ``eval-USER``, signed
    in by the vault's passwords ``eval-USER.password`` scoped to it (names of the eval's own:
    a home's other profiles and secrets are left alone)."""
    from runtime.demo.portal import USERS, PortalServer
    from runtime.demo.portal.data import invoices_for
    from runtime.demo.portal.store import Store as PortalStore

    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="corral-eval-")))
    db = folder / "portal.db"
    server = PortalServer(db_path=db)
    await asyncio.to_thread(server.start)
    stack.callback(server.stop)
    url = server.url
    for name, user in USERS.items():
        await _profile(rt, f"eval-{name}", {"user": user.username})
        await rt.vault.set(f"eval-{name}.password", user.password, [url], [f"eval-{name}"])
    store = PortalStore(db)
    stack.callback(store.close)

    def current() -> dict[str, str]:
        found = {"portal": url}
        for name in USERS:
            paid = store.paid_numbers(name)
            unpaid = [i.number for i in invoices_for(name) if not i.paid and i.number not in paid]
            found[f"unpaid_{name}"] = str(len(unpaid))
            found[f"first_unpaid_{name}"] = unpaid[0] if unpaid else ""
        return found

    return current


async def _profile(rt: Runtime, name: str, vars: dict[str, str] | None = None) -> None:
    try:
        await rt.profiles.get(name)
    except ProfileNotFoundError:
        await rt.profiles.create(name, ProfileSettings(vars=vars or {}))


async def ensure_profiles(rt: Runtime, names: Iterable[str]) -> None:
    """Make the suite's profiles that do not exist yet (default settings)."""
    for name in dict.fromkeys(names):
        await _profile(rt, name)
