"""The web console: server-rendered pages on the same FastAPI app as the API, under
``/console``: runs (live), a run's replay, the approvals inbox, schedules, profiles and secrets,
usage and the audit log. See ``docs/console.md``.

:func:`install_console` mounts it; every page is authorized by the service layer as the
signed-in user (:mod:`runtime.console.web`).
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from runtime.console import events, login, pages
from runtime.console.web import PREFIX, HtmlErrors

__all__ = ["PREFIX", "install_console"]

_home = APIRouter()


@_home.get("/", include_in_schema=False)
async def home() -> RedirectResponse:
    """The console's first page."""
    return RedirectResponse(f"{PREFIX}/runs", status_code=303)


def install_console(app: FastAPI) -> None:
    """Serve the console on ``app`` (the API's app: same runtime, pool and services)."""
    app.state.html_errors = HtmlErrors()
    app.include_router(_home)
    console = APIRouter(prefix=PREFIX, include_in_schema=False)
    console.add_api_route("", home, include_in_schema=False)
    for router in (login.router, events.router, *pages.ROUTERS):
        console.include_router(router)
    app.include_router(console)
    app.mount(
        f"{PREFIX}/static/replay",
        StaticFiles(directory=str(resources.files("runtime.review") / "static")),
        name="replay-static",
    )
    app.mount(
        f"{PREFIX}/static",
        StaticFiles(directory=str(resources.files("runtime.console") / "static")),
        name="console-static",
    )
