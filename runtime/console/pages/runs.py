"""The console's runs list: the latest runs the viewer may see."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from runtime.console.web import Viewing, page

__all__ = ["router"]

router = APIRouter()


@router.get("/runs", response_class=HTMLResponse)
async def runs_page(viewer: Viewing) -> HTMLResponse:
    """The latest runs, newest first."""
    runs = await viewer.rt.services.runs.list(viewer.actor, 50)
    return page(viewer, "runs.html.j2", section="runs", runs=runs)
