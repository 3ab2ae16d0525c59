"""Schedules: the records the store keeps, and when a schedule fires."""

from runtime.errors import ScheduleError
from runtime.schedules.queue import FireQueue
from runtime.schedules.records import (
    Fire,
    FireKind,
    FireStatus,
    Notify,
    Overlap,
    Schedule,
    SchedulePolicy,
    Timing,
)
from runtime.schedules.timing import (
    check_timing,
    fire_id,
    fire_times,
    format_duration,
    jitter_for,
    next_fire_times,
    parse_duration,
)

__all__ = [
    "Fire",
    "FireKind",
    "FireQueue",
    "FireStatus",
    "Notify",
    "Overlap",
    "Schedule",
    "ScheduleError",
    "SchedulePolicy",
    "Timing",
    "check_timing",
    "fire_id",
    "fire_times",
    "format_duration",
    "jitter_for",
    "next_fire_times",
    "parse_duration",
]
