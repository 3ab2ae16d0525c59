"""The options ``corral schedules add`` and ``update`` share, and reading them into a schedule's
timing and policy (bad input is a :class:`ScheduleError` naming the flag: exit 2)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from pydantic import BaseModel, ValidationError

from runtime.errors import ScheduleError
from runtime.schedules import Notify, Overlap, SchedulePolicy, Timing, parse_duration
from runtime.task import read_task_text

__all__ = [
    "ScheduleFlags",
    "parse_time",
    "policy_from",
    "read_task",
    "schedule_options",
    "timing_from",
]

_OVERLAPS: tuple[str, ...] = get_args(Overlap)
_NOTICES: tuple[str, ...] = get_args(Notify)
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ScheduleFlags:
    """The options ``add`` and ``update`` share, as given (None: not given)."""

    cron: str | None
    tz: str | None
    every: str | None
    profiles: tuple[str, ...]
    vars_: tuple[str, ...]
    overlap: str | None
    catchup: str | None
    jitter: str | None
    retries: int | None
    backoff: str | None
    pause_after: str | None
    origin_limit: str | None
    concurrency: str | None
    start: str | None
    end: str | None
    exclude_dates: tuple[str, ...]
    notify: str | None
    canary: str | None = None
    canary_models: str | None = None


def schedule_options(command: Callable[..., None]) -> Callable[..., None]:
    """The timing and policy options of ``add`` and ``update``."""
    options = [
        click.option("--cron", help="5-field cron expression (minute hour day month weekday)"),
        click.option("--tz", help="IANA time zone for --cron and for times (default UTC)"),
        click.option("--every", help="fixed interval instead of --cron: 30s, 10m, 1h, 1h30m"),
        click.option("--profile", "profiles", multiple=True, help="run on this profile (repeat)"),
        click.option("--var", "vars_", multiple=True, help="NAME=VALUE for the task (repeat)"),
        click.option("--overlap", type=click.Choice(_OVERLAPS), help="while the last run goes"),
        click.option("--catchup", help="missed fires younger than this still run (0: none)"),
        click.option("--jitter", help="start each fire up to this much later (0: none)"),
        click.option("--retries", type=click.IntRange(0, 20), help="extra attempts on failure"),
        click.option("--backoff", help="wait before the first retry; doubles each time"),
        click.option("--pause-after", help="pause after N failed fires in a row, or 'never'"),
        click.option("--origin-limit", help="runs at once on the task's site, or 'none'"),
        click.option("--concurrency", help="runs at once of this schedule, or 'none'"),
        click.option("--start", help="no fire before this ISO 8601 time ('none': no bound)"),
        click.option("--end", help="no fire after this ISO 8601 time ('none': no bound)"),
        click.option(
            "--exclude-date", "exclude_dates", multiple=True, help="YYYY-MM-DD with no fire"
        ),
        click.option("--notify", help="webhook notices: failure,approval,pause or 'none'"),
        click.option(
            "--canary",
            help="run this share of the fires (0-100%, e.g. 10%) with --canary-models; "
            "'none' stops it",
        ),
        click.option(
            "--canary-models",
            help="the candidate model config file (corral.toml format) canary fires use",
        ),
        click.option("--json", "as_json", is_flag=True, help="machine output on stdout"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


# --- reading the options ------------------------------------------------------------------------


def _zone(tz: str, flag: str = "--tz") -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"{flag} {tz!r}: unknown time zone", field="tz") from exc


def parse_time(text: str, flag: str, tz: str) -> datetime:
    """An ISO 8601 time; one without an offset is read in ``tz``."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ScheduleError(
            f"{flag} {text!r}: expected an ISO 8601 time like 2026-04-01T09:00 or "
            "2026-04-01T09:00+02:00",
            field=flag,
        ) from exc
    return value if value.tzinfo else value.replace(tzinfo=_zone(tz))


def _bound(text: str, flag: str, tz: str) -> datetime | None:
    return None if text.strip().lower() == "none" else parse_time(text, flag, tz)


def _duration(text: str, flag: str, zero_ok: bool = False) -> float:
    if zero_ok and text.strip() in ("0", "0s"):
        return 0.0
    return parse_duration(text, flag)


def _count(text: str, flag: str, none_word: str) -> int | None:
    """A whole number of at least 1, or ``none_word`` for no limit."""
    cleaned = text.strip().lower()
    if cleaned == none_word:
        return None
    if not cleaned.isdigit() or int(cleaned) < 1:
        raise ScheduleError(f"{flag} {text!r}: expected a whole number >= 1 or {none_word!r}")
    return int(cleaned)


def _notices(text: str) -> list[str]:
    if text.strip().lower() == "none":
        return []
    wanted = [w.strip() for w in text.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in _NOTICES]
    if unknown or not wanted:
        raise ScheduleError(
            f"--notify {text!r}: expected some of {','.join(_NOTICES)}, or 'none'", field="notify"
        )
    return list(dict.fromkeys(wanted))


def _share(text: str) -> float:
    """``10%`` (or ``10``) as 0.1; 0 to 100%."""
    cleaned = text.strip().removesuffix("%").strip()
    try:
        value = float(cleaned)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:
        raise ScheduleError(
            f"--canary {text!r}: expected a share from 0% to 100%, e.g. 10%", field="canary"
        )
    return value / 100


def _models_file(text: str) -> str:
    """The candidate config's absolute path; it must exist and be a valid model config."""
    from runtime.models.config import load_models_config
    from runtime.models.types import ModelConfigError

    path = Path(text).expanduser()
    if not path.is_file():
        raise ScheduleError(
            f"--canary-models {text!r}: no such file (a model config, corral.toml format)",
            field="canary_models",
        )
    try:
        load_models_config(path.parent, path)
    except ModelConfigError as exc:
        raise ScheduleError(f"--canary-models: {exc}", field="canary_models") from exc
    return str(path.resolve())


def _canary(flags: ScheduleFlags, current: dict[str, Any] | None) -> dict[str, Any] | None:
    """The canary policy the flags ask for on top of ``current`` (None: no canary)."""
    if flags.canary is not None and flags.canary.strip().lower() == "none":
        if flags.canary_models is not None:
            raise ScheduleError("--canary none: give no --canary-models with it", field="canary")
        return None
    share = _share(flags.canary) if flags.canary is not None else None
    models = _models_file(flags.canary_models) if flags.canary_models is not None else None
    if current is None and (share is None or models is None):
        missing = "--canary-models FILE" if models is None else "--canary SHARE"
        raise ScheduleError(f"a canary needs both --canary and --canary-models: give {missing}")
    base = current or {}
    return {
        "share": share if share is not None else base["share"],
        "models": models if models is not None else base["models"],
    }


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError as exc:
        raise ScheduleError(f"--exclude-date {text!r}: expected YYYY-MM-DD") from exc


def _validated(model: type[M], data: dict[str, Any]) -> M:
    """``model`` from ``data``; a field that does not validate is bad input naming it."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ScheduleError(f"{where}: {first['msg']}", field=where) from exc


def timing_from(flags: ScheduleFlags, base: Timing | None) -> Timing | None:
    """The timing the flags ask for on top of ``base`` (None: the flags change nothing)."""
    if flags.cron is not None and flags.every is not None:
        raise ScheduleError("give one of --cron and --every, not both", field="cron")
    if base is None and flags.cron is None and flags.every is None:
        raise ScheduleError("give --cron EXPR (with --tz ZONE) or --every DURATION", field="cron")
    data = base.model_dump() if base else {}
    if flags.cron is not None:
        data.update(cron=flags.cron, every_s=None)
    if flags.every is not None:
        data.update(every_s=parse_duration(flags.every, "--every"), cron=None)
    if flags.tz is not None:
        _zone(flags.tz)
        data["tz"] = flags.tz
    tz = str(data.get("tz", "UTC"))
    if flags.start is not None:
        data["start_at"] = _bound(flags.start, "--start", tz)
    if flags.end is not None:
        data["end_at"] = _bound(flags.end, "--end", tz)
    if flags.jitter is not None:
        data["jitter_s"] = _duration(flags.jitter, "--jitter", zero_ok=True)
    if flags.exclude_dates:
        data["exclude_dates"] = [_date(d) for d in flags.exclude_dates]
    if base is not None and data == base.model_dump():
        return None
    return _validated(Timing, data)


def policy_from(flags: ScheduleFlags, base: SchedulePolicy) -> SchedulePolicy | None:
    """``base`` with what the flags change (None: they change nothing)."""
    data = base.model_dump()
    if flags.overlap is not None:
        data["overlap"] = flags.overlap
    if flags.catchup is not None:
        data["catchup_s"] = _duration(flags.catchup, "--catchup", zero_ok=True)
    if flags.retries is not None:
        data["retries"] = flags.retries
    if flags.backoff is not None:
        data["backoff_s"] = _duration(flags.backoff, "--backoff")
        # a first wait longer than the cap would be cut short: the cap follows it
        data["max_backoff_s"] = max(data["max_backoff_s"], data["backoff_s"])
    if flags.pause_after is not None:
        data["pause_after"] = _count(flags.pause_after, "--pause-after", "never")
    if flags.origin_limit is not None:
        data["origin_limit"] = _count(flags.origin_limit, "--origin-limit", "none")
    if flags.concurrency is not None:
        data["concurrency"] = _count(flags.concurrency, "--concurrency", "none")
    if flags.notify is not None:
        data["notify"] = _notices(flags.notify)
    if flags.canary is not None or flags.canary_models is not None:
        data["canary"] = _canary(flags, data.get("canary"))
    return None if data == base.model_dump() else _validated(SchedulePolicy, data)


def read_task(path: str) -> tuple[str, str]:
    """The task file's text and its resolved path (the text is what gets registered)."""
    return read_task_text(Path(path)), str(Path(path).expanduser().resolve())
