"""The append-only, hash-chained audit log: who decided what, and when.

Rows form a hash chain (each row's hash covers the previous row's hash), and SQLite triggers
refuse UPDATE and DELETE, so an edit made behind corral's back is found by
:meth:`AuditRepository.verify`. :func:`write_audit` appends inside the caller's transaction, so
the row commits with the change it records, or not at all.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiosqlite

from runtime.auth import Actor, AuditEntry, AuditTamperedError

if TYPE_CHECKING:
    from runtime.store import Store

__all__ = ["GENESIS_HASH", "AuditRepository", "write_audit"]

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first row."""


def _dump_detail(detail: dict[str, Any] | None) -> str | None:
    if detail is None:
        return None
    return json.dumps(
        detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def _chain_hash(
    prev_hash: str, at: str, actor: str, role: str, action: str, subject: str, detail: str | None
) -> str:
    # The detail is hashed as parsed JSON, re-serialized canonically, so the stored text's
    # formatting is not what is protected but its content is.
    body = json.dumps(
        [at, actor, role, action, subject, json.loads(detail) if detail is not None else None],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


async def write_audit(
    db: aiosqlite.Connection,
    actor: Actor,
    action: str,
    subject: str,
    detail: dict[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> None:
    """Append one audit row inside the caller's open transaction (so it commits with the change).

    ``hash = sha256(prev_hash + canonical JSON of [at, actor, role, action, subject, detail])``;
    the first row's ``prev_hash`` is 64 zeros.
    """
    async with db.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1") as cur:
        last = await cur.fetchone()
    prev_hash = str(last["hash"]) if last else GENESIS_HASH
    when = (at or datetime.now(UTC)).astimezone(UTC).isoformat()
    text = _dump_detail(detail)
    digest = _chain_hash(prev_hash, when, actor.name, actor.role, action, subject, text)
    await db.execute(
        "INSERT INTO audit_log (at, actor, role, action, subject, detail, prev_hash, hash) "
        "VALUES (:at, :actor, :role, :action, :subject, :detail, :prev_hash, :hash)",
        {
            "at": when,
            "actor": actor.name,
            "role": actor.role,
            "action": action,
            "subject": subject,
            "detail": text,
            "prev_hash": prev_hash,
            "hash": digest,
        },
    )


def _entry(row: aiosqlite.Row) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=datetime.fromisoformat(row["at"]),
        actor=row["actor"],
        role=row["role"],
        action=row["action"],
        subject=row["subject"],
        detail=json.loads(row["detail"]) if row["detail"] is not None else None,
        hash=row["hash"],
    )


class AuditRepository:
    """Reading and checking the audit log (rows are written only by :func:`write_audit`)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def list(self, limit: int = 100, action: str | None = None) -> list[AuditEntry]:
        """Rows, newest first; ``action`` matches exactly or as a prefix (``token``)."""
        sql = "SELECT * FROM audit_log"
        args: tuple[Any, ...] = ()
        if action:
            family = action.replace("%", "\\%").replace("_", "\\_") + ".%"
            sql += " WHERE action = ? OR action LIKE ? ESCAPE '\\'"
            args = (action, family)
        rows = await self._store.fetch_all(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))
        return [_entry(r) for r in rows]

    async def verify(self) -> int:
        """Check the whole hash chain; returns the rows checked, raises at the first bad one."""
        rows = await self._store.fetch_all("SELECT * FROM audit_log ORDER BY id")
        prev_hash, prev_id = GENESIS_HASH, None
        for r in rows:
            if r["prev_hash"] != prev_hash:
                after = f"row {prev_id}" if prev_id is not None else "the start of the log"
                raise AuditTamperedError(
                    f"audit log tampered: row {r['id']} does not follow {after} "
                    "(a row was removed, inserted or reordered)"
                )
            digest = _chain_hash(
                r["prev_hash"],
                r["at"],
                r["actor"],
                r["role"],
                r["action"],
                r["subject"],
                r["detail"],
            )
            if digest != r["hash"]:
                raise AuditTamperedError(
                    f"audit log tampered: row {r['id']} ({r['action']} {r['subject']}) was "
                    "changed after it was written (its hash does not match its content)"
                )
            prev_hash, prev_id = r["hash"], r["id"]
        return len(rows)
