"""The console's usage page: what models cost over 7, 30 or 90 days, per day (a chart drawn on
the server as SVG), per task, model and role, and the runs a budget cap stopped.

The chart is plain SVG markup: bars are ``<rect>`` elements with CSS classes, every number is
text in the page (a bar's ``<title>`` and the per-day table), and nothing runs in the browser.
The figures are the viewer's: a ``user`` counts only runs on profiles granted to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from runtime.console.web import Viewing, page
from runtime.records import UsageRow

__all__ = ["PERIODS", "Bar", "Chart", "Total", "chart", "router", "totals"]

router = APIRouter()

PERIODS = (7, 30, 90)
"""The periods the page offers, in days (the default is the middle one)."""
_DEFAULT = 30

_WIDTH, _HEIGHT = 720.0, 180.0
_LEFT, _RIGHT, _TOP, _BOTTOM = 64.0, 8.0, 12.0, 28.0


@dataclass
class Total:
    """Model calls summed over one key (a day, a task, a model, a role) or all of them."""

    key: str
    calls: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        """Input and output tokens."""
        return self.input_tokens + self.output_tokens

    def add(self, row: UsageRow) -> None:
        """Count ``row`` in."""
        self.calls += row.calls
        self.failed += row.failed
        self.input_tokens += row.input_tokens
        self.output_tokens += row.output_tokens
        self.cached_tokens += row.cached_tokens
        self.cost_usd += row.cost_usd


def totals(
    rows: Iterable[UsageRow], key: Callable[[UsageRow], str], keys: Iterable[str] = ()
) -> list[Total]:
    """``rows`` summed per ``key`` (every one of ``keys`` present, even with nothing), in
    ``keys`` order then by cost, highest first."""
    sums = {k: Total(k) for k in keys}
    for row in rows:
        sums.setdefault(key(row), Total(key(row))).add(row)
    if keys:
        return list(sums.values())
    return sorted(sums.values(), key=lambda t: (-t.cost_usd, t.key))


@dataclass(frozen=True)
class Bar:
    """One day's bar: where it is drawn and its value."""

    day: str
    value: float
    x: float
    y: float
    width: float
    height: float
    tick: str
    """The day under the bar ('' where the axis shows no label)."""


@dataclass(frozen=True)
class Chart:
    """A bar chart's geometry in SVG user units (``viewBox="0 0 width height"``)."""

    title: str
    money: bool
    """Values are US dollars (else counts)."""
    top: float
    """The value at the top of the scale."""
    bars: list[Bar] = field(default_factory=list)
    width: float = _WIDTH
    height: float = _HEIGHT
    left: float = _LEFT
    plot_top: float = _TOP
    base: float = _HEIGHT - _BOTTOM
    """The y of the baseline."""


def chart(title: str, days: list[Total], value: Callable[[Total], float], money: bool) -> Chart:
    """Bars of ``value`` per day, scaled to the highest."""
    values = [value(d) for d in days]
    top = max(values, default=0.0)
    step = (_WIDTH - _LEFT - _RIGHT) / max(len(days), 1)
    every = max(1, round(len(days) / 8))
    plot = _HEIGHT - _TOP - _BOTTOM
    bars = []
    for i, (day, v) in enumerate(zip(days, values, strict=True)):
        height = round(plot * v / top, 2) if top else 0.0
        bars.append(
            Bar(
                day=day.key,
                value=v,
                x=round(_LEFT + i * step + step * 0.1, 2),
                y=round(_TOP + plot - height, 2),
                width=round(step * 0.8, 2),
                height=height,
                tick=day.key[5:] if (len(days) - 1 - i) % every == 0 else "",
            )
        )
    return Chart(title, money, top, bars)


@router.get("/usage", response_class=HTMLResponse)
async def usage_page(viewer: Viewing) -> HTMLResponse:
    """Cost and tokens per day, task, model and role over the chosen period."""
    asked = viewer.request.query_params.get("days", "").strip() or str(_DEFAULT)
    if asked not in {str(p) for p in PERIODS}:
        message = f"days '{asked}': expected one of {', '.join(map(str, PERIODS))}"
        return page(
            viewer, "usage.html.j2", 400, section="usage", problem=message, periods=PERIODS, days=0
        )
    days = int(asked)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = today - timedelta(days=days - 1)
    usage = await viewer.rt.services.runs.usage(viewer.actor, since)
    keys = [(since + timedelta(days=i)).date().isoformat() for i in range(days)]
    per_day = totals(usage.rows, lambda r: r.day, keys)
    overall = totals(usage.rows, lambda r: "all")
    return page(
        viewer,
        "usage.html.j2",
        section="usage",
        problem=None,
        periods=PERIODS,
        days=days,
        since=since,
        total=overall[0] if overall else Total("all"),
        per_day=per_day,
        cost_chart=chart("Cost per day (USD)", per_day, lambda t: t.cost_usd, True),
        token_chart=chart("Tokens per day (input + output)", per_day, lambda t: t.tokens, False),
        by_task=totals(usage.rows, lambda r: r.task),
        by_model=totals(usage.rows, lambda r: r.model),
        by_role=totals(usage.rows, lambda r: r.role),
        capped=usage.capped,
    )
