"""``/api/approvals``: what waits for a person's decision, and deciding it (admin+)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from runtime.api.auth import Authenticated
from runtime.api.schemas import DecisionRequest
from runtime.approvals import ApprovalRequest, ApprovalStatus

__all__ = ["router"]

router = APIRouter(prefix="/approvals", tags=["approvals"])


@router.get("", response_model=list[ApprovalRequest])
async def list_approvals(
    call: Authenticated,
    status: ApprovalStatus | Literal["all"] = "pending",
    run_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[ApprovalRequest]:
    """Requests, newest first: pending ones unless ``status`` says otherwise (``all``: every)."""
    wanted = None if status == "all" else status
    return await call.rt.services.approvals.list(call.actor, wanted, run_id, limit)


@router.get("/{ref}", response_model=ApprovalRequest)
async def show_approval(ref: str, call: Authenticated) -> ApprovalRequest:
    """One request by id or unique id prefix, with earlier requests for the same action."""
    return await call.rt.services.approvals.get(call.actor, ref)


@router.post("/{ref}/approve", response_model=ApprovalRequest)
async def approve(
    ref: str, call: Authenticated, body: DecisionRequest | None = None
) -> ApprovalRequest:
    """Approve a pending request (admin+); exactly one decision wins."""
    comment = body.comment if body else None
    return await call.rt.services.approvals.decide(call.actor, ref, True, comment)


@router.post("/{ref}/deny", response_model=ApprovalRequest)
async def deny(
    ref: str, call: Authenticated, body: DecisionRequest | None = None
) -> ApprovalRequest:
    """Deny a pending request (admin+); the run stops with exit code 3."""
    comment = body.comment if body else None
    return await call.rt.services.approvals.decide(call.actor, ref, False, comment)
