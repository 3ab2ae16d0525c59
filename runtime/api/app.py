"""The HTTP API: ``create_app(rt, pool)``, every route under ``/api`` (and the web console under
``/console``, :mod:`runtime.console`).

Every route but ``/api/health`` needs ``Authorization: Bearer TOKEN`` and calls the service layer
as that token's user (roles, grants and audit rows are the services' business, exactly as for
the CLI). OpenAPI is at ``/api/openapi.json``, interactive docs at ``/api/docs``. Errors map to
statuses in :mod:`runtime.api.errors`. See ``docs/http-api.md``.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from runtime.api import approvals, meta, profiles, runs, schedules, secrets
from runtime.api.errors import install_error_handlers
from runtime.app import Runtime
from runtime.serve import WorkerPool

__all__ = ["API_PREFIX", "ROUTERS", "create_app"]

API_PREFIX = "/api"

ROUTERS: tuple[APIRouter, ...] = (
    meta.router,
    runs.router,
    approvals.router,
    profiles.router,
    secrets.router,
    schedules.router,
)
"""Every resource's router, mounted under ``/api``."""


def create_app(rt: Runtime, pool: WorkerPool) -> FastAPI:
    """The API of one server: its runtime (store, key, services) and its worker pool."""
    app = FastAPI(
        title="corral",
        summary="Browser-automation runs, schedules, approvals, profiles and secrets.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.rt = rt
    app.state.pool = pool
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    install_error_handlers(app, rt.redactor)
    # Imported here: the console's pages use the API's app state, never the other way round.
    from runtime.console import install_console

    install_console(app)
    return app
