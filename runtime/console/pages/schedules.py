"""The console's schedules: the list, one schedule's page (next fires, recent fires, last runs)
and its actions: pause, resume, run now.

Which schedules a viewer sees, and who may act on one (its owner or an admin), is the
schedule service's business; a form here only carries the CSRF token (:data:`Posting`). After an
action the browser is sent back to the schedule's page (303), which says what was done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlencode

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse

from runtime.console.pages.runs import run_rows
from runtime.console.web import PREFIX, Posting, Viewing, page
from runtime.schedules import Fire, Schedule, Timing

__all__ = ["ScheduleRow", "router", "timing_words"]

router = APIRouter()

_NEXT = 5
_FIRES = 20
_RUNS = 10
_REASON_MAX = 500
_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_DAY_NAMES = {d[:3].lower(): i for i, d in enumerate(_DAYS)}
_UNITS = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))


def _span(seconds: float) -> str:
    """``5400`` -> ``1 hour 30 minutes``."""
    left, parts = round(seconds), []
    for unit, size in _UNITS:
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(parts) or "0 seconds"


def _every(seconds: float) -> str:
    """``every 5 minutes``, ``every hour``."""
    for unit, size in _UNITS:
        if seconds == size:
            return f"every {unit}"
    return f"every {_span(seconds)}"


def _weekday(field: str) -> str | None:
    """The weekday field in words (``1-5`` -> Monday to Friday), or None if not simple."""
    words = []
    for part in field.split(","):
        ends = part.split("-")
        if len(ends) > 2:
            return None
        days = [
            _DAY_NAMES.get(e.lower(), int(e) % 7 if e.isdigit() and int(e) <= 7 else -1)
            for e in ends
        ]
        if -1 in days:
            return None
        words.append(" to ".join(_DAYS[d] for d in days))
    return ", ".join(words)


def _cron_words(cron: str) -> str | None:
    """The common cron shapes in words; None for any other (shown as the expression)."""
    fields = cron.split()
    if len(fields) != 5:
        return None
    minute, hour, dom, month, dow = fields
    if (hour, dom, month, dow) == ("*", "*", "*", "*"):
        if minute == "*":
            return "every minute"
        if minute.startswith("*/") and minute[2:].isdigit():
            return _every(int(minute[2:]) * 60)
        if minute.isdigit():
            return f"every hour at minute {int(minute)}"
        return None
    if not (minute.isdigit() and hour.isdigit()) or month != "*":
        return None
    at = f"at {int(hour):02d}:{int(minute):02d}"
    if dom == "*" and dow == "*":
        return f"daily {at}"
    if dom == "*":
        days = _weekday(dow)
        return f"{at} on {days}" if days else None
    if dow == "*" and dom.isdigit():
        return f"{at} on day {int(dom)} of every month"
    return None


def timing_words(t: Timing) -> str:
    """When a schedule fires, in words: ``daily at 09:00 (Europe/Berlin)``, ``every 5 minutes``;
    a cron expression without a plain reading is shown as it is."""
    if t.cron:
        said = _cron_words(t.cron)
        words = f"{said} ({t.tz})" if said else f"cron {t.cron} ({t.tz})"
    else:
        words = _every(t.every_s or 0)
    if t.jitter_s:
        words += f", up to {_span(t.jitter_s)} late (jitter)"
    if t.start_at:
        words += f", from {t.start_at.isoformat()}"
    if t.end_at:
        words += f", until {t.end_at.isoformat()}"
    if t.exclude_dates:
        words += f", except on {len(t.exclude_dates)} date{'s' if len(t.exclude_dates) > 1 else ''}"
    return words


@dataclass(frozen=True)
class ScheduleRow:
    """A schedule as the list shows it: when it fires in words, its next and latest fire."""

    schedule: Schedule
    when: str
    next_fire: datetime | None
    last_fire: Fire | None


@router.get("/schedules", response_class=HTMLResponse)
async def schedules_page(viewer: Viewing) -> HTMLResponse:
    """Every schedule the viewer may see, with its next and latest fire."""
    service = viewer.rt.services.schedules
    rows = []
    for s in await service.list(viewer.actor):
        upcoming = await service.next_fires(viewer.actor, s.name, 1)
        latest = await service.fires(viewer.actor, s.name, 1)
        rows.append(
            ScheduleRow(
                s,
                timing_words(s.timing),
                upcoming[0] if upcoming else None,
                next(iter(latest), None),
            )
        )
    return page(viewer, "schedules.html.j2", section="schedules", rows=rows)


_DONE = {
    "paused": "Paused: no new fires until it is resumed (a run going now goes on).",
    "resumed": "Resumed: it fires again from now on (fires due while paused are not made up).",
    "queued": "Queued {n} fire(s) for now: the server starts them on its next tick.",
    "nothing": "Nothing to change: it already was so.",
}


def _done(kind: str, count: str) -> str | None:
    text = _DONE.get(kind)
    if text is None:
        return None
    return text.format(n=int(count) if count.isdigit() else 0)


@router.get("/schedules/{name}", response_class=HTMLResponse)
async def schedule_page(name: str, viewer: Viewing) -> HTMLResponse:
    """One schedule: what, where and when, its next fires, recent fires and last runs."""
    services = viewer.rt.services
    schedule = await services.schedules.get(viewer.actor, name)
    query = viewer.request.query_params
    runs = await services.runs.list(viewer.actor, _RUNS, schedule=name)
    return page(
        viewer,
        "schedule.html.j2",
        section="schedules",
        schedule=schedule,
        when=timing_words(schedule.timing),
        next_fires=await services.schedules.next_fires(viewer.actor, name, _NEXT),
        fires=await services.schedules.fires(viewer.actor, name, _FIRES),
        rows=run_rows(runs),
        done=_done(query.get("done", ""), query.get("n", "")),
        reason_max=_REASON_MAX,
    )


def _back(name: str, done: str, **extra: int) -> RedirectResponse:
    query = urlencode({"done": done, **extra})
    return RedirectResponse(f"{PREFIX}/schedules/{quote(name, safe='')}?{query}", status_code=303)


@router.post("/schedules/{name}/pause")
async def pause(name: str, posted: Posting) -> RedirectResponse:
    """Pause a schedule (its owner or an admin), with an optional reason."""
    viewer = posted.viewer
    before = await viewer.rt.services.schedules.get(viewer.actor, name)
    reason = posted.field("reason").strip()[:_REASON_MAX] or None
    after = await viewer.rt.services.schedules.pause(viewer.actor, name, reason)
    return _back(name, "paused" if after.paused and not before.paused else "nothing")


@router.post("/schedules/{name}/resume")
async def resume(name: str, posted: Posting) -> RedirectResponse:
    """Resume a paused schedule (its owner or an admin)."""
    viewer = posted.viewer
    before = await viewer.rt.services.schedules.get(viewer.actor, name)
    after = await viewer.rt.services.schedules.resume(viewer.actor, name)
    return _back(name, "resumed" if before.paused and not after.paused else "nothing")


@router.post("/schedules/{name}/run")
async def run_now(name: str, posted: Posting) -> RedirectResponse:
    """A fire for now on each of the schedule's profiles (its owner or an admin)."""
    viewer = posted.viewer
    fires = await viewer.rt.services.schedules.run_now(viewer.actor, name)
    return _back(name, "queued", n=len(fires))
