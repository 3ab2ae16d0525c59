"""Schedules: registering a task to run on profiles at set times, and managing it.

Whoever adds a schedule must be allowed to run tasks on each of its profiles; the schedule's
runs act as that person (the owner), so a grant revoked later stops its fires. Whoever registers
a new task copy with ``update`` becomes the owner (they vouch for what runs). Only the owner or
an admin may change, pause, trigger or remove a schedule; others do not see it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from profiles import UserError
from runtime.auth import ROLES, Actor
from runtime.errors import ScheduleError, ScheduleNotFoundError
from runtime.schedules.records import Fire, Schedule, SchedulePolicy, Timing
from runtime.schedules.scheduler import anchor, make_fire
from runtime.schedules.timing import check_timing, fire_times, next_fire_times
from runtime.services.base import Service
from runtime.task import Task, load_task_text

if TYPE_CHECKING:
    from runtime.store.schedules import ScheduleRepository

__all__ = ["ScheduleChanges", "ScheduleInput", "ScheduleService"]

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_BACKFILL = 1000
"""Fires one backfill may add (per profile); a wider range is refused, not truncated."""


class ScheduleInput(BaseModel):
    """A new schedule, as the CLI and the API send it."""

    model_config = ConfigDict(extra="forbid")
    name: str
    task_yaml: str = Field(description="the task file's text (registered as is)")
    task_source: str = Field(description="where it came from, for messages")
    profiles: list[str] = Field(default_factory=list, description="empty: the task's profile")
    vars: dict[str, str] = Field(default_factory=dict)
    timing: Timing
    policy: SchedulePolicy = Field(default_factory=SchedulePolicy)


class ScheduleChanges(BaseModel):
    """What ``update`` changes; fields left None stay as they are."""

    model_config = ConfigDict(extra="forbid")
    task_yaml: str | None = None
    task_source: str | None = None
    profiles: list[str] | None = None
    vars: dict[str, str] | None = None
    timing: Timing | None = None
    policy: SchedulePolicy | None = None


def _origin(task: Task, values: dict[str, str]) -> str | None:
    if not task.start_url:
        return None
    # Imported here: the run package imports the runtime, which builds these services.
    from runtime.run.scripted import substitute_text

    parts = urlsplit(substitute_text(task.start_url, values))
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.netloc else None


class ScheduleService(Service):
    """Add, change, pause, trigger and remove schedules; read them and their fires."""

    @property
    def _repo(self) -> ScheduleRepository:
        return self._store.schedules

    async def add(self, actor: Actor, spec: ScheduleInput) -> Schedule:
        """Register ``spec`` as a new schedule owned by ``actor``."""
        if not _NAME_RE.fullmatch(spec.name):
            raise ScheduleError(
                f"name {spec.name!r}: expected letters, digits, '.', '_' or '-' (up to 64), "
                "starting with a letter or digit"
            )
        now = self._now()
        timing = check_timing(spec.timing)
        task, profiles = await self._checked_task(
            actor, spec.task_yaml, spec.task_source, spec.profiles, spec.vars
        )
        schedule = Schedule(
            name=spec.name,
            task_yaml=spec.task_yaml,
            task_source=spec.task_source,
            task_name=task.name,
            origin=_origin(task, spec.vars),
            profiles=list(profiles),
            vars=spec.vars,
            timing=timing,
            policy=spec.policy,
            owner=actor.name,
            cursor=now,
            created_at=now,
            updated_at=now,
        )
        async with self._store.tx() as db:
            if not await self._repo.add(schedule):
                raise ScheduleError(
                    f"a schedule named '{spec.name}' exists (change it with: corral schedules "
                    f"update {spec.name} ...)"
                )
            await self._audit(db, actor, "schedule.add", spec.name, self._described(schedule))
        return schedule

    async def update(self, actor: Actor, name: str, changes: ScheduleChanges) -> Schedule:
        """Change a schedule; a new task text is registered in place of the old one."""
        current = await self._own(actor, name, "change")
        task_yaml = changes.task_yaml if changes.task_yaml is not None else current.task_yaml
        source = changes.task_source or current.task_source
        variables = changes.vars if changes.vars is not None else current.vars
        wanted = changes.profiles if changes.profiles is not None else current.profiles
        task, profiles = await self._checked_task(actor, task_yaml, source, wanted, variables)
        timing = check_timing(changes.timing) if changes.timing is not None else current.timing
        updated = current.model_copy(
            update={
                "task_yaml": task_yaml,
                "task_source": source,
                "task_name": task.name,
                "origin": _origin(task, variables),
                "profiles": list(profiles),
                "vars": variables,
                "timing": timing,
                "policy": changes.policy or current.policy,
                # Whoever registers a new task copy vouches for it: the runs act as them.
                "owner": actor.name if changes.task_yaml is not None else current.owner,
                "updated_at": self._now(),
            }
        )
        async with self._store.tx() as db:
            await self._repo.replace(updated)
            changed = sorted(changes.model_dump(exclude_none=True))
            await self._audit(db, actor, "schedule.update", name, {"changed": changed})
        return updated

    async def remove(self, actor: Actor, name: str) -> None:
        """Delete a schedule; queued fires are skipped, the record of past fires stays."""
        await self._own(actor, name, "remove")
        async with self._store.tx() as db:
            await self._repo.remove(name)
            await self._audit(db, actor, "schedule.remove", name)

    async def pause(self, actor: Actor, name: str, reason: str | None = None) -> Schedule:
        """Stop new fires until resumed (a running fire goes on)."""
        await self._own(actor, name, "pause")
        why = reason or f"paused by {actor.name}"
        async with self._store.tx() as db:
            if await self._repo.set_paused(name, True, why, self._now()):
                await self._audit(db, actor, "schedule.pause", name, {"reason": why})
        return await self.get(actor, name)

    async def resume(self, actor: Actor, name: str) -> Schedule:
        """Fire again from now on (fires due while paused are not made up); clears the
        failure count."""
        await self._own(actor, name, "resume")
        async with self._store.tx() as db:
            if await self._repo.set_paused(name, False, None, self._now()):
                await self._audit(db, actor, "schedule.resume", name)
        return await self.get(actor, name)

    async def run_now(self, actor: Actor, name: str) -> list[Fire]:
        """A fire for now on every profile (a paused schedule too), run by the next server
        tick regardless of jitter."""
        schedule = await self._own(actor, name, "run")
        now = self._now()
        fires = [make_fire(schedule, now, p, now, kind="manual") for p in schedule.profiles]
        async with self._store.tx() as db:
            added = await self._repo.add_fires(fires)
            await self._audit(db, actor, "schedule.run_now", name, {"fires": [f.id for f in added]})
        return added

    async def backfill(self, actor: Actor, name: str, start: datetime, end: datetime) -> list[Fire]:
        """Fires for the schedule's times in ``(start, end]`` that do not exist yet, queued now
        (existing fires, whatever their status, are left alone: nothing runs twice)."""
        schedule = await self._own(actor, name, "backfill")
        if start.tzinfo is None or end.tzinfo is None:
            raise ScheduleError("backfill: --from and --to need a time zone (e.g. ...Z or +01:00)")
        if end <= start:
            raise ScheduleError(f"backfill: --to {end.isoformat()} is not after --from")
        now = self._now()
        if end > now:
            raise ScheduleError("backfill: --to is in the future (future fires are scheduled)")
        times = fire_times(
            schedule.timing, start, end, anchor=anchor(schedule), limit=MAX_BACKFILL + 1
        )
        if len(times) > MAX_BACKFILL:
            raise ScheduleError(
                f"backfill: more than {MAX_BACKFILL} times in that range; backfill a shorter one"
            )
        fires = [
            make_fire(schedule, t, p, now, kind="backfill").model_copy(update={"due_at": now})
            for t in times
            for p in schedule.profiles
        ]
        async with self._store.tx() as db:
            added = await self._repo.add_fires(fires)
            await self._audit(
                db,
                actor,
                "schedule.backfill",
                name,
                {"from": start.isoformat(), "to": end.isoformat(), "fires": len(added)},
            )
        return added

    async def get(self, actor: Actor, name: str) -> Schedule:
        schedule = await self._repo.get(name)
        if schedule is None or not self._sees(actor, schedule):
            raise ScheduleNotFoundError(f"no schedule '{name}' (see: corral schedules list)")
        return schedule

    async def next_fires(self, actor: Actor, name: str, n: int = 5) -> list[datetime]:
        """The next ``n`` nominal fire times from now (none while paused)."""
        if not 1 <= n <= 1000:
            raise ScheduleError(f"-n {n}: expected 1 to 1000")
        schedule = await self.get(actor, name)
        if schedule.paused:
            return []
        now = max(self._now(), schedule.cursor)
        return next_fire_times(schedule.timing, now, n, anchor=anchor(schedule))

    async def fires(self, actor: Actor, name: str, limit: int = 50) -> list[Fire]:
        """A schedule's fires, latest first."""
        await self.get(actor, name)
        return await self._repo.list_fires(name, limit=limit)

    async def list(self, actor: Actor) -> list[Schedule]:
        """The schedules ``actor`` may see (admins: all; others: their own)."""
        return [s for s in await self._repo.all() if self._sees(actor, s)]

    # --- helpers ---------------------------------------------------------------------------

    def _sees(self, actor: Actor, schedule: Schedule) -> bool:
        return actor.level >= ROLES["admin"] or schedule.owner == actor.name

    async def _own(self, actor: Actor, name: str, verb: str) -> Schedule:
        schedule = await self.get(actor, name)
        if schedule.owner != actor.name:
            self._authz.require(
                actor,
                "admin",
                f"{verb} schedules of others",
                message=f"{actor.name} ({actor.role}) cannot {verb} schedule '{name}': it is "
                f"{schedule.owner}'s (needs admin)",
            )
        return schedule

    async def _checked_task(
        self,
        actor: Actor,
        task_yaml: str,
        source: str,
        profiles: Sequence[str],
        variables: dict[str, str],
    ) -> tuple[Task, Sequence[str]]:
        """Parse the task and check its profiles exist and ``actor`` may run on each."""
        task = load_task_text(task_yaml, source)
        names = list(dict.fromkeys(profiles)) or ([task.profile] if task.profile else [])
        if not names:
            raise ScheduleError(
                f"{source}: no profile: give --profile (one or more), or set profile: in the task"
            )
        for profile in names:
            try:
                await self._rt.profiles.get(profile)
            except UserError as exc:
                raise ScheduleError(f"--profile {profile}: {exc}") from exc
            await self._authz.require_profile(actor, profile, f"schedule runs on '{profile}'")
        return task, names

    @staticmethod
    def _described(schedule: Schedule) -> dict[str, object]:
        timing = schedule.timing
        when = f"cron {timing.cron} ({timing.tz})" if timing.cron else f"every {timing.every_s:g}s"
        return {
            "task": schedule.task_name,
            "profiles": schedule.profiles,
            "when": when,
            "overlap": schedule.policy.overlap,
        }
