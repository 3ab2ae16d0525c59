"""Running one claimed fire: as its schedule's owner, with its schedule's task and variables,
and settling it by how the run ended. Shared by ``corral serve``'s own worker pool and by
``corral worker`` processes that take fires from the job queue.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from profiles import UserError
from runtime.app import Runtime
from runtime.auth import Actor
from runtime.eval.canary import is_canary, with_models_config
from runtime.records import RunSource
from runtime.run.runner import RunEvent, RunResult, run_task
from runtime.schedules.records import Fire, Schedule
from runtime.schedules.scheduler import Outcome, Scheduler
from runtime.task import load_task_text

__all__ = ["FireRunner"]


class FireRunner:
    """Runs claimed fires and settles them through the scheduler."""

    def __init__(self, rt: Runtime, scheduler: Scheduler) -> None:
        self.rt = rt
        self.scheduler = scheduler
        self._notices: set[asyncio.Task[None]] = set()

    async def run(self, fire: Fire, schedule: Schedule, run_id: str) -> RunResult:
        """Run ``fire`` (claimed) as ``run_id`` and settle it by how the run ended."""
        scheduler = self.scheduler
        try:
            actor = await self._owner(schedule)
            task = load_task_text(
                schedule.task_yaml, f"schedule {schedule.name} (task {schedule.task_source})"
            )
            await self.rt.services.runs.authorize(actor, [fire.profile])
        except UserError as exc:
            await self._settle(fire, Outcome("failed", 2, str(exc)))
            raise
        await scheduler.started(fire, run_id)

        def on_event(event: RunEvent) -> None:
            if event.kind == "approval":
                notice = asyncio.get_running_loop().create_task(
                    scheduler.announce(schedule, "fire.waiting_approval", fire, approval=event.text)
                )
                self._notices.add(notice)
                notice.add_done_callback(self._notices.discard)

        rt = self.rt
        canary = schedule.policy.canary
        if canary is not None and is_canary(fire.id, canary.share):
            # The run reads its model config from the settings: this fire's say the candidate.
            rt = await with_models_config(rt, Path(canary.models))
        try:
            result = await run_task(
                rt,
                task,
                fire.profile,
                schedule.vars,
                run_id=run_id,
                source=RunSource(schedule=schedule.name, fire_id=fire.id, attempt=fire.attempt),
                on_event=on_event,
            )
        except asyncio.CancelledError as exc:
            why = exc.args[0] if exc.args and isinstance(exc.args[0], str) else "cancelled"
            await asyncio.shield(self._settle(fire, Outcome("cancelled", 130, why)))
            raise
        except Exception as exc:
            await asyncio.shield(
                self._settle(fire, Outcome("failed", 1, f"internal error: {exc!r}"))
            )
            raise
        await self._settle(fire, Outcome.of(result))
        return result

    async def _settle(self, fire: Fire, outcome: Outcome) -> None:
        settled = await self.scheduler.finished(fire, outcome)
        if settled.status not in ("queued", "running"):  # running: a later attempt has it
            # No later attempt will take over what this fire's attempts left waiting.
            await self.rt.approvals.close_held(fire.id, f"the fire ended: {settled.status}")

    async def _owner(self, schedule: Schedule) -> Actor:
        """The actor a schedule's runs act as: its owner, as the owner is now."""
        return await self.rt.services.users.actor_named(schedule.owner)
