"""The console's runs list: filtered by task, profile, schedule, status and date, newest first,
50 to a page, updated live.

The filters are a GET form, so a filtered list is a link that can be shared or reloaded (and
the live refresh fetches the same URL). A value that cannot be used (a date that does not parse,
an unknown status, a negative offset) is answered with the form and a message saying which and
why, never a server error. Which runs exist for the viewer is the service's business: a
``user`` sees runs on profiles granted to it, whatever the filters name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, get_args
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from runtime.console.web import Viewing, page
from runtime.records import RunRecord, RunStatus

__all__ = [
    "PAGE_SIZE",
    "REFRESH_HEADER",
    "STATUSES",
    "RunFilters",
    "RunRow",
    "parse_when",
    "router",
    "run_rows",
]

router = APIRouter()

PAGE_SIZE = 50
"""Runs on one page of the list."""
STATUSES: tuple[str, ...] = get_args(RunStatus)
"""Every run status, in the order the filter offers them."""
_TEXT_MAX = 200
_OFFSET_MAX = 10_000_000
_ERROR_SHORT = 120
_LIVE = frozenset({"queued", "running", "waiting_approval"})
REFRESH_HEADER = "X-Console-Part"
"""Sent by the console's script when it fetches a page again to swap one part (its id)."""


def parse_when(value: str, *, end_of_day: bool = False) -> datetime:
    """A date (``2025-06-01``) or a date and time (``2025-06-01T14:30``, with or without a zone;
    none means UTC) as an aware datetime. A bare date as an upper bound (``end_of_day``) means
    the end of that day. ValueError with a message a person can act on if it is neither."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
            return day + timedelta(days=1) if end_of_day else day
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"'{text}' is not a date: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class RunFilters:
    """The runs list's filters as the form sent them (kept as typed, for the form), and what
    they mean once checked; ``problems`` says what could not be used."""

    task: str = ""
    profile: str = ""
    schedule: str = ""
    status: str = ""
    since: str = ""
    until: str = ""
    offset: int = 0
    since_at: datetime | None = None
    until_at: datetime | None = None
    problems: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> RunFilters:
        """The filters of a query string, checked."""
        got = cls()
        for name in _FIELDS:
            setattr(got, name, query.get(name, "").strip())
        for name in ("task", "profile", "schedule"):
            if len(getattr(got, name)) > _TEXT_MAX:
                got.problems.append(f"{name}: at most {_TEXT_MAX} characters")
        if got.status and got.status not in STATUSES:
            got.problems.append(
                f"status '{got.status}' is not a run status: expected one of {', '.join(STATUSES)}"
            )
        for name, end in (("since", False), ("until", True)):
            text = getattr(got, name)
            if not text:
                continue
            try:
                setattr(got, f"{name}_at", parse_when(text, end_of_day=end))
            except ValueError as exc:
                got.problems.append(f"{name}: {exc}")
        if got.since_at and got.until_at and got.since_at >= got.until_at:
            got.problems.append("since: must be before until")
        got.offset = got._offset(query.get("offset", "").strip())
        return got

    def _offset(self, text: str) -> int:
        if not text:
            return 0
        if not text.isdigit() or int(text) > _OFFSET_MAX:
            self.problems.append(f"offset '{text}': expected a whole number from 0")
            return 0
        return int(text)

    @property
    def active(self) -> bool:
        """Whether any filter narrows the list."""
        return any(getattr(self, k) for k in _FIELDS)

    def query(self, offset: int) -> str:
        """The query string of these filters at ``offset`` (for the pager's links)."""
        pairs = [(k, getattr(self, k)) for k in _FIELDS if getattr(self, k)]
        if offset:
            pairs.append(("offset", str(offset)))
        return urlencode(pairs)


_FIELDS = ("task", "profile", "schedule", "status", "since", "until")


@dataclass(frozen=True)
class RunRow:
    """One run as the list shows it."""

    run: RunRecord
    seconds: float | None
    """How long it took (None while it goes)."""
    error: str
    """The error's first line, shortened."""

    @property
    def live(self) -> bool:
        """Whether the run is still queued, going or waiting for a person."""
        return self.run.status in _LIVE


def _short(error: str | None) -> str:
    if not error:
        return ""
    line = error.strip().splitlines()[0] if error.strip() else ""
    return line if len(line) <= _ERROR_SHORT else line[: _ERROR_SHORT - 1] + "…"


def run_rows(runs: list[RunRecord]) -> list[RunRow]:
    """The list's rows for ``runs``."""
    return [
        RunRow(
            r,
            (r.finished_at - r.started_at).total_seconds() if r.finished_at else None,
            _short(r.error),
        )
        for r in runs
    ]


@router.get("/runs", response_class=HTMLResponse)
async def runs_page(viewer: Viewing) -> HTMLResponse:
    """The runs the viewer may see, filtered, newest first, one page of 50."""
    filters = RunFilters.parse(viewer.request.query_params)
    services = viewer.rt.services
    profiles: list[str] = []
    schedules: list[str] = []
    # A live refresh swaps the table only: the names the form suggests are not read again.
    if viewer.request.headers.get(REFRESH_HEADER) != "runs":
        profiles = [
            e.record.name
            for e in await services.profiles.list(viewer.actor)
            if await services.runs.may_see(viewer.actor, e.record.name)
        ]
        schedules = [s.name for s in await services.schedules.list(viewer.actor)]
    context: dict[str, Any] = {
        "section": "runs",
        "filters": filters,
        "statuses": STATUSES,
        "profiles": profiles,
        "schedules": schedules,
    }
    if filters.problems:
        return page(viewer, "runs.html.j2", 400, rows=[], older=None, newer=None, **context)
    found = await services.runs.list(
        viewer.actor,
        PAGE_SIZE + 1,
        filters.profile or None,
        filters.schedule or None,
        task=filters.task or None,
        status=filters.status or None,
        since=filters.since_at,
        until=filters.until_at,
        offset=filters.offset,
    )
    older = filters.query(filters.offset + PAGE_SIZE) if len(found) > PAGE_SIZE else None
    newer = filters.query(max(0, filters.offset - PAGE_SIZE)) if filters.offset else None
    return page(
        viewer,
        "runs.html.j2",
        rows=run_rows(found[:PAGE_SIZE]),
        older=older,
        newer=newer,
        **context,
    )
