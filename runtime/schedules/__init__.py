"""Schedules: when a registered task runs on which profiles, and each fire of it."""

from runtime.schedules.queue import FireQueue
from runtime.schedules.records import (
    FINAL_FIRE_STATUSES,
    Fire,
    FireKind,
    FireStatus,
    Notify,
    Overlap,
    Schedule,
    SchedulePolicy,
    Timing,
)

__all__ = [
    "FINAL_FIRE_STATUSES",
    "Fire",
    "FireKind",
    "FireQueue",
    "FireStatus",
    "Notify",
    "Overlap",
    "Schedule",
    "SchedulePolicy",
    "Timing",
]
