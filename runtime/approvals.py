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
action is claimed for execution at most once. Decisions are written to the audit log in the same
transaction as the decision itself.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import aiosqlite
from pydantic import BaseModel, ConfigDict, Field

from profiles import UserError
from runtime.auth import ROLES, Actor, PermissionDeniedError, write_audit
from runtime.store import Store

__all__ = [
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


class ApprovalError(UserError):
    """A decision that cannot be taken: expired, already decided, or closed."""


class ApprovalNotFoundError(ApprovalError):
    """No approval request with that id (or id prefix)."""


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
    prior: list[dict[str, Any]] = Field(
        default_factory=list,
        description="earlier requests for the same action that ran or may have run",
    )


def new_approval_id() -> str:
    """A short random id, e.g. ``ap-7f3a9c01``."""
    return "ap-" + secrets.token_hex(4)


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _row(row: aiosqlite.Row) -> ApprovalRequest:
    return ApprovalRequest(
        id=row["id"],
        run_id=row["run_id"],
        step_idx=row["step_idx"],
        task_name=row["task_name"],
        profile=row["profile"],
        action=json.loads(row["action"]),
        summary=row["summary"],
        reasons=json.loads(row["reasons"]),
        fingerprint=row["fingerprint"],
        idempotency_key=row["idempotency_key"],
        page_url=row["page_url"],
        screenshot=row["screenshot"],
        status=row["status"],
        created_at=datetime.fromisoformat(row["created_at"]),
        expires_at=datetime.fromisoformat(row["expires_at"]),
        decided_at=_dt(row["decided_at"]),
        decided_by=row["decided_by"],
        comment=row["comment"],
        executed_at=_dt(row["executed_at"]),
        outcome=row["outcome"],
    )


class Approvals:
    """Approval requests in the store; safe to use from several processes at once."""

    def __init__(self, store: Store, now: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.now = now or (lambda: datetime.now(UTC))

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
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )
        async with self.store.tx() as db:
            await db.execute(
                "INSERT INTO approvals (id, run_id, step_idx, task_name, profile, action, summary,"
                " reasons, fingerprint, idempotency_key, page_url, screenshot, status, created_at,"
                " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                (
                    request.id,
                    run_id,
                    step_idx,
                    task_name,
                    profile,
                    json.dumps(action),
                    summary,
                    json.dumps(reasons),
                    fingerprint,
                    idempotency_key,
                    page_url,
                    screenshot,
                    request.created_at.isoformat(),
                    request.expires_at.isoformat(),
                ),
            )
            # In the same transaction: whoever sees the request sees the run waiting for it.
            await db.execute(
                "UPDATE runs SET status = 'waiting_approval' WHERE id = ? AND status = 'running'",
                (run_id,),
            )
        request.prior = await self.prior(idempotency_key, exclude=request.id)
        return request

    async def get(self, ref: str, with_prior: bool = True) -> ApprovalRequest:
        """The request with this id or unique id prefix (``with_prior``: and the earlier
        requests for the same action; a run polling for its decision does not need them)."""
        rows = await self.store.fetch_all(
            "SELECT * FROM approvals WHERE id = ? OR substr(id, 1, ?) = ? "
            "ORDER BY id = ? DESC LIMIT 2",
            (ref, len(ref), ref, ref),
        )
        if not rows:
            raise ApprovalNotFoundError(f"no approval request '{ref}' (see: corral approvals list)")
        if len(rows) > 1 and rows[0]["id"] != ref:
            raise ApprovalNotFoundError(f"approval id prefix '{ref}' is ambiguous; give more of it")
        request = _row(rows[0])
        if with_prior:
            request.prior = await self.prior(request.idempotency_key, exclude=request.id)
        return request

    async def list_requests(
        self, status: str | None = "pending", run_id: str | None = None, limit: int = 50
    ) -> list[ApprovalRequest]:
        """Requests, newest first; ``status=None`` for all. Pending ones past expiry are expired
        first, so a list never offers a request that can no longer be approved."""
        await self.expire_due()
        clauses, args = [], []
        if status is not None:
            clauses.append("status = ?")
            args.append(status)
        if run_id is not None:
            clauses.append("run_id = ?")
            args.append(run_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self.store.fetch_all(
            f"SELECT * FROM approvals {where} ORDER BY created_at DESC LIMIT ?", (*args, limit)
        )
        return [_row(r) for r in rows]

    async def prior(self, key: str, exclude: str | None = None) -> list[dict[str, Any]]:
        """Earlier requests for the same action that ran, or may have run."""
        rows = await self.store.fetch_all(
            "SELECT id, run_id, status, decided_by, executed_at, outcome FROM approvals "
            "WHERE idempotency_key = ? AND status IN ('executing', 'executed', 'unconfirmed') "
            "AND id != ? ORDER BY created_at",
            (key, exclude or ""),
        )
        return [dict(r) for r in rows]

    async def decide(
        self, actor: Actor, ref: str, approve: bool, comment: str | None = None
    ) -> ApprovalRequest:
        """Approve or deny a pending request as ``actor`` (who must be an admin).

        Exactly one decision wins: a request already decided, expired or closed is refused with
        who decided it and when.
        """
        verb = "approve" if approve else "deny"
        if actor.level < ROLES["admin"]:
            raise PermissionDeniedError(
                f"{actor.name} ({actor.role}) cannot {verb} approval requests: needs admin"
            )
        request = await self.get(ref)
        now = self.now()
        expired = False
        async with self.store.tx() as db:
            row = await (
                await db.execute("SELECT * FROM approvals WHERE id = ?", (request.id,))
            ).fetchone()
            assert row is not None
            current = _row(row)
            if current.status == "pending" and current.expires_at <= now:
                await db.execute(
                    "UPDATE approvals SET status = 'expired', decided_at = ?, decided_by = ? "
                    "WHERE id = ? AND status = 'pending'",
                    (now.isoformat(), "expiry", request.id),
                )
                expired = True
            elif current.status == "pending":
                status = "approved" if approve else "denied"
                await db.execute(
                    "UPDATE approvals SET status = ?, decided_at = ?, decided_by = ?, comment = ? "
                    "WHERE id = ? AND status = 'pending'",
                    (status, now.isoformat(), actor.name, comment, request.id),
                )
                await write_audit(
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
        return await self.get(request.id)

    async def auto_approve(self, request_id: str, rule: str) -> None:
        """Approve by a policy's auto-approve rule (only ever called where a policy says so)."""
        async with self.store.tx() as db:
            cursor = await db.execute(
                "UPDATE approvals SET status = 'approved', decided_at = ?, decided_by = ? "
                "WHERE id = ? AND status = 'pending'",
                (self.now().isoformat(), f"policy:{rule}", request_id),
            )
            if cursor.rowcount == 1:
                await write_audit(
                    db, Actor(f"policy:{rule}", "admin"), "approval.auto_approve", request_id
                )

    async def _move(self, request_id: str, frm: str, to: str, **fields: str | None) -> bool:
        sets = ", ".join(["status = ?", *(f"{k} = ?" for k in fields)])
        async with self.store.tx() as db:
            cursor = await db.execute(
                f"UPDATE approvals SET {sets} WHERE id = ? AND status = ?",
                (to, *fields.values(), request_id, frm),
            )
            return cursor.rowcount == 1

    async def expire(self, request_id: str) -> bool:
        """Expire a pending request; False if it was decided first."""
        return await self._move(
            request_id, "pending", "expired", decided_at=self.now().isoformat(), decided_by="expiry"
        )

    async def expire_due(self) -> int:
        """Expire every pending request past its expiry."""
        now = self.now().isoformat()
        async with self.store.tx() as db:
            cursor = await db.execute(
                "UPDATE approvals SET status = 'expired', decided_at = ?, decided_by = 'expiry' "
                "WHERE status = 'pending' AND expires_at <= ?",
                (now, now),
            )
            return cursor.rowcount

    async def cancel(self, request_id: str, why: str) -> bool:
        """Close a request the run will not act on (it ended, or asks again)."""
        for frm in ("pending", "approved"):
            if await self._move(request_id, frm, "cancelled", outcome=why):
                return True
        return False

    async def supersede(self, request_id: str, why: str) -> bool:
        """An approved request whose page or target changed: not acted on, asked again."""
        return await self._move(request_id, "approved", "superseded", outcome=why)

    async def claim(self, request_id: str) -> bool:
        """approved -> executing; True for exactly one caller, ever."""
        return await self._move(
            request_id, "approved", "executing", executed_at=self.now().isoformat()
        )

    async def confirm(self, request_id: str, outcome: str) -> None:
        """executing -> executed, with how the action went."""
        await self._move(request_id, "executing", "executed", outcome=outcome)
