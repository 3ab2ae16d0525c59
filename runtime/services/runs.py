"""Runs: who may start them, and reading what they recorded."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from runtime.auth import ROLES, Actor
from runtime.errors import RunNotFoundError
from runtime.records import ArtifactRecord, ModelCallRecord, RunRecord, StepRecord, UsageRow
from runtime.services.base import Service

if TYPE_CHECKING:
    from rich.console import Console

    from runtime.models import Model
    from runtime.review import RunReview
    from runtime.run import RunEvent, RunResult
    from runtime.task import Task

__all__ = ["RunDetail", "RunService", "Usage"]


_MAX_REQUESTS = 1000


class Usage(NamedTuple):
    """What models cost over a period, and which runs a cap stopped."""

    rows: list[UsageRow]
    capped: list[RunRecord]


class RunDetail(NamedTuple):
    """One run with everything it recorded."""

    run: RunRecord
    steps: list[StepRecord]
    model_calls: list[ModelCallRecord]
    artifacts: list[ArtifactRecord]


class RunService(Service):
    """Who may start runs, starting them as an actor, and reading what they recorded."""

    async def run(
        self,
        actor: Actor,
        task: Task,
        profile: str | None = None,
        variables: Mapping[str, str] | None = None,
        *,
        on_event: Callable[[RunEvent], None] | None = None,
        lease_timeout_s: float | None = None,
        models: Mapping[str, list[Model]] | None = None,
    ) -> RunResult:
        """Run ``task`` on ``profile`` (default: the task's) as ``actor``, once authorized."""
        # Imported here: the runner imports the runtime, which builds these services.
        from runtime.run import run_task

        await self.authorize(actor, [p for p in (profile or task.profile,) if p])
        return await run_task(
            self._rt,
            task,
            profile,
            variables,
            on_event=on_event,
            lease_timeout_s=lease_timeout_s,
            models=models,
        )

    async def run_many(
        self,
        actor: Actor,
        task: Task,
        profiles: Sequence[str],
        variables: Mapping[str, str] | None = None,
        *,
        console: Console | None = None,
        lease_timeout_s: float | None = None,
    ) -> list[RunResult]:
        """Run ``task`` on each of ``profiles`` at once (each isolated) as ``actor``."""
        from runtime.run import run_many

        await self.authorize(actor, profiles)
        return await run_many(
            self._rt, task, profiles, variables, console=console, lease_timeout_s=lease_timeout_s
        )

    async def authorize(self, actor: Actor, profiles: Iterable[str]) -> None:
        """May ``actor`` run tasks on each of ``profiles``? (users need a grant on each)"""
        for name in profiles:
            await self._authz.require_profile(actor, name, f"run tasks on profile '{name}'")

    def authorize_demo(self, actor: Actor) -> None:
        """The demo creates profiles and secrets and decides on approvals: an admin's work."""
        self._authz.require(actor, "admin", "run the demo")

    async def list(
        self,
        actor: Actor,
        limit: int = 20,
        profile: str | None = None,
        schedule: str | None = None,
        *,
        task: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        """The latest runs, newest first, filtered; a ``user`` sees only runs on profiles
        granted to it."""
        return await self._store.runs.list_runs(
            limit,
            profile,
            schedule=schedule,
            profiles=await self._visible(actor),
            task=task,
            status=status,
            since=since,
            until=until,
            offset=offset,
        )

    async def _visible(self, actor: Actor) -> builtins.list[str] | None:
        """The profiles whose runs ``actor`` sees (None: all)."""
        if actor.level >= ROLES["admin"]:
            return None
        return await self._store.users.granted(actor.name)

    async def review(self, actor: Actor, run_id: str) -> RunReview:
        """One run as a person reviews it (steps explained, costs, approvals); every text is
        redacted once more with every stored secret."""
        detail = await self.show(actor, run_id)
        requests = await self._rt.approvals.repo.list(None, detail.run.id, _MAX_REQUESTS)
        redactor = await self._rt.vault.redactor()
        from runtime.review import build_review  # the replay's models: not for starting runs

        return build_review(
            detail.run,
            detail.steps,
            detail.model_calls,
            detail.artifacts,
            requests,
            redactor.text if redactor else None,
        )

    async def usage(self, actor: Actor, since: datetime) -> Usage:
        """Model calls since ``since`` per day, task, role and model, and the runs a budget cap
        stopped: of the runs ``actor`` may see."""
        visible = await self._visible(actor)
        return Usage(
            await self._store.runs.usage(since, visible),
            await self._store.runs.capped_runs(since, visible),
        )

    async def show(self, actor: Actor, run_id: str) -> RunDetail:
        """One run: its steps, model calls and artifacts (a run on a profile not granted to a
        ``user`` is not found, as if it did not exist)."""
        run = await self._store.runs.get_run(run_id)
        if run is None or not await self.may_see(actor, run.profile):
            raise RunNotFoundError(f"no run '{run_id}' (see: corral runs list)")
        return RunDetail(
            run,
            await self._store.runs.list_steps(run.id),
            await self._store.runs.list_model_calls(run.id),
            await self._store.runs.list_artifacts(run.id),
        )

    async def may_see(self, actor: Actor, profile: str) -> bool:
        """Whether ``actor`` may see runs on ``profile`` (admins: all; users: granted ones)."""
        return await self._authz.may_use_profile(actor, profile)

    async def cancel(
        self,
        actor: Actor,
        run_id: str,
        profile: str,
        started_by: str | None,
        stop: Callable[[str], bool],
        reason: str | None = None,
    ) -> bool:
        """Cancel a live run as ``actor`` (who started it, or an admin); audited.

        ``stop(why)`` cancels it where it runs (a server's worker pool) and says whether it was
        still going; ``why`` becomes the run's error. False (and no audit row) when it had
        already ended.
        """
        if not await self.may_see(actor, profile):
            raise RunNotFoundError(f"no run '{run_id}' (see: corral runs list)")
        if started_by != actor.name:
            self._authz.require(actor, "admin", "cancel runs others started")
        why = f"cancelled by {actor.name}" + (f": {reason}" if reason else "")
        try:
            async with self._store.tx() as db:
                # The audit row first: a cancel that cannot be recorded does not happen.
                await self._audit(
                    db, actor, "run.cancel", run_id, {"profile": profile, "reason": reason}
                )
                if not stop(why):
                    raise _AlreadyEnded
        except _AlreadyEnded:
            return False
        return True


class _AlreadyEnded(Exception):
    """Rolls back a cancel's audit row when the run had already ended."""
