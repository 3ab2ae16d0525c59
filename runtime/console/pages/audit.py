"""The console's audit log (admins): newest first, filtered by action, with the hash chain
checked on every view.

The audit service refuses anyone below admin (a 403 page). The chain is verified in full each
time the page is shown: "chain verified: N rows", or the first row that breaks it, in red.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from runtime.auth import AuditTamperedError
from runtime.console.web import Viewing, page

__all__ = ["LIMITS", "router"]

router = APIRouter()

LIMITS = (100, 500, 2000)
"""How many rows the page may show (the first is the default)."""
_ACTION_MAX = 100


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(viewer: Viewing) -> HTMLResponse:
    """The latest audit rows (of one action or family, e.g. ``schedule``), and the chain's
    check."""
    query = viewer.request.query_params
    action = query.get("action", "").strip()
    limit_text = query.get("limit", "").strip() or str(LIMITS[0])
    problems = []
    if len(action) > _ACTION_MAX:
        problems.append(f"action: at most {_ACTION_MAX} characters")
    if limit_text not in {str(n) for n in LIMITS}:
        problems.append(f"limit '{limit_text}': expected one of {', '.join(map(str, LIMITS))}")
    limit = int(limit_text) if not problems else LIMITS[0]
    audit = viewer.rt.services.audit
    entries = await audit.list(viewer.actor, limit, action.rstrip(".") or None)
    try:
        verified, broken = await audit.verify(viewer.actor), None
    except AuditTamperedError as exc:
        verified, broken = None, viewer.rt.redactor.text(str(exc))
    return page(
        viewer,
        "audit.html.j2",
        400 if problems else 200,
        section="audit",
        entries=entries,
        action=action,
        limit=limit,
        limits=LIMITS,
        problems=problems,
        verified=verified,
        broken=broken,
    )
