"""Live updates: one Server-Sent Events stream per open page.

Every half second the stream reads what the viewer may see (waiting approval requests; the
latest runs and their statuses) and sends an event when it changed: ``approvals`` (data: the
count) and ``runs`` (data: the live runs). The page's script then fetches the changed part of
the page again (server-rendered, escaped like every page). The session is checked on every
round, so a sign-out or a revoked token ends the stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse

from runtime.console.web import COOKIE, Viewing
from runtime.errors import AuthError

__all__ = ["POLL_S", "router", "snapshot"]

router = APIRouter()

POLL_S = 0.5
"""How often a stream reads the store."""
_RUNS = 50


async def snapshot(viewer: Any) -> dict[str, Any]:
    """What the viewer's pages show live: waiting requests, and the latest runs' statuses."""
    services = viewer.rt.services
    pending = await services.approvals.list(viewer.actor, "pending", None, 200)
    runs = await services.runs.list(viewer.actor, _RUNS)
    return {
        "approvals": {"count": len(pending), "ids": [r.id for r in pending]},
        "runs": {
            "runs": [[r.id, r.status] for r in runs],
            "live": sum(r.status in ("queued", "running", "waiting_approval") for r in runs),
        },
    }


@router.get("/events")
async def events(request: Request, viewer: Viewing) -> EventSourceResponse:
    """The viewer's live events (text/event-stream)."""
    cookie = request.cookies.get(COOKIE)
    users = viewer.rt.services.users

    async def stream() -> AsyncIterator[dict[str, str]]:
        last: dict[str, Any] = {}
        while not await request.is_disconnected():
            try:
                await users.session(cookie)
            except AuthError:
                yield {"event": "signed_out", "data": "{}"}
                return
            now = await snapshot(viewer)
            for kind, value in now.items():
                if last.get(kind) != value:
                    yield {"event": kind, "data": json.dumps(value)}
            last = now
            await asyncio.sleep(POLL_S)

    return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})
