"""``/api/schedules``: registered tasks on profiles at set times, their fires, and managing them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from runtime.api.auth import Authenticated
from runtime.schedules import Fire, Schedule
from runtime.services import ScheduleChanges, ScheduleInput

__all__ = ["BackfillRequest", "PauseRequest", "router"]

router = APIRouter(prefix="/schedules", tags=["schedules"])


class PauseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=500)


class BackfillRequest(BaseModel):
    """Times with an offset (ISO 8601); the range is (start, end]."""

    model_config = ConfigDict(extra="forbid")
    start: datetime
    end: datetime


@router.get("", response_model=list[Schedule])
async def list_schedules(call: Authenticated) -> list[Schedule]:
    """The schedules the caller may see (admins: all; others: their own)."""
    return await call.rt.services.schedules.list(call.actor)


@router.post("", response_model=Schedule, status_code=status.HTTP_201_CREATED)
async def add_schedule(body: ScheduleInput, call: Authenticated) -> Schedule:
    """Register a task (its text) to run on profiles at set times; the caller owns it."""
    return await call.rt.services.schedules.add(call.actor, body)


@router.get("/{name}", response_model=Schedule)
async def show_schedule(name: str, call: Authenticated) -> Schedule:
    return await call.rt.services.schedules.get(call.actor, name)


@router.patch("/{name}", response_model=Schedule)
async def update_schedule(name: str, body: ScheduleChanges, call: Authenticated) -> Schedule:
    """Change what is given; a new task text is registered in place of the old one."""
    return await call.rt.services.schedules.update(call.actor, name, body)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_schedule(name: str, call: Authenticated) -> None:
    """Remove a schedule; its queued fires are skipped, the record of past ones stays."""
    await call.rt.services.schedules.remove(call.actor, name)


@router.post("/{name}/pause", response_model=Schedule)
async def pause_schedule(
    name: str, call: Authenticated, body: PauseRequest | None = None
) -> Schedule:
    return await call.rt.services.schedules.pause(call.actor, name, body.reason if body else None)


@router.post("/{name}/resume", response_model=Schedule)
async def resume_schedule(name: str, call: Authenticated) -> Schedule:
    return await call.rt.services.schedules.resume(call.actor, name)


@router.post("/{name}/run-now", response_model=list[Fire])
async def run_now(name: str, call: Authenticated) -> list[Fire]:
    """A fire for now on every profile, started by the next scheduler tick."""
    return await call.rt.services.schedules.run_now(call.actor, name)


@router.post("/{name}/backfill", response_model=list[Fire])
async def backfill(name: str, body: BackfillRequest, call: Authenticated) -> list[Fire]:
    """Fires for the schedule's times in (start, end] that do not exist yet."""
    return await call.rt.services.schedules.backfill(call.actor, name, body.start, body.end)


@router.get("/{name}/next", response_model=list[datetime])
async def next_fires(
    name: str, call: Authenticated, n: Annotated[int, Query(ge=1, le=1000)] = 5
) -> list[datetime]:
    """The next ``n`` nominal fire times (UTC); none while paused."""
    return await call.rt.services.schedules.next_fires(call.actor, name, n)


@router.get("/{name}/fires", response_model=list[Fire])
async def list_fires(
    name: str, call: Authenticated, limit: Annotated[int, Query(ge=1, le=10000)] = 50
) -> list[Fire]:
    """The schedule's fires, latest first."""
    return await call.rt.services.schedules.fires(call.actor, name, limit)
