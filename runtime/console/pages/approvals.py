"""The approvals inbox and a request's page: everything a person needs to approve or deny one
gated action (what it is, why it was stopped, the page with the target outlined, what the form
will send, the run so far), and the decision itself.

Who may see a request and who may decide is the service layer's business: a ``user`` sees the
requests of runs on profiles granted to them; only an admin decides (a ``user`` posting a
decision gets the 403 page, whatever the page showed them). Every text is redacted once more
with every stored secret before it is shown, and escaped by the templates.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from profiles import UserError, redact_strings
from runtime.approvals import ApprovalRequest
from runtime.console.web import PREFIX, SECURITY_HEADERS, Posting, Viewer, Viewing, page
from runtime.errors import ApprovalNotFoundError
from runtime.review.replay import fetch_images, image_file

__all__ = ["router"]

router = APIRouter()

SHOWN = 200
"""The most requests the inbox lists."""
_SHOW = ("waiting", "decided", "all")
MAX_COMMENT = 2000
"""The longest comment a decision may carry (characters)."""


async def _redacted(viewer: Viewer, requests: list[ApprovalRequest]) -> list[ApprovalRequest]:
    """``requests`` with every stored secret redacted once more (they were when written)."""
    redactor = await viewer.rt.vault.redactor()
    if not redactor:
        return requests
    return [
        ApprovalRequest.model_validate(redact_strings(r.model_dump(mode="json"), redactor.text))
        for r in requests
    ]


async def _screenshot(viewer: Viewer, request: ApprovalRequest) -> bytes | None:
    """The request's JPEG, only if it lies inside its run's folder (on this host, else the object
    store's copy: the run may be going on another host)."""
    if not request.screenshot:
        return None
    run = await viewer.rt.store.runs.get_run(request.run_id)
    if run is None:
        return None
    run_dir = Path(run.run_dir)
    fetched = await fetch_images(viewer.rt.objects, run.id, run_dir, [request.screenshot])
    image = image_file(run_dir, request.screenshot, fetched)
    return image.data if image is not None and image.mime == "image/jpeg" else None


@router.get("/approvals", response_class=HTMLResponse)
async def inbox(viewer: Viewing, show: str = "waiting") -> HTMLResponse:
    """Requests waiting for a decision, newest first (``show``: waiting, decided or all)."""
    if show not in _SHOW:
        raise UserError("show: expected waiting, decided or all")
    approvals = viewer.rt.services.approvals
    status = "pending" if show == "waiting" else None
    found = await approvals.list(viewer.actor, status, None, SHOWN)
    if show == "decided":
        found = [r for r in found if r.status != "pending"]
    return page(
        viewer,
        "approvals.html.j2",
        section="approvals",
        requests=await _redacted(viewer, found),
        show=show,
        now=viewer.rt.approvals.now(),
    )


@router.get("/approvals/{ref}", response_class=HTMLResponse)
async def request_page(ref: str, viewer: Viewing) -> HTMLResponse:
    """One request: what it would do, why it waits, the run so far; Approve / Deny (admins)."""
    services = viewer.rt.services
    [request] = await _redacted(viewer, [await services.approvals.get(viewer.actor, ref)])
    review = await services.runs.review(viewer.actor, request.run_id)
    return page(
        viewer,
        "approval.html.j2",
        section="approvals",
        request=request,
        review=review,
        shot=await _screenshot(viewer, request) is not None,
        now=viewer.rt.approvals.now(),
        can_decide=viewer.is_admin and request.status == "pending",
        max_comment=MAX_COMMENT,
    )


@router.get("/approvals/{ref}/screenshot")
async def screenshot(ref: str, viewer: Viewing) -> Response:
    """The page as the run saw it when it asked, the target outlined (JPEG)."""
    request = await viewer.rt.services.approvals.get(viewer.actor, ref)
    data = await _screenshot(viewer, request)
    if data is None:
        raise ApprovalNotFoundError(f"approval request {request.id} has no screenshot")
    return Response(data, media_type="image/jpeg", headers=SECURITY_HEADERS)


@router.post("/approvals/{ref}/decide")
async def decide(ref: str, posted: Posting) -> Response:
    """Approve or deny (``decision``) with a ``comment``; back to the request's page."""
    viewer = posted.viewer
    decision = posted.field("decision")
    if decision not in ("approve", "deny"):
        raise UserError("decision: expected approve or deny")
    comment = posted.field("comment").strip()
    if len(comment) > MAX_COMMENT:
        raise UserError(f"comment: at most {MAX_COMMENT} characters")
    decided = await viewer.rt.services.approvals.decide(
        viewer.actor, ref, decision == "approve", comment or None
    )
    return RedirectResponse(
        f"{PREFIX}/approvals/{decided.id}", status_code=303, headers=SECURITY_HEADERS
    )
