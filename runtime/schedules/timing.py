"""When a schedule fires: durations, timing checks, fire times, jitter and fire ids.

Pure functions: nothing here reads the clock or does I/O, so a fake clock drives the scheduler and
every server (and every restart) computes the same fire times, jitters and ids. Cron expressions
are read by cronsim in the schedule's zone, which handles daylight saving the way Debian cron
does: a daily time that does not exist fires once at the transition, one that exists twice fires
once, and interval-like expressions (``*/30 * * * *``) fire by elapsed real time.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from runtime.errors import ScheduleError
from runtime.schedules.records import Timing

__all__ = [
    "check_timing",
    "fire_id",
    "fire_times",
    "format_duration",
    "jitter_for",
    "next_fire_times",
    "parse_duration",
]

DEFAULT_LIMIT = 10_000
"""The most fire times one call returns: a guard against a runaway window."""

MAX_EVERY_S = 366 * 86_400.0
"""The longest interval: 366 days (longer ones are surely a slip; cron says "yearly")."""

MAX_CRON_JITTER_S = 86_400.0

_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")
_SECONDS = re.compile(r"[0-9]+")
_CHECK_FROM = datetime(2000, 1, 1, tzinfo=UTC)  # any fixed instant: only parsing is checked
_TICK = timedelta(microseconds=1)


# --- durations ----------------------------------------------------------------------------------


def parse_duration(text: str, what: str) -> float:
    """Whole seconds in ``30s``, ``10m``, ``1h``, ``1h30m``, ``2d`` or ``90``; ``what`` names it."""
    cleaned = text.strip().lower()
    if _SECONDS.fullmatch(cleaned):
        seconds = int(cleaned)
    elif cleaned and (match := _DURATION.fullmatch(cleaned)):
        seconds = sum(
            int(n) * size for n, size in zip(match.groups(), _UNITS.values(), strict=True) if n
        )
    else:
        raise ScheduleError(
            f"{what} {text!r}: expected a duration like 30s, 10m, 1h, 1h30m", field=what
        )
    if seconds < 1:
        raise ScheduleError(f"{what} {text!r}: a duration must be at least 1s", field=what)
    return float(seconds)


def format_duration(seconds: float) -> str:
    """Text :func:`parse_duration` reads back as ``seconds`` (``5400`` -> ``1h30m``)."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a duration: {seconds!r}")
    whole, fraction = divmod(seconds, 1)
    left, parts = int(whole), []
    for unit, size in _UNITS.items():
        count, left = divmod(left, size)
        if unit == "s" and fraction:
            parts.append(f"{count + fraction:g}s")
        elif count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


# --- checking a timing --------------------------------------------------------------------------


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"tz: unknown time zone {tz!r}", field="tz") from exc


def _check_cron(expr: str) -> str:
    fields = expr.split()
    if len(fields) != 5:
        raise ScheduleError(
            f"cron {expr!r}: expected 5 fields (minute hour day month weekday), got {len(fields)}",
            field="cron",
        )
    normal = " ".join(fields)
    try:
        next(CronSim(normal, _CHECK_FROM))
    except CronSimError as exc:
        raise ScheduleError(f"cron {expr!r}: {str(exc).lower()} field", field="cron") from exc
    except StopIteration as exc:
        raise ScheduleError(f"cron {expr!r}: never fires", field="cron") from exc
    return normal


def _aware(value: datetime, zone: ZoneInfo) -> datetime:
    """``value`` in UTC; a naive one is read in ``zone`` (the schedule's zone)."""
    return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC)


def check_timing(t: Timing) -> Timing:
    """``t`` validated and normalized (aware UTC bounds, one-space cron, sorted dates).

    Raises :class:`ScheduleError` naming the field (``cron``, ``every_s``, ``tz``, ``start_at``,
    ``end_at``, ``jitter_s``) and what was expected.
    """
    zone = _zone(t.tz)
    if (t.cron is None) == (t.every_s is None):
        got = "both" if t.cron is not None else "neither"
        raise ScheduleError(
            f"cron/every_s: give exactly one of cron and every (got {got})", field="cron"
        )
    cron = _check_cron(t.cron) if t.cron is not None else None
    if t.every_s is not None and not (math.isfinite(t.every_s) and t.every_s >= 1):
        raise ScheduleError(f"every_s {t.every_s}: must be at least 1 second", field="every_s")
    if t.every_s is not None and t.every_s > MAX_EVERY_S:
        raise ScheduleError(
            f"every_s {format_duration(t.every_s)}: must be at most 366d (use a cron "
            "expression for yearly schedules)",
            field="every_s",
        )
    start = _aware(t.start_at, zone) if t.start_at else None
    end = _aware(t.end_at, zone) if t.end_at else None
    if start and end and end <= start:
        raise ScheduleError(
            f"end_at {end.isoformat()}: must be after start_at {start.isoformat()}", field="end_at"
        )
    jitter = format_duration(t.jitter_s) if math.isfinite(t.jitter_s) else str(t.jitter_s)
    if t.every_s is not None and not t.jitter_s < t.every_s:
        raise ScheduleError(
            f"jitter_s {jitter}: must be less than the interval {format_duration(t.every_s)}",
            field="jitter_s",
        )
    if t.every_s is None and not t.jitter_s <= MAX_CRON_JITTER_S:
        raise ScheduleError(f"jitter_s {jitter}: must be at most 1d", field="jitter_s")
    return t.model_copy(
        update={
            "cron": cron,
            "start_at": start,
            "end_at": end,
            "exclude_dates": sorted(set(t.exclude_dates)),
        }
    )


# --- fire times ---------------------------------------------------------------------------------


def _next_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) of the day after ``day`` in ``zone``."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)


def _interval_times(t: Timing, after: datetime, anchor: datetime) -> Iterator[datetime]:
    assert t.every_s is not None
    every, zone, excluded = t.every_s, ZoneInfo(t.tz), set(t.exclude_dates)
    origin = t.start_at or anchor.astimezone(UTC)

    def at(k: int) -> datetime:
        return origin + timedelta(seconds=k * every)

    def first_from(floor: datetime, inclusive: bool) -> int:
        # float division gives k within one step; the loops settle it exactly on the grid
        k = math.ceil((floor - origin).total_seconds() / every)
        while at(k - 1) > floor or (inclusive and at(k - 1) == floor):
            k -= 1
        while at(k) < floor or (not inclusive and at(k) == floor):
            k += 1
        return k

    k = first_from(after, inclusive=False)
    if t.start_at:
        k = max(k, first_from(t.start_at, inclusive=True))
    while True:
        when = at(k)
        day = when.astimezone(zone).date()
        if day in excluded:
            k = first_from(_next_midnight(day, zone), inclusive=True)
            continue
        yield when
        k += 1


def _cron_times(t: Timing, after: datetime) -> Iterator[datetime]:
    assert t.cron is not None
    zone, excluded = ZoneInfo(t.tz), set(t.exclude_dates)
    # cron times are whole seconds and cronsim yields those after the start's whole second
    begin = max(after, t.start_at - _TICK) if t.start_at else after
    last = after
    ticks = CronSim(t.cron, begin.astimezone(zone))
    while True:
        try:
            local = next(ticks)
        except StopIteration:  # cronsim gives up after 50 years without a match
            return
        when = local.astimezone(UTC)
        # near a fall-back fold the wall clock runs twice: never go back, never repeat an instant
        if when <= last or (t.start_at and when < t.start_at):
            continue
        if local.date() in excluded:
            ticks = CronSim(t.cron, (_next_midnight(local.date(), zone) - _TICK).astimezone(zone))
            continue
        last = when
        yield when


def _times(t: Timing, after: datetime, anchor: datetime) -> Iterator[datetime]:
    t = check_timing(t)
    if after.tzinfo is None or anchor.tzinfo is None:
        raise ValueError("after and anchor must be timezone-aware")
    after = after.astimezone(UTC)
    times = _cron_times(t, after) if t.cron else _interval_times(t, after, anchor)
    for when in times:
        if t.end_at and when > t.end_at:
            return
        yield when


def fire_times(
    t: Timing, after: datetime, until: datetime, *, anchor: datetime, limit: int = DEFAULT_LIMIT
) -> list[datetime]:
    """The nominal fire times T (UTC) with ``after < T <= until``, in order, at most ``limit``.

    Honors start_at, end_at and exclude_dates. An interval's grid is ``start_at`` (or, without
    one, ``anchor``: the schedule's creation time) plus whole intervals, so a restart never shifts
    it. A full list (``limit`` long) may stop short of ``until``: advance a cursor to its last time.
    """
    if until.tzinfo is None:
        raise ValueError("until must be timezone-aware")
    found: list[datetime] = []
    for when in _times(t, after, anchor):
        if when > until or len(found) >= limit:
            break
        found.append(when)
    return found


def next_fire_times(t: Timing, now: datetime, n: int, *, anchor: datetime) -> list[datetime]:
    """The next ``n`` nominal fire times after ``now`` (fewer if the schedule ends first)."""
    return list(islice(_times(t, now, anchor), max(0, min(n, DEFAULT_LIMIT))))


# --- jitter and identity ------------------------------------------------------------------------


def jitter_for(t: Timing, key: str) -> float:
    """A delay in ``[0, jitter_s]`` fixed by ``key`` (the fire's id): every server agrees on it."""
    if t.jitter_s <= 0:
        return 0.0
    digest = hashlib.sha256(key.encode()).digest()
    return t.jitter_s * int.from_bytes(digest[:8], "big") / (2**64 - 1)


def fire_id(schedule: str, scheduled_at: datetime, profile: str) -> str:
    """The id of one profile's run of one scheduled time: the same on every server and restart."""
    if scheduled_at.tzinfo is None:
        raise ValueError("scheduled_at must be timezone-aware")
    moment = scheduled_at.astimezone(UTC).isoformat(timespec="microseconds")
    # a separator no name holds, so ("a", "b c") and ("a b", "c") never meet
    return "f-" + hashlib.sha256("\x1f".join((schedule, moment, profile)).encode()).hexdigest()[:20]
