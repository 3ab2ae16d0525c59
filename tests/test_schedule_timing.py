"""When a schedule fires: durations, timing checks, fire times across DST, jitter and fire ids."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from runtime.errors import EXIT_BAD_INPUT, exit_code_for
from runtime.schedules import (
    ScheduleError,
    Timing,
    check_timing,
    fire_id,
    fire_times,
    format_duration,
    jitter_for,
    next_fire_times,
    parse_duration,
)

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _local_day(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """(after, until) covering exactly the local calendar day: after < T <= until."""
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), start.timetz())
    tick = timedelta(microseconds=1)
    return start.astimezone(UTC) - tick, end.astimezone(UTC) - tick


# --- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("2d", 172800), ("90", 90),
     (" 1H ", 3600), ("1d2h3m4s", 93784)],
)  # fmt: skip
def test_durations_read(text: str, seconds: int) -> None:
    assert parse_duration(text, "--every") == seconds


@pytest.mark.parametrize("text", ["10x", "", "1.5h", "500ms", "1h30", "-5", "m", "h1", "²"])
def test_bad_durations_name_the_flag(text: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_duration(text, "--every")
    assert str(caught.value) == (f"--every {text!r}: expected a duration like 30s, 10m, 1h, 1h30m")
    assert caught.value.field == "--every"
    assert exit_code_for(caught.value) == EXIT_BAD_INPUT


@pytest.mark.parametrize("text", ["0", "0s", "0h0m"])
def test_zero_durations_are_refused(text: str) -> None:
    with pytest.raises(ScheduleError, match=r"--jitter .*at least 1s"):
        parse_duration(text, "--jitter")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(1, "1s"), (90, "1m30s"), (3600, "1h"), (5400, "1h30m"), (86400, "1d"),
     (90061, "1d1h1m1s"), (0, "0s"), (1.5, "1.5s")],
)  # fmt: skip
def test_durations_format_and_read_back(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    if seconds >= 1 and seconds == int(seconds):
        assert parse_duration(text, "x") == seconds


# --- checking a timing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "why"),
    [
        ("* * * *", "expected 5 fields (minute hour day month weekday), got 4"),
        ("0 * * * * *", "expected 5 fields (minute hour day month weekday), got 6"),
        ("61 * * * *", "bad minute field"),
        ("* * * * mon-", "bad day-of-week field"),
        ("every day at noon", "expected 5 fields (minute hour day month weekday), got 4"),
        ("noon on all the days", "bad minute field"),
        ("0 0 31 2 *", "bad day-of-month field"),
    ],
)
def test_bad_cron_is_quoted_with_the_reason(cron: str, why: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        check_timing(Timing(cron=cron))
    assert str(caught.value) == f"cron {cron!r}: {why}"
    assert caught.value.field == "cron"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"cron": "0 9 * * *", "tz": "Europe/Berln"}, "tz", "unknown time zone 'Europe/Berln'"),
        ({"cron": "0 9 * * *", "tz": "../etc/passwd"}, "tz", "unknown time zone"),
        ({"cron": "0 9 * * *", "tz": ""}, "tz", "unknown time zone"),
        ({"cron": "0 9 * * *", "every_s": 60}, "cron", "exactly one of cron and every (got both)"),
        ({}, "cron", "exactly one of cron and every (got neither)"),
        ({"every_s": 0.5}, "every_s", "at least 1 second"),
        ({"every_s": float("inf")}, "every_s", "at least 1 second"),
        ({"every_s": 60, "start_at": T0, "end_at": T0}, "end_at", "must be after start_at"),
        (
            {"every_s": 60, "start_at": T0, "end_at": T0 - timedelta(days=1)},
            "end_at",
            "end_at 2025-12-31T00:00:00+00:00: must be after start_at 2026-01-01T00:00:00+00:00",
        ),
        ({"every_s": 60, "jitter_s": 60}, "jitter_s", "less than the interval 1m"),
        ({"cron": "0 9 * * *", "jitter_s": 86401}, "jitter_s", "jitter_s 1d1s: must be at most 1d"),
        ({"every_s": 60, "jitter_s": float("inf")}, "jitter_s", "jitter_s inf: must be less"),
    ],
)
def test_bad_timing_names_the_field(fields: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        check_timing(Timing(**fields))
    assert caught.value.field == field
    assert str(caught.value).startswith(field)
    assert message in str(caught.value)


def test_a_checked_timing_is_normalized() -> None:
    t = check_timing(
        Timing(
            cron=" 30  2 * * * ",
            tz="Europe/Berlin",
            start_at=datetime(2026, 7, 1, 9, 0),  # naive: read in the schedule's zone
            end_at=datetime(2026, 8, 1, tzinfo=UTC),
            jitter_s=86400,
            exclude_dates=[date(2026, 7, 3), date(2026, 7, 2), date(2026, 7, 3)],
        )
    )
    assert t.cron == "30 2 * * *"
    assert t.start_at == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)  # 09:00 CEST
    assert t.end_at == datetime(2026, 8, 1, tzinfo=UTC)
    assert t.exclude_dates == [date(2026, 7, 2), date(2026, 7, 3)]
    assert check_timing(Timing(every_s=60, jitter_s=59.5)).jitter_s == 59.5


# --- intervals ----------------------------------------------------------------------------------


def test_an_interval_grid_is_anchored_so_a_restart_never_shifts_it() -> None:
    t = Timing(every_s=600)
    anchor = T0 + timedelta(seconds=7)
    first = fire_times(t, anchor, anchor + timedelta(hours=1), anchor=anchor)
    assert first == [anchor + timedelta(minutes=10 * k) for k in range(1, 7)]
    # a restart at an odd moment picks the same grid up where it left off
    later = fire_times(t, T0 + timedelta(minutes=23), T0 + timedelta(minutes=45), anchor=anchor)
    assert later == [anchor + timedelta(minutes=30), anchor + timedelta(minutes=40)]
    # a fire time itself is not after itself
    on_grid = anchor + timedelta(minutes=30)
    assert fire_times(t, on_grid, on_grid + timedelta(minutes=10), anchor=anchor) == [
        anchor + timedelta(minutes=40)
    ]
    assert fire_times(t, on_grid, on_grid, anchor=anchor) == []


def test_an_interval_honors_start_and_end() -> None:
    start = T0 + timedelta(hours=2, seconds=3)
    t = Timing(every_s=3600, start_at=start, end_at=start + timedelta(hours=3))
    got = fire_times(t, T0, T0 + timedelta(days=1), anchor=T0)
    # the grid starts at start_at (not the anchor) and ends at end_at, both included
    assert got == [start + timedelta(hours=k) for k in range(4)]


def test_an_interval_counts_real_time_across_daylight_saving() -> None:
    t = Timing(every_s=3600, tz="Europe/Berlin")
    after, until = _local_day(date(2026, 10, 25), BERLIN)
    anchor = datetime(2026, 10, 1, tzinfo=BERLIN)
    got = fire_times(t, after, until, anchor=anchor)
    assert len(got) == len(set(got)) == 25
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(got))


def test_excluded_dates_skip_whole_local_days() -> None:
    t = Timing(every_s=6 * 3600, tz="Europe/Berlin", exclude_dates=[date(2026, 7, 2)])
    anchor = datetime(2026, 7, 1, tzinfo=BERLIN)
    got = fire_times(t, anchor, anchor + timedelta(days=3), anchor=anchor)
    days = [g.astimezone(BERLIN).date() for g in got]
    assert date(2026, 7, 2) not in days
    assert days.count(date(2026, 7, 1)) == 3 and days.count(date(2026, 7, 3)) == 4

    cron = Timing(cron="0 9 * * *", tz="Europe/Berlin", exclude_dates=[date(2026, 7, 2)])
    got = fire_times(cron, anchor, anchor + timedelta(days=4), anchor=anchor)
    assert [g.astimezone(BERLIN).day for g in got] == [1, 3, 4]


def test_limit_caps_a_runaway_window() -> None:
    t = Timing(every_s=1)
    got = fire_times(t, T0, T0 + timedelta(days=365), anchor=T0, limit=50)
    assert got == [T0 + timedelta(seconds=k) for k in range(1, 51)]
    assert len(fire_times(t, T0, T0 + timedelta(days=365), anchor=T0)) == 10_000


# --- cron ---------------------------------------------------------------------------------------


def test_cron_in_utc() -> None:
    t = Timing(cron="*/15 10 * * *")
    got = fire_times(t, T0, T0 + timedelta(days=2), anchor=T0)
    assert got == [
        T0 + timedelta(days=d, hours=10, minutes=m) for d in (0, 1) for m in (0, 15, 30, 45)
    ]
    assert all(g.tzinfo is UTC for g in got)


def test_cron_weekdays_only() -> None:
    t = Timing(cron="0 9 * * 1-5", tz="Europe/Berlin")
    monday = datetime(2026, 3, 16, tzinfo=BERLIN)
    got = fire_times(t, monday, monday + timedelta(days=14), anchor=monday)
    local = [g.astimezone(BERLIN) for g in got]
    assert len(local) == 10
    assert all(dt.weekday() < 5 and (dt.hour, dt.minute) == (9, 0) for dt in local)


def test_cron_honors_start_and_end() -> None:
    start = datetime(2026, 5, 3, 12, tzinfo=UTC)
    t = Timing(cron="0 12 * * *", start_at=start, end_at=start + timedelta(days=2))
    got = fire_times(t, T0, T0 + timedelta(days=365), anchor=T0)
    assert got == [start, start + timedelta(days=1), start + timedelta(days=2)]


def _days(got: list[datetime]) -> list[date]:
    return [g.astimezone(BERLIN).date() for g in got]


def test_a_daily_time_that_does_not_exist_fires_once_at_the_transition() -> None:
    t = Timing(cron="30 2 * * *", tz="Europe/Berlin")
    after = datetime(2026, 3, 27, tzinfo=BERLIN)
    got = fire_times(t, after, datetime(2026, 3, 31, 23, 59, tzinfo=BERLIN), anchor=after)
    assert _days(got) == [date(2026, 3, d) for d in range(27, 32)]
    assert got[2] == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST
    assert got[2].astimezone(BERLIN).hour == 3
    assert got[1] == datetime(2026, 3, 28, 1, 30, tzinfo=UTC)  # 02:30 CET
    assert got[3] == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)  # 02:30 CEST


def test_a_daily_time_that_exists_twice_fires_once() -> None:
    t = Timing(cron="30 2 * * *", tz="Europe/Berlin")
    after = datetime(2026, 10, 23, tzinfo=BERLIN)
    got = fire_times(t, after, datetime(2026, 10, 27, 23, 59, tzinfo=BERLIN), anchor=after)
    assert _days(got) == [date(2026, 10, d) for d in range(23, 28)]
    assert got[2] == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # the first 02:30 (CEST)
    assert got[3] == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)  # 02:30 CET


def test_a_cursor_inside_the_repeated_hour_does_not_fire_the_day_again() -> None:
    t = Timing(cron="30 2 * * *", tz="Europe/Berlin")
    # 02:20 CET, the second pass of the wall clock: the 02:30 CEST fire is already past
    cursor = datetime(2026, 10, 25, 1, 20, tzinfo=UTC)
    got = fire_times(t, cursor, cursor + timedelta(days=1, hours=1), anchor=cursor)
    assert got == [datetime(2026, 10, 26, 1, 30, tzinfo=UTC)]
    # fired in two slices around the fold, the day still fires once
    start = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    slices = [start + timedelta(minutes=10 * k) for k in range(0, 24)]
    fired = [f for a, b in pairwise(slices) for f in fire_times(t, a, b, anchor=start)]
    assert fired == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]


@pytest.mark.parametrize(("day", "hours"), [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25)])
def test_hourly_cron_fires_every_real_hour_of_a_transition_day(day: date, hours: int) -> None:
    t = Timing(cron="0 * * * *", tz="Europe/Berlin")
    after, until = _local_day(day, BERLIN)
    got = fire_times(t, after, until, anchor=after)
    first = datetime(day.year, day.month, day.day, tzinfo=BERLIN).astimezone(UTC)
    assert got == [first + timedelta(hours=h) for h in range(hours)]
    assert len(set(got)) == hours


def test_next_fire_times() -> None:
    t = Timing(cron="0 9 * * 1-5", tz="Europe/Berlin")
    friday_noon = datetime(2026, 3, 20, 12, tzinfo=BERLIN)
    got = next_fire_times(t, friday_noon, 3, anchor=friday_noon)
    assert [g.astimezone(BERLIN) for g in got] == [
        datetime(2026, 3, d, 9, tzinfo=BERLIN) for d in (23, 24, 25)
    ]
    ending = Timing(every_s=60, end_at=T0 + timedelta(minutes=2))
    assert next_fire_times(ending, T0, 5, anchor=T0) == [
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=2),
    ]
    assert next_fire_times(ending, T0, 0, anchor=T0) == []


def test_times_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        fire_times(Timing(every_s=60), datetime(2026, 1, 1), T0, anchor=T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        fire_id("s", datetime(2026, 1, 1), "p")


# --- jitter and ids -----------------------------------------------------------------------------


def test_jitter_is_bounded_deterministic_and_spread() -> None:
    t = Timing(every_s=600, jitter_s=90)
    keys = [f"f-{n}" for n in range(2000)]
    offsets = [jitter_for(t, k) for k in keys]
    assert all(0 <= o <= 90 for o in offsets)
    assert offsets == [jitter_for(t, k) for k in keys]
    assert len(set(offsets)) > 1900
    assert min(offsets) < 10 and max(offsets) > 80  # spread over the range, not bunched
    assert jitter_for(Timing(every_s=600), "f-1") == 0.0


def test_fire_ids_are_stable_and_distinct() -> None:
    when = datetime(2026, 3, 29, 3, 0, tzinfo=BERLIN)
    same = fire_id("nightly", when.astimezone(UTC), "alice")
    assert fire_id("nightly", when, "alice") == same  # the zone it is written in does not matter
    assert same.startswith("f-") and len(same) == 22
    others = {
        fire_id("nightly", when, "bob"),
        fire_id("nightly", when + timedelta(microseconds=1), "alice"),
        fire_id("nightly2", when, "alice"),
        fire_id("a", when, "b c"),
        fire_id("a b", when, "c"),
    }
    assert same not in others and len(others) == 5


def test_an_interval_longer_than_a_year_is_refused() -> None:
    with pytest.raises(ScheduleError) as caught:
        check_timing(Timing(every_s=367 * 86_400))
    assert caught.value.field == "every_s" and "at most 366d" in str(caught.value)
    assert check_timing(Timing(every_s=366 * 86_400)).every_s == 366 * 86_400
