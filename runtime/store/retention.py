"""The retention repository: rules per task and per profile, and deleting a run's data in the
store (the files are the service's: :mod:`runtime.services.retention`).

``retention_rules`` holds one row per (scope, name): scope ``task`` (the rule of the task's last
run, by task name) or ``profile`` (set by an admin). ``runs.expired`` says which kinds of a run's
data were deleted, and when (JSON: kind -> time); the run's row, status, error, costs, model
calls and the step skeleton (kind, action, target, status, URLs, timing) stay. Page text is in
the steps' details (see :data:`EXCERPT_KEYS`) and in the excerpts the result's evidence cites.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import aiosqlite

from runtime.records import ArtifactRecord, RunStatus
from runtime.retention import Kind, Retention
from runtime.store.db import Database
from runtime.store.rows import Table, insert_sql, now

__all__ = [
    "ARTIFACT_KINDS",
    "EXCERPT_KEYS",
    "EndedRun",
    "RetentionRepository",
    "Scope",
    "strip_excerpts",
]

Scope = Literal["task", "profile"]
_ARTIFACTS = Table("artifacts", ArtifactRecord)
_LIVE: tuple[RunStatus, ...] = ("queued", "running", "waiting_approval")

ARTIFACT_KINDS: dict[Kind, tuple[str, ...]] = {
    "screenshots": ("screenshot", "approval"),
    "traces": ("trace",),
    "excerpts": (),
    "results": ("result", "download"),
}
"""Which registered files (artifact kinds) each kind of run data covers."""

EXCERPT_KEYS = ("excerpt", "value", "reason", "history_summary")
"""The keys of a step's detail that hold page text: the planner's page excerpt, a value an action
read off the page (a vision model's look, a read value), the model's reason (its words about the
page) and the summary of the run's earlier turns."""


def strip_excerpts(detail: Any) -> tuple[Any, int]:
    """``detail`` without its page text, and how many characters were removed."""
    if not isinstance(detail, dict):
        return detail, 0
    removed = {k: detail[k] for k in EXCERPT_KEYS if k in detail}
    if not removed:
        return detail, 0
    kept = {k: v for k, v in detail.items() if k not in removed}
    size = len(json.dumps(removed, ensure_ascii=False, default=str))
    return kept or None, size


@dataclass(frozen=True)
class EndedRun:
    """What gc needs of a run that has ended."""

    id: str
    task_name: str
    profile: str
    status: str
    finished_at: datetime
    run_dir: str
    expired: dict[str, str]


def _live_marks() -> str:
    return ", ".join("?" for _ in _LIVE)


class RetentionRepository:
    """Retention rules, and the store's side of deleting a run's expired data."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- rules ------------------------------------------------------------------------------

    async def rules(self, scope: Scope) -> dict[str, Retention]:
        """Every rule of ``scope``, by name."""
        rows = await self.db.fetch_all(
            "SELECT name, rules FROM retention_rules WHERE scope = ? ORDER BY name", (scope,)
        )
        return {str(r["name"]): Retention.model_validate_json(r["rules"]) for r in rows}

    async def rule(self, scope: Scope, name: str) -> Retention | None:
        """The rule set for one task or profile (None: none)."""
        row = await self.db.fetch_one(
            "SELECT rules FROM retention_rules WHERE scope = ? AND name = ?", (scope, name)
        )
        return Retention.model_validate_json(row["rules"]) if row else None

    async def put_rule(
        self, db: aiosqlite.Connection, scope: Scope, name: str, rule: Retention | None
    ) -> None:
        """Set (or with None, or an empty rule, remove) a rule in the caller's transaction."""
        if rule is None or not rule.given():
            await db.execute(
                "DELETE FROM retention_rules WHERE scope = ? AND name = ?", (scope, name)
            )
            return
        row = {
            "scope": scope,
            "name": name,
            "rules": rule.model_dump_json(exclude_none=True),
            "updated_at": now(),
        }
        await db.execute(insert_sql("retention_rules", row, replace_on=("scope", "name")), row)

    async def note_task(self, name: str, rule: Retention | None) -> None:
        """Remember the rule a task's run is made under (by task name); writes only on a
        change, so running the same task again costs one read."""
        wanted = rule if rule is not None and rule.given() else None
        if await self.rule("task", name) == wanted:
            return
        async with self.db.tx() as db:
            await self.put_rule(db, "task", name, wanted)

    # --- runs -------------------------------------------------------------------------------

    async def ended_runs(self, ended_before: datetime) -> list[EndedRun]:
        """Runs that ended (any status but queued, running, waiting) before ``ended_before``."""
        rows = await self.db.fetch_all(
            "SELECT id, task_name, profile, status, finished_at, run_dir, expired FROM runs "
            f"WHERE finished_at IS NOT NULL AND finished_at <= ? "
            f"AND status NOT IN ({_live_marks()}) ORDER BY finished_at",
            (ended_before.isoformat(), *_LIVE),
        )
        return [
            EndedRun(
                id=r["id"],
                task_name=r["task_name"],
                profile=r["profile"],
                status=r["status"],
                finished_at=datetime.fromisoformat(r["finished_at"]),
                run_dir=r["run_dir"],
                expired=json.loads(r["expired"]) if r["expired"] else {},
            )
            for r in rows
        ]

    async def artifacts(self, run_id: str, kinds: Collection[str]) -> list[ArtifactRecord]:
        """The run's registered files of these artifact kinds."""
        if not kinds:
            return []
        marks = ", ".join("?" for _ in kinds)
        rows = await self.db.fetch_all(
            f"SELECT * FROM artifacts WHERE run_id = ? AND kind IN ({marks}) ORDER BY id",
            (run_id, *kinds),
        )
        return [_ARTIFACTS.record(r) for r in rows]

    async def excerpts(self, run_id: str) -> dict[int, tuple[Any, int]]:
        """Per step holding page text: its detail without it, and the characters removed."""
        rows = await self.db.fetch_all(
            "SELECT idx, detail FROM steps WHERE run_id = ? AND detail IS NOT NULL ORDER BY idx",
            (run_id,),
        )
        out: dict[int, tuple[Any, int]] = {}
        for r in rows:
            kept, size = strip_excerpts(json.loads(r["detail"]))
            if size:
                out[int(r["idx"])] = (kept, size)
        return out

    async def results(self, run_id: str) -> int:
        """How many of the result value and its evidence the run's row still holds."""
        row = await self.db.fetch_one(
            "SELECT result IS NOT NULL AS r, evidence IS NOT NULL AS e FROM runs WHERE id = ?",
            (run_id,),
        )
        return int(bool(row["r"])) + int(bool(row["e"])) if row else 0

    async def cited(self, run_id: str) -> tuple[list[Any] | None, int, int]:
        """The run's result evidence without its page text (each field's excerpt), how many
        entries had some, and the characters removed."""
        row = await self.db.fetch_one("SELECT evidence FROM runs WHERE id = ?", (run_id,))
        entries = json.loads(row["evidence"]) if row and row["evidence"] else None
        if not isinstance(entries, list):
            return entries, 0, 0
        kept, count, size = [], 0, 0
        for entry in entries:
            if isinstance(entry, dict) and "excerpt" in entry:
                count += 1
                size += len(json.dumps(entry["excerpt"], ensure_ascii=False, default=str))
                entry = {k: v for k, v in entry.items() if k != "excerpt"}
            kept.append(entry)
        return kept, count, size

    async def expire(
        self,
        db: aiosqlite.Connection,
        run_id: str,
        kinds: Collection[Kind],
        at: datetime,
    ) -> list[Kind]:
        """In the caller's transaction: delete the store's copy of ``kinds`` of the run's data
        and mark them expired at ``at``; returns the kinds this call expired (a kind another gc
        expired first, or a run that is live again, is left alone: idempotent)."""
        row = await self.db.fetch_one("SELECT status, expired FROM runs WHERE id = ?", (run_id,))
        if row is None or row["status"] in _LIVE:
            return []
        expired: dict[str, str] = json.loads(row["expired"]) if row["expired"] else {}
        todo = [k for k in kinds if k not in expired]
        for kind in todo:
            await self._expire_one(db, run_id, kind)
            expired[kind] = at.isoformat()
        if todo:
            await db.execute(
                "UPDATE runs SET expired = ? WHERE id = ?", (json.dumps(expired), run_id)
            )
        return todo

    async def _expire_one(self, db: aiosqlite.Connection, run_id: str, kind: Kind) -> None:
        artifact_kinds = ARTIFACT_KINDS[kind]
        if artifact_kinds:
            marks = ", ".join("?" for _ in artifact_kinds)
            await db.execute(
                f"DELETE FROM artifacts WHERE run_id = ? AND kind IN ({marks})",
                (run_id, *artifact_kinds),
            )
        if kind == "screenshots":
            await db.execute("UPDATE steps SET screenshot = NULL WHERE run_id = ?", (run_id,))
            await db.execute("UPDATE approvals SET screenshot = NULL WHERE run_id = ?", (run_id,))
        elif kind == "excerpts":
            evidence, count, _size = await self.cited(run_id)
            if count:
                await db.execute(
                    "UPDATE runs SET evidence = ? WHERE id = ?", (json.dumps(evidence), run_id)
                )
            stripped = await self.excerpts(run_id)
            if not stripped:
                return
            await db.executemany(
                "UPDATE steps SET detail = ? WHERE run_id = ? AND idx = ?",
                [
                    (json.dumps(kept) if kept is not None else None, run_id, idx)
                    for idx, (kept, _size) in stripped.items()
                ],
            )
        elif kind == "results":
            await db.execute(
                "UPDATE runs SET result = NULL, evidence = NULL WHERE id = ?", (run_id,)
            )
