"""Approval requests: a gated action waits for a person's decision about that exact action.

A request's life, by ``status``::

    pending ──> approved ──> executing ──> executed     the approved action ran, once
       │           │  └────> superseded                  the page or target changed: asked again
       │           └───────> cancelled                   the run ended before acting
       ├──> denied | expired                             not done (expiry means deny)
       └──> cancelled                                    the run ended while waiting
                      executing ──> unconfirmed          the runner died while acting: it may have
                                                         happened, so it is never repeated silently

Every transition is one conditional ``UPDATE ... WHERE status = <expected>`` inside
``BEGIN IMMEDIATE``, so two approvers racing (in any processes) get exactly one winner, and an
action is claimed for execution at most once. The SQL is :mod:`runtime.store.approvals`; a
person's decision is :meth:`runtime.services.ApprovalService.decide` (authorized, and audited in
the same transaction as the decision).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runtime.auth import Actor
from runtime.errors import ApprovalError, ApprovalNotFoundError
from runtime.store.audit import write_audit

if TYPE_CHECKING:
    from runtime.store import Store
    from runtime.store.approvals import ApprovalRepository

__all__ = [
    "DECIDED",
    "ApprovalError",
    "ApprovalNotFoundError",
    "ApprovalRequest",
    "ApprovalStatus",
    "Approvals",
    "new_approval_id",
]

ApprovalStatus = Literal[
    "pending",
    "approved",
    "denied",
    "expired",
    "executing",
    "executed",
    "superseded",
    "cancelled",
    "unconfirmed",
]
DECIDED: tuple[ApprovalStatus, ...] = ("approved", "denied", "expired", "cancelled")


class ApprovalRequest(BaseModel):
    """One gated action waiting for (or past) a person's decision."""

    model_config = ConfigDict(extra="forbid")
    id: str
    run_id: str
    step_idx: int
    task_name: str
    profile: str
    action: dict[str, Any] = Field(description="the exact action, as it will run")
    summary: str = Field(description="one line for a person: Click 'Pay $120.00' on /invoices/7")
    reasons: list[str]
    fingerprint: str = Field(description="the action and the page state it was asked on")
    idempotency_key: str = Field(description="the same action on the same thing, across runs")
    page_url: str | None = None
    screenshot: str | None = Field(None, description="JPEG with the target outlined")
    status: ApprovalStatus = "pending"
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    comment: str | None = None
    executed_at: datetime | None = None
    outcome: str | None = None
    target: dict[str, Any] | None = Field(
        None, description="the element acted on: role and accessible name"
    )
    fields: list[dict[str, Any]] | None = Field(
        None,
        description="the form's fields as they will be sent: name, kind, value (secrets as "
        "placeholders, password fields hidden)",
    )
    prior: list[dict[str, Any]] = Field(
        default_factory=list,
        description="earlier requests for the same action that ran or may have run",
    )


def new_approval_id() -> str:
    """A short random id, e.g. ``ap-7f3a9c01``."""
    return "ap-" + secrets.token_hex(4)


class Approvals:
    """Approval requests in the store, as a run's gate uses them; safe from several processes."""

    def __init__(self, store: Store, now: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.repo: ApprovalRepository = store.approvals
        self.now = now or (lambda: datetime.now(UTC))
        self._changed: dict[str, asyncio.Event] = {}
        """Requests a run in this process is waiting on: set when one is decided here."""

    def notify(self, request_id: str) -> None:
        """Wake a run of this process waiting on ``request_id`` (a decision was just stored);
        waits in other processes see it on their next poll."""
        event = self._changed.get(request_id)
        if event is not None:
            event.set()

    async def changed(self, request_id: str, timeout_s: float) -> None:
        """Return when ``request_id`` may have been decided in this process, or after
        ``timeout_s`` (the caller reads the store either way)."""
        event = self._changed.setdefault(request_id, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            pass
        finally:
            self._changed.pop(request_id, None)

    async def create(
        self,
        *,
        run_id: str,
        step_idx: int,
        task_name: str,
        profile: str,
        action: dict[str, Any],
        summary: str,
        reasons: list[str],
        fingerprint: str,
        idempotency_key: str,
        page_url: str | None,
        ttl_s: float,
        request_id: str | None = None,
        screenshot: str | None = None,
        target: dict[str, Any] | None = None,
        fields: list[dict[str, Any]] | None = None,
    ) -> ApprovalRequest:
        """Persist a pending request (before anyone is told about it); the run now waits."""
        now = self.now()
        request = ApprovalRequest(
            id=request_id or new_approval_id(),
            run_id=run_id,
            step_idx=step_idx,
            task_name=task_name,
            profile=profile,
            action=action,
            summary=summary,
            reasons=reasons,
            fingerprint=fingerprint,
            idempotency_key=idempotency_key,
            page_url=page_url,
            screenshot=screenshot,
            target=target,
            fields=fields,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )
        await self.repo.insert(request)
        request.prior = await self.prior(idempotency_key, exclude=request.id)
        return request

    async def get(self, ref: str, with_prior: bool = True) -> ApprovalRequest:
        """The request with this id or unique id prefix (``with_prior``: and the earlier
        requests for the same action; a run polling for its decision does not need them)."""
        found = await self.repo.find(ref)
        if not found:
            raise ApprovalNotFoundError(f"no approval request '{ref}' (see: corral approvals list)")
        if len(found) > 1 and found[0].id != ref:
            raise ApprovalNotFoundError(f"approval id prefix '{ref}' is ambiguous; give more of it")
        request = found[0]
        if with_prior:
            request.prior = await self.prior(request.idempotency_key, exclude=request.id)
        return request

    async def list_requests(
        self, status: str | None = "pending", run_id: str | None = None, limit: int = 50
    ) -> list[ApprovalRequest]:
        """Requests, newest first; ``status=None`` for all. Pending ones past expiry are expired
        first, so a list never offers a request that can no longer be approved."""
        await self.expire_due()
        return await self.repo.list(status, run_id, limit)

    async def prior(self, key: str, exclude: str | None = None) -> list[dict[str, Any]]:
        """Earlier requests for the same action that ran, or may have run."""
        return await self.repo.prior(key, exclude)

    async def auto_approve(self, request_id: str, rule: str) -> None:
        """Approve by a policy's auto-approve rule (only ever called where a policy says so)."""
        async with self.store.tx() as db:
            moved = await self.repo.move(
                request_id,
                "pending",
                "approved",
                decided_at=self.now().isoformat(),
                decided_by=f"policy:{rule}",
            )
            if moved:
                await write_audit(
                    db, Actor(f"policy:{rule}", "admin"), "approval.auto_approve", request_id
                )

    async def expire(self, request_id: str) -> bool:
        """Expire a pending request; False if it was decided first."""
        return await self.repo.move(
            request_id, "pending", "expired", decided_at=self.now().isoformat(), decided_by="expiry"
        )

    async def expire_due(self) -> int:
        """Expire every pending request past its expiry."""
        return await self.repo.expire_due(self.now().isoformat())

    async def cancel(self, request_id: str, why: str) -> bool:
        """Close a request the run will not act on (it ended, or asks again)."""
        for frm in ("pending", "approved"):
            if await self.repo.move(request_id, frm, "cancelled", outcome=why):
                return True
        return False

    async def hold(self, request_id: str, why: str) -> bool:
        """Leave a pending request waiting after its run stopped (a server's drain), with
        ``why`` in its outcome, for the next attempt of the same fire to take over."""
        return await self.repo.move(request_id, "pending", "pending", outcome=why)

    async def adopt(
        self, fire_id: str, run_id: str, step_idx: int, key: str, fingerprint: str
    ) -> ApprovalRequest | None:
        """The request an earlier attempt of ``fire_id`` left waiting for this very action,
        now this run's (see :meth:`ApprovalRepository.adopt`), with its earlier runs."""
        request = await self.repo.adopt(fire_id, run_id, step_idx, key, fingerprint)
        if request is not None:
            request.prior = await self.prior(key, exclude=request.id)
        return request

    async def close_held(self, fire_id: str, why: str) -> int:
        """Close what a fire's attempts left waiting, once the fire has ended."""
        return await self.repo.close_held(fire_id, why)

    async def supersede(self, request_id: str, why: str) -> bool:
        """An approved request whose page or target changed: not acted on, asked again."""
        return await self.repo.move(request_id, "approved", "superseded", outcome=why)

    async def claim(self, request_id: str, token: int | None = None) -> bool:
        """approved -> executing; True for exactly one caller, ever. Fenced: LeaseLostError if
        the run no longer holds its profile's lease (with fencing ``token``, if given)."""
        return await self.repo.move(
            request_id, "approved", "executing", token=token, executed_at=self.now().isoformat()
        )

    async def confirm(self, request_id: str, outcome: str) -> None:
        """executing -> executed, with how the action went."""
        await self.repo.move(request_id, "executing", "executed", outcome=outcome)
