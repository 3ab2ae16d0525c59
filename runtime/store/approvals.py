"""Approval requests: the SQL (their states and the gate's API are :mod:`runtime.approvals`).

Every transition is one conditional ``UPDATE ... WHERE status = <expected>`` inside
``BEGIN IMMEDIATE``, so two approvers racing (in any processes) get exactly one winner. The
claim (approved -> executing) is also fenced by the run's profile lease (see
:meth:`ApprovalRepository.move`).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite

from profiles import LeaseLostError
from runtime.approvals import ApprovalRequest, ApprovalStatus
from runtime.store.rows import Table

if TYPE_CHECKING:
    from runtime.store import Store

__all__ = ["ApprovalRepository"]

# A dead run's approval requests close with it, following the life drawn in runtime/approvals.py:
# one not acted on yet is cancelled; one being acted on may have happened, so a person decides.
_NOT_ACTED: tuple[ApprovalStatus, ...] = ("pending", "approved")
_CANCELLED: ApprovalStatus = "cancelled"
_ACTING: ApprovalStatus = "executing"
_UNCONFIRMED: ApprovalStatus = "unconfirmed"

# The fence of approved -> executing: the request's run holds its profile's lease, live by the
# store's clock (and with the caller's token, unless any_token). Reads :clock, :token, :any_token.
_HOLDS_LEASE = (
    "SELECT 1 FROM leases l WHERE l.profile = approvals.profile "
    "AND l.run_id = approvals.run_id AND l.heartbeat_at + l.ttl_s >= :clock "
    "AND (l.generation = :token OR :any_token = 1)"
)


# The one mapping between a request and its row (JSON and time columns both ways); ``prior`` is
# read from other rows, never stored.
_TABLE = Table("approvals", ApprovalRequest, frozenset({"action", "reasons", "target", "fields"}))


class ApprovalRepository:
    """The ``approvals`` table."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def insert(self, request: ApprovalRequest) -> None:
        """Store a pending request and mark its run as waiting, in one transaction."""
        async with self._store.tx() as db:
            sql, params = _TABLE.insert(request, exclude={"prior"})
            await db.execute(sql, params)
            # In the same transaction: whoever sees the request sees the run waiting for it.
            await db.execute(
                "UPDATE runs SET status = 'waiting_approval' WHERE id = ? AND status = 'running'",
                (request.run_id,),
            )

    async def get(self, request_id: str) -> ApprovalRequest | None:
        """The request with exactly this id (read in the caller's transaction if one is open)."""
        row = await self._store.fetch_one("SELECT * FROM approvals WHERE id = ?", (request_id,))
        return _TABLE.record(row) if row is not None else None

    async def find(self, ref: str) -> list[ApprovalRequest]:
        """Up to two requests whose id is ``ref`` or starts with it, an exact match first."""
        rows = await self._store.fetch_all(
            "SELECT * FROM approvals WHERE id = ? OR substr(id, 1, ?) = ? "
            "ORDER BY id = ? DESC LIMIT 2",
            (ref, len(ref), ref, ref),
        )
        return [_TABLE.record(r) for r in rows]

    async def list(
        self, status: str | None, run_id: str | None, limit: int
    ) -> list[ApprovalRequest]:
        """Requests, newest first, filtered by status and run if given."""
        clauses, args = [], []
        if status is not None:
            clauses.append("status = ?")
            args.append(status)
        if run_id is not None:
            clauses.append("run_id = ?")
            args.append(run_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._store.fetch_all(
            f"SELECT * FROM approvals {where} ORDER BY created_at DESC LIMIT ?", (*args, limit)
        )
        return [_TABLE.record(r) for r in rows]

    async def prior(self, key: str, exclude: str | None = None) -> builtins.list[dict[str, Any]]:
        """Earlier requests for the same action that ran, or may have run."""
        rows = await self._store.fetch_all(
            "SELECT id, run_id, status, decided_by, executed_at, outcome FROM approvals "
            "WHERE idempotency_key = ? AND status IN ('executing', 'executed', 'unconfirmed') "
            "AND id != ? ORDER BY created_at",
            (key, exclude or ""),
        )
        return [dict(r) for r in rows]

    async def move(
        self,
        request_id: str,
        frm: ApprovalStatus,
        to: ApprovalStatus,
        *,
        token: int | None = None,
        **fields: str | None,
    ) -> bool:
        """``frm`` -> ``to`` with ``fields`` set, only if the request is still ``frm``.

        Moving to ``executing`` is the point of no return, so it is fenced: in the same
        transaction (in the same statement), the request's run must still hold its profile's
        lease, live by the store's clock (and with fencing token ``token``, if given). If it does
        not, nothing changes and :class:`~profiles.LeaseLostError` is raised: the run must stop.
        """
        sets = ", ".join(["status = :to", *(f"{k} = :{k}" for k in fields)])
        params: dict[str, Any] = {**fields, "to": to, "id": request_id, "frm": frm}
        fence = ""
        async with self._store.tx() as db:
            if to == _ACTING:
                fence = f" AND EXISTS ({_HOLDS_LEASE})"
                params |= {
                    "clock": await self._store.clock(),
                    "token": token or 0,
                    "any_token": int(token is None),
                }
            cursor = await db.execute(
                f"UPDATE approvals SET {sets} WHERE id = :id AND status = :frm{fence}", params
            )
            if cursor.rowcount == 1 or not fence:
                return cursor.rowcount == 1
            held = await (
                await db.execute(
                    f"SELECT approvals.run_id, approvals.profile FROM approvals "
                    f"WHERE id = :id AND NOT EXISTS ({_HOLDS_LEASE})",
                    {k: params[k] for k in ("id", "clock", "token", "any_token")},
                )
            ).fetchone()
            if held is not None:
                raise LeaseLostError(
                    f"lease on profile '{held[1]}' lost: run {held[0]} no longer holds it, so "
                    f"approval {request_id} was not acted on"
                )
            return False

    async def expire_due(self, now: str) -> int:
        """Expire every pending request past its expiry (a write only when one is due: lists
        that expire first are read twice a second by open console pages)."""
        due = await self._store.fetch_one(
            "SELECT 1 FROM approvals WHERE status = 'pending' AND expires_at <= ? LIMIT 1", (now,)
        )
        if due is None:
            return 0
        async with self._store.tx() as db:
            cursor = await db.execute(
                "UPDATE approvals SET status = 'expired', decided_at = :now, "
                "decided_by = 'expiry' WHERE status = 'pending' AND expires_at <= :now",
                {"now": now},
            )
            return cursor.rowcount

    async def adopt(
        self, fire_id: str, run_id: str, step_idx: int, key: str, fingerprint: str
    ) -> ApprovalRequest | None:
        """Take over, for ``run_id``, a request an earlier attempt of the same fire left
        waiting (pending, or approved and not acted on) for the same action on the same page
        (equal idempotency key and fingerprint); one winner. None if there is none."""
        async with self._store.tx() as db:
            row = await (
                await db.execute(
                    "SELECT a.id, a.run_id, a.status FROM approvals a JOIN runs r "
                    "ON r.id = a.run_id WHERE r.fire_id = ? AND a.run_id != ? "
                    "AND r.status NOT IN ('queued', 'running', 'waiting_approval') "
                    "AND a.idempotency_key = ? AND a.fingerprint = ? "
                    "AND a.status IN ('pending', 'approved') ORDER BY a.created_at DESC LIMIT 1",
                    (fire_id, run_id, key, fingerprint),
                )
            ).fetchone()
            if row is None:
                return None
            request_id, old_run, status = row[0], row[1], row[2]
            cursor = await db.execute(
                "UPDATE approvals SET run_id = ?, step_idx = ?, outcome = NULL "
                "WHERE id = ? AND run_id = ? AND status = ?",
                (run_id, step_idx, request_id, old_run, status),
            )
            if cursor.rowcount != 1:
                return None
            if status == "pending":
                await db.execute(
                    "UPDATE runs SET status = 'waiting_approval' WHERE id = ? AND status = ?",
                    (run_id, "running"),
                )
        return await self.get(request_id)

    async def close_held(self, fire_id: str, why: str) -> int:
        """Close the requests a fire's finished attempts left waiting (the fire itself ended:
        no attempt will take them over)."""
        async with self._store.tx() as db:
            cursor = await db.execute(
                "UPDATE approvals SET status = 'cancelled', outcome = ? "
                "WHERE status IN ('pending', 'approved') AND run_id IN (SELECT id FROM runs "
                "WHERE fire_id = ? AND status NOT IN ('queued', 'running', 'waiting_approval'))",
                (why, fire_id),
            )
            return cursor.rowcount

    async def close_for_runs(self, conn: aiosqlite.Connection, run_ids: Sequence[str]) -> None:
        """Close the approval requests of runs that died: nothing will act on them."""
        marks = ", ".join("?" for _ in _NOT_ACTED)
        await conn.executemany(
            f"UPDATE approvals SET status = ?, outcome = 'the run was interrupted before acting' "
            f"WHERE run_id = ? AND status IN ({marks})",
            [(_CANCELLED, run_id, *_NOT_ACTED) for run_id in run_ids],
        )
        await conn.executemany(
            "UPDATE approvals SET status = ?, outcome = 'the run was interrupted while acting; "
            "the action may have happened' WHERE run_id = ? AND status = ?",
            [(_UNCONFIRMED, run_id, _ACTING) for run_id in run_ids],
        )
