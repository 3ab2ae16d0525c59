"""Retention: how long run data is kept (rules per task, per profile, global) and ``gc``, which
deletes what expired (admin+). ``corral gc`` and ``corral serve``'s periodic pass call the same
:meth:`RetentionService.gc`.

For each run that has ended (never one queued, running or waiting for a person), each kind of
its data (screenshots, traces, excerpts, results: see :mod:`runtime.retention`) expires once the
run ended longer ago than the kind's rule. gc then deletes, in this order:

1. the files: the run folder's copy on this host and the object store's copy (local or S3);
2. in one store transaction: the rows and columns that held the data (artifact rows, the steps'
   screenshot paths and page text, the run's result value), the run's ``expired`` mark (kind ->
   time), and one audit row per kind deleted: which run, what kind, how many files and bytes,
   under which rule; never the data itself.

Files first: a gc stopped between the two steps leaves the data unmarked, and the next gc deletes
again (deleting what is gone is nothing) and marks it. Two servers sharing a store may gc at
once: the transaction re-reads the mark, so each kind of each run is marked and audited once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from profiles import CorralError
from runtime.auth import Actor
from runtime.objects import LocalObjects, run_key
from runtime.retention import KINDS, AppliedRule, Kind, Retention, parse_duration, resolve
from runtime.services.base import Service
from runtime.store.retention import (
    ARTIFACT_KINDS,
    EXCERPT_KEYS,
    EndedRun,
    RetentionRepository,
)

if TYPE_CHECKING:
    from runtime.task import Task

__all__ = ["GC_ACTOR", "Deletion", "GcReport", "RetentionService", "RuleReport"]

log = logging.getLogger(__name__)

GC_ACTOR = Actor("retention", "admin")
"""Who ``corral serve``'s periodic gc acts as (its audit rows name it)."""

_FOLDERS: dict[Kind, tuple[str, ...]] = {
    "screenshots": ("steps/", "approvals/"),
    "traces": (),
    "excerpts": (),
    "results": ("downloads/",),
}
_FIXED: dict[Kind, tuple[str, ...]] = {
    "screenshots": (),
    "traces": ("trace.zip",),
    "excerpts": (),
    "results": ("result.json",),
}
_STEPS_FILE = "steps.jsonl"


class Deletion(BaseModel):
    """One kind of one run's data that expired: what gc deleted (or, in a dry run, would)."""

    model_config = ConfigDict(extra="forbid")
    run_id: str
    task: str
    profile: str
    kind: Kind
    rule: str = Field(description="the rule and its level, e.g. '30d (task)'")
    ended_at: datetime
    files: int = Field(0, description="registered files (screenshots, trace, result, downloads)")
    bytes: int = Field(0, description="their size; for excerpts, the characters of page text")
    records: int = Field(0, description="step records stripped of page text, result values")


class GcReport(BaseModel):
    """What one gc pass did (or, with ``dry_run``, would do)."""

    model_config = ConfigDict(extra="forbid")
    dry_run: bool
    now: datetime = Field(description="the time the data was aged against (the store's clock)")
    deletions: list[Deletion] = Field(default_factory=list)
    failed: list[str] = Field(
        default_factory=list, description="runs left for the next pass, and why"
    )
    swept: int = Field(
        0,
        description="files of data that had already expired (deleted and marked by a pass on "
        "another host) removed from this host's copy of the run folders",
    )

    @property
    def files(self) -> int:
        """Files deleted in all."""
        return sum(d.files for d in self.deletions)

    @property
    def bytes(self) -> int:
        """Bytes deleted in all."""
        return sum(d.bytes for d in self.deletions)


class RuleReport(BaseModel):
    """The rules in force: the global default, each profile's and each task's, and (for a given
    task and profile) what applies per kind."""

    model_config = ConfigDict(extra="forbid")
    default: dict[str, str]
    profiles: dict[str, dict[str, str]]
    tasks: dict[str, dict[str, str]]
    applied: dict[str, AppliedRule] | None = None


class RetentionService(Service):
    """Retention rules as an admin manages them, and gc."""

    @property
    def _repo(self) -> RetentionRepository:
        return RetentionRepository(self._store)

    # --- rules ------------------------------------------------------------------------------

    async def note_task(self, task: Task) -> None:
        """Remember ``task``'s rule for its runs (called as a run of it is started; no actor:
        whoever may run the task sets its rule in its file)."""
        await self._repo.note_task(task.name, task.retention)

    async def set_profile_rule(self, actor: Actor, profile: str, rule: Retention) -> None:
        """Set how long runs on ``profile`` keep their data (kinds left out fall through to the
        global default); audited."""
        self._authz.require(actor, "admin", "set retention rules")
        await self._rt.profiles.get(profile)  # an unknown profile: ProfileNotFoundError
        old = await self._repo.rule("profile", profile)
        merged = Retention(**{**(old.given() if old else {}), **rule.given()})
        async with self._store.tx() as db:
            await self._audit(
                db, actor, "retention.set", f"profile:{profile}", {"rules": merged.given()}
            )
            await self._repo.put_rule(db, "profile", profile, merged)

    async def clear_profile_rule(self, actor: Actor, profile: str) -> bool:
        """Remove ``profile``'s rule (its runs follow the global default); False if it had
        none. Audited."""
        self._authz.require(actor, "admin", "set retention rules")
        if await self._repo.rule("profile", profile) is None:
            return False
        async with self._store.tx() as db:
            await self._audit(db, actor, "retention.clear", f"profile:{profile}")
            await self._repo.put_rule(db, "profile", profile, None)
        return True

    async def rules(
        self, actor: Actor, task: str | None = None, profile: str | None = None
    ) -> RuleReport:
        """Every rule set, and with ``task`` and/or ``profile`` what applies to their runs."""
        self._authz.require(actor, "admin", "read retention rules")
        tasks = await self._repo.rules("task")
        profiles = await self._repo.rules("profile")
        applied = None
        if task is not None or profile is not None:
            applied = dict(
                resolve(
                    tasks.get(task) if task else None,
                    profiles.get(profile) if profile else None,
                    self._rt.settings.retention,
                )
            )
        return RuleReport(
            default=self._rt.settings.retention.given(),
            profiles={k: v.given() for k, v in profiles.items()},
            tasks={k: v.given() for k, v in tasks.items()},
            applied=applied,
        )

    # --- gc ---------------------------------------------------------------------------------

    async def gc(
        self, actor: Actor, *, dry_run: bool = False, now: datetime | None = None
    ) -> GcReport:
        """Delete every kind of run data past its rule (``dry_run``: only report it); ages are
        measured from each run's end to ``now`` (default: the store's clock)."""
        self._authz.require(actor, "admin", "delete expired run data (gc)")
        at = now or datetime.fromtimestamp(await self._store.clock(), UTC)
        report = GcReport(dry_run=dry_run, now=at)
        repo = self._repo
        tasks = await repo.rules("task")
        profiles = await repo.rules("profile")
        default = self._rt.settings.retention
        shortest = _shortest([default, *tasks.values(), *profiles.values()])
        if shortest is None:
            return report  # everything is kept forever: nothing to look at
        for run in await repo.ended_runs(at - shortest):
            applied = resolve(tasks.get(run.task_name), profiles.get(run.profile), default)
            due = [
                applied[kind]
                for kind in KINDS
                if kind not in run.expired
                and (keep := applied[kind].keep_for) is not None
                and run.finished_at + keep <= at
            ]
            if not due:
                if run.expired:
                    report.swept += await _sweep(run, dry_run)
                continue
            try:
                report.deletions.extend(await self._gc_run(actor, run, due, at, dry_run))
            except (CorralError, OSError) as exc:
                # The run stays unmarked: the next pass tries again.
                why = str(exc) if isinstance(exc, CorralError) else type(exc).__name__
                report.failed.append(f"{run.id}: {why}")
                log.warning("gc: run %s left for the next pass: %s", run.id, why)
        return report

    async def _gc_run(
        self, actor: Actor, run: EndedRun, due: list[AppliedRule], at: datetime, dry_run: bool
    ) -> list[Deletion]:
        repo = self._repo
        found: dict[Kind, tuple[Deletion, list[str]]] = {}
        for rule in due:
            deletion, paths = await self._what(repo, run, rule)
            found[rule.kind] = (deletion, paths)
        deletions = [d for d, _paths in found.values() if d.files or d.records]
        if dry_run:
            return deletions
        for kind, (_deletion, paths) in found.items():
            await self._delete_files(run, kind, paths)
        async with self._store.tx() as db:
            done = await repo.expire(db, run.id, list(found), at)
            reported = [d for d in deletions if d.kind in done]
            for d in reported:
                await self._audit(
                    db,
                    actor,
                    "retention.delete",
                    run.id,
                    {
                        "kind": d.kind,
                        "task": d.task,
                        "profile": d.profile,
                        "rule": d.rule,
                        "ended_at": d.ended_at.isoformat(),
                        "files": d.files,
                        "bytes": d.bytes,
                        "records": d.records,
                    },
                )
        return reported

    async def _what(
        self, repo: RetentionRepository, run: EndedRun, rule: AppliedRule
    ) -> tuple[Deletion, list[str]]:
        """What ``rule`` deletes of ``run``: the report line and the registered files' paths."""
        kind = rule.kind
        artifacts = await repo.artifacts(run.id, ARTIFACT_KINDS[kind])
        records, size = 0, sum(a.bytes for a in artifacts)
        if kind == "excerpts":
            stripped = await repo.excerpts(run.id)
            _evidence, cited, cited_size = await repo.cited(run.id)
            records = len(stripped) + cited
            size = sum(n for _kept, n in stripped.values()) + cited_size
        elif kind == "results":
            records = await repo.results(run.id)
        deletion = Deletion(
            run_id=run.id,
            task=run.task_name,
            profile=run.profile,
            kind=kind,
            rule=rule.words(),
            ended_at=run.finished_at,
            files=len(artifacts),
            bytes=size,
            records=records,
        )
        return deletion, [a.path for a in artifacts]

    async def _delete_files(self, run: EndedRun, kind: Kind, paths: list[str]) -> None:
        """The kind's files: this host's copy in the run folder, and the object store's."""
        folder = LocalObjects(Path(run.run_dir))
        objects = self._rt.objects
        for relative in dict.fromkeys([*paths, *_FIXED[kind]]):
            key = run_key(run.id, relative)  # a path that would leave the folder: refused
            await folder.delete(relative)
            await objects.delete(key)  # an unreachable store raises: the run waits for next time
        for prefix in _FOLDERS[kind]:
            await folder.delete_prefix(prefix)
        if kind == "excerpts":
            await _strip_steps_file(folder)


async def _sweep(run: EndedRun, dry_run: bool) -> int:
    """Remove this host's leftover copy of ``run``'s already expired data (a run recorded here
    whose data a pass on another host deleted); how many files (a dry run only counts them)."""
    root = Path(run.run_dir)
    if not root.is_dir():
        return 0
    folder = LocalObjects(root)
    count = 0
    for kind in KINDS:
        if kind not in run.expired:
            continue
        names = [n for n in _FIXED[kind] if (root / n).is_file()]
        for prefix in _FOLDERS[kind]:
            names += await folder.list(prefix)
        count += len(names)
        if kind == "excerpts":
            data = await folder.get(_STEPS_FILE)
            if data is not None and _has_excerpts(data):
                count += 1
                if not dry_run:
                    await _strip_steps_file(folder)
        if dry_run:
            continue
        for name in names:
            await folder.delete(name)
    return count


def _step_lines(data: bytes) -> list[Any]:
    """The records of a ``steps.jsonl`` (a torn last line is dropped, with its text)."""
    records = []
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def _has_excerpts(data: bytes) -> bool:
    if not any(f'"{k}":'.encode() in data for k in EXCERPT_KEYS):
        return False  # the usual answer, without parsing
    return any(
        isinstance(r, dict)
        and isinstance(r.get("detail"), Mapping)
        and any(k in r["detail"] for k in EXCERPT_KEYS)
        for r in _step_lines(data)
    )


async def _strip_steps_file(folder: LocalObjects) -> None:
    """Rewrite the run folder's ``steps.jsonl`` (a copy of the step rows) without page text."""
    data = await folder.get(_STEPS_FILE)
    if data is None:
        return
    lines = []
    for record in _step_lines(data):
        if isinstance(record, dict) and isinstance(record.get("detail"), Mapping):
            detail = {k: v for k, v in record["detail"].items() if k not in EXCERPT_KEYS}
            record["detail"] = detail or None
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    await folder.put(_STEPS_FILE, "".join(lines).encode())


def _shortest(levels: list[Retention]) -> timedelta | None:
    """The shortest finite rule of any level (None: every rule keeps forever)."""
    found = [
        keep
        for level in levels
        for rule in level.given().values()
        if (keep := parse_duration(rule)) is not None
    ]
    return min(found) if found else None
