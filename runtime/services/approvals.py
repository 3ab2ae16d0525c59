"""Approval requests as a person sees them: list, show, and decide (admin+)."""

from __future__ import annotations

from runtime.approvals import ApprovalError, ApprovalRequest
from runtime.auth import Actor
from runtime.errors import ApprovalNotFoundError
from runtime.services.base import Service

__all__ = ["ApprovalService"]


class ApprovalService(Service):
    """A person's side of the approval gate."""

    async def list(
        self,
        actor: Actor,
        status: str | None = "pending",
        run_id: str | None = None,
        limit: int = 50,
    ) -> list[ApprovalRequest]:
        """Requests, newest first (``status=None`` for all); past-due ones expire first. A
        ``user`` sees only requests of runs on profiles granted to them."""
        found = await self._rt.approvals.list_requests(status, run_id, limit)
        return [r for r in found if await self._authz.may_use_profile(actor, r.profile)]

    async def get(self, actor: Actor, ref: str) -> ApprovalRequest:
        """One request by id or unique id prefix, with earlier runs of the same action (a
        request on a profile not granted to a ``user`` is not found, as if it did not exist)."""
        request = await self._rt.approvals.get(ref)
        if not await self._authz.may_use_profile(actor, request.profile):
            raise ApprovalNotFoundError(f"no approval request '{ref}' (see: corral approvals list)")
        return request

    async def decide(
        self, actor: Actor, ref: str, approve: bool, comment: str | None = None
    ) -> ApprovalRequest:
        """Approve or deny a pending request as ``actor`` (who must be an admin).

        Exactly one decision wins: a request already decided, expired or closed is refused with
        who decided it and when. The decision and its audit row commit together.
        """
        verb = "approve" if approve else "deny"
        self._authz.require(
            actor,
            "admin",
            f"{verb} approval requests",
            message=f"{actor.name} ({actor.role}) cannot {verb} approval requests: needs admin",
        )
        approvals = self._rt.approvals
        request = await approvals.get(ref)
        now = approvals.now()
        expired = False
        async with self._store.tx() as db:
            current = await approvals.repo.get(request.id)
            assert current is not None
            if current.status == "pending" and current.expires_at <= now:
                await approvals.repo.move(
                    request.id,
                    "pending",
                    "expired",
                    decided_at=now.isoformat(),
                    decided_by="expiry",
                )
                expired = True
            elif current.status == "pending":
                await approvals.repo.move(
                    request.id,
                    "pending",
                    "approved" if approve else "denied",
                    decided_at=now.isoformat(),
                    decided_by=actor.name,
                    comment=comment,
                )
                await self._audit(
                    db,
                    actor,
                    f"approval.{verb}",
                    request.id,
                    {"run_id": request.run_id, "summary": request.summary, "comment": comment},
                )
        if expired:
            raise ApprovalError(
                f"approval {request.id} expired at {current.expires_at:%Y-%m-%d %H:%M:%S} UTC "
                "(expiry means deny); the run was told"
            )
        if current.status != "pending":
            by = f" by {current.decided_by}" if current.decided_by else ""
            when = f" at {current.decided_at:%H:%M:%S} UTC" if current.decided_at else ""
            raise ApprovalError(
                f"approval {request.id} is already {current.status}{by}{when}; nothing changed"
            )
        approvals.notify(request.id)
        return await approvals.get(request.id)
