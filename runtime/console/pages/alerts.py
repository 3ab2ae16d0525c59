"""The console's alerts: what runs raised (token burn, provider errors, spend near the cap) and
their runbook. An announcing alert can be acknowledged; a freeze lifted (admin); a paused run is
resumed or stopped on its resume request's approval page. The service decides who may."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from runtime.console.web import PREFIX, SECURITY_HEADERS, Posting, Viewing, page

__all__ = ["router"]

router = APIRouter()


@router.get("/alerts", response_class=HTMLResponse)
async def alerts_page(viewer: Viewing) -> HTMLResponse:
    """The alerts the viewer may see, newest first."""
    alerts = await viewer.rt.services.alerts.list(viewer.actor, limit=200)
    return page(viewer, "alerts.html.j2", section="alerts", alerts=alerts)


@router.post("/alerts/{alert_id}/ack")
async def acknowledge(alert_id: str, posted: Posting) -> Response:
    """Mark an announcing alert seen."""
    await posted.viewer.rt.services.alerts.acknowledge(posted.viewer.actor, alert_id)
    return RedirectResponse(f"{PREFIX}/alerts", status_code=303, headers=SECURITY_HEADERS)


@router.post("/alerts/{alert_id}/lift")
async def lift(alert_id: str, posted: Posting) -> Response:
    """End a freeze."""
    await posted.viewer.rt.services.alerts.lift(posted.viewer.actor, alert_id)
    return RedirectResponse(f"{PREFIX}/alerts", status_code=303, headers=SECURITY_HEADERS)
