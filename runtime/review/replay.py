"""A run's replay: the review of :mod:`runtime.review.model` as HTML.

:func:`render_replay` writes one self-contained file that works offline: every screenshot
embedded as a ``data:`` URI, the stylesheet and the script inlined, and a Content-Security-Policy
that allows exactly that script and stylesheet (by their hashes) and ``data:`` images, nothing
else, so even a missed escape of page text could not run a script or load anything.
:func:`replay_context` is what the body template needs; the console's run page renders the same
body with image URLs instead of embedded images.

A screenshot is shown only if the path its record names resolves (links followed) to a JPEG or
PNG inside the run's folder (:func:`image_file`): a record can never make a replay read or serve
another file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from PIL import Image

from runtime.review.model import ApprovalView, Box, RunReview, StepView

__all__ = [
    "LIVE_STATUSES",
    "Figure",
    "ImageFile",
    "ImageSource",
    "StepShow",
    "image_file",
    "render_replay",
    "replay_context",
    "replay_filename",
    "seconds_text",
    "usd",
    "when",
]

LIVE_STATUSES = frozenset({"queued", "running", "waiting_approval"})
"""A run in one of these may still record steps."""

_MIMES = {"JPEG": "image/jpeg", "PNG": "image/png"}


@dataclass(frozen=True)
class ImageFile:
    """A screenshot inside a run folder: where it is, its path relative to the folder, its
    type and its size in pixels."""

    path: Path
    relative: str
    mime: str
    width: int
    height: int


ImageSource = Callable[[ImageFile], str]
"""Where a page loads an image from: a ``data:`` URI (the file) or a URL (the console)."""


def image_file(run_dir: Path, recorded: str | None) -> ImageFile | None:
    """The JPEG or PNG that ``recorded`` (relative to ``run_dir``, or absolute) names, if it
    resolves inside ``run_dir``; None for anything else (outside, a link out, not an image)."""
    if not recorded:
        return None
    try:
        root = run_dir.resolve(strict=True)
        path = (root / recorded).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None
    if not path.is_relative_to(root) or not path.is_file():
        return None
    try:
        with Image.open(path) as image:
            kind, (width, height) = image.format, image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    mime = _MIMES.get(kind or "")
    if mime is None or width <= 0 or height <= 0:
        return None
    return ImageFile(path, path.relative_to(root).as_posix(), mime, width, height)


def _data_uri(image: ImageFile) -> str:
    return f"data:{image.mime};base64,{base64.b64encode(image.path.read_bytes()).decode()}"


def replay_filename(run_id: str) -> str:
    """The replay file's default name: ``replay-<run id>.html`` (only safe characters)."""
    return f"replay-{re.sub(r'[^A-Za-z0-9._-]', '_', run_id)}.html"


# --- text -----------------------------------------------------------------------------------


def usd(value: float | None) -> str:
    """A cost: ``$0.0006``, ``$12.40``."""
    value = value or 0.0
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def seconds_text(seconds: float | None) -> str:
    """A duration: ``240 ms``, ``3.5 s``, ``4m 05s``, ``1h 02m`` ('' when unknown)."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def when(value: datetime | None) -> str:
    """A time in UTC: ``2026-11-25 21:33:01Z`` ('' when unknown)."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


# --- the page's parts -----------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One screenshot on the page, with the target's box in % of the image when known.

    ``src`` is empty when an earlier figure already carries the same image (``same_as`` names
    that figure's id; the script copies its source when the step is shown)."""

    id: str
    src: str
    same_as: str
    caption: str
    width: int
    height: int
    box: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class StepShow:
    """A step as the replay shows it."""

    view: StepView
    figures: list[Figure]
    approval_figure: Figure | None

    @property
    def number(self) -> int:
        """The step's number (1-based)."""
        return self.view.number

    @property
    def gated(self) -> bool:
        """A person was asked about this step."""
        return self.view.approval is not None

    @property
    def attempts(self) -> int:
        """How many model attempts the step made."""
        return len(self.view.models)


def _percent(box: Box, image: ImageFile) -> tuple[float, float, float, float] | None:
    """``box`` (viewport px) in % of ``image``, clipped to it; None if nothing is left."""
    left = min(max(box.x, 0.0), image.width)
    top = min(max(box.y, 0.0), image.height)
    right = min(max(box.x + box.width, 0.0), image.width)
    bottom = min(max(box.y + box.height, 0.0), image.height)
    if right - left < 1 or bottom - top < 1:
        return None
    return (
        round(left / image.width * 100, 3),
        round(top / image.height * 100, 3),
        round((right - left) / image.width * 100, 3),
        round((bottom - top) / image.height * 100, 3),
    )


class _Figures:
    """Makes figures; with ``share``, each picture's data goes into the page once (screenshots
    of a page that did not change between steps are the same bytes)."""

    def __init__(self, run_dir: Path, source: ImageSource, share: bool) -> None:
        self.run_dir = run_dir
        self.source = source
        self.share = share
        self.first: dict[Path | bytes, str] = {}

    def image(self, recorded: str | None) -> ImageFile | None:
        return image_file(self.run_dir, recorded)

    def make(self, image: ImageFile, fig_id: str, caption: str, box: Box | None = None) -> Figure:
        key = hashlib.sha256(image.path.read_bytes()).digest() if self.share else image.path
        earlier = self.first.setdefault(key, fig_id)
        shared = self.share and earlier != fig_id
        return Figure(
            id=fig_id,
            src="" if shared else self.source(image),
            same_as=earlier if shared else "",
            caption=caption,
            width=image.width,
            height=image.height,
            box=_percent(box, image) if box is not None else None,
        )


def _step_figures(
    make: _Figures, step: StepView, own: ImageFile | None, before: ImageFile | None
) -> list[Figure]:
    """The step's pictures; ``before``: the previous step's screenshot, if it shows the page
    this step started on."""
    n = step.number
    if step.box is not None and step.navigated and before is not None:
        # The box was measured on the page the step left: outline it on the screenshot of
        # that page, then show where the step led.
        figures = [make.make(before, f"shot-{n}-before", "Before: the target", step.box)]
        if own is not None:
            figures.append(make.make(own, f"shot-{n}", "After the step"))
        return figures
    if own is None:
        return []
    if step.box is not None and not step.navigated:
        return [make.make(own, f"shot-{n}", "After the step; the target outlined", step.box)]
    return [make.make(own, f"shot-{n}", "After the step")]


def _approval_figure(make: _Figures, step: StepView, approval: ApprovalView) -> Figure | None:
    image = make.image(approval.screenshot)
    if image is None:
        return None
    return make.make(image, f"shot-{step.number}-approval", "What the approver saw")


def replay_context(
    review: RunReview,
    run_dir: Path,
    image_src: ImageSource,
    *,
    share_images: bool = False,
    live_refresh: bool = False,
) -> dict[str, Any]:
    """What ``replay_body.html.j2`` renders: the review, its steps with their screenshots (each
    image's ``src`` from ``image_src``; with ``share_images`` an image is given once), and text
    helpers. ``live_refresh``: the summary refreshes on ``runs`` events while the run is live."""
    make = _Figures(run_dir, image_src, share_images)
    steps: list[StepShow] = []
    previous: tuple[ImageFile | None, str | None] = (None, None)
    for view in review.steps:
        own = make.image(view.screenshot)
        shot, left_at = previous
        before = shot if left_at is not None and left_at == view.url_before else None
        approval = view.approval
        steps.append(
            StepShow(
                view=view,
                figures=_step_figures(make, view, own, before),
                approval_figure=_approval_figure(make, view, approval) if approval else None,
            )
        )
        previous = (own, view.url_after)
    live = review.run.status in LIVE_STATUSES
    trace = str(run_dir / review.trace) if review.trace else None
    return {
        "review": review,
        "run": review.run,
        "summary": review.summary,
        "steps": steps,
        "live": live,
        "refresh": live and live_refresh,
        "trace_path": trace,
        "trace_command": f"playwright show-trace {shlex.quote(trace)}" if trace else None,
        "output_json": _json(review.output) if review.output is not None else None,
        "usd": usd,
        "seconds": seconds_text,
        "ms": lambda value: seconds_text((value or 0.0) / 1000),
        "when": when,
        "as_json": _json,
    }


# --- the file ---------------------------------------------------------------------------------

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("runtime.review", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _static(name: str) -> str:
    text = (resources.files("runtime.review") / "static" / name).read_text(encoding="utf-8")
    closing = "</style" if name.endswith(".css") else "</script"
    if closing in text.lower():
        raise ValueError(f"{name} cannot be inlined: it contains {closing}")
    return text


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _policy(css: str, js: str) -> str:
    """The file's Content-Security-Policy: its own stylesheet and script, ``data:`` images."""
    return (
        f"default-src 'none'; img-src data:; style-src '{_sha256(css)}'; "
        f"script-src '{_sha256(js)}'; base-uri 'none'; form-action 'none'"
    )


def render_replay(review: RunReview, run_dir: Path) -> str:
    """The replay of ``review`` as one self-contained HTML file (images from ``run_dir``)."""
    css, js = _static("replay.css"), _static("replay.js")
    context = replay_context(review, run_dir, _data_uri, share_images=True)
    return _ENV.get_template("replay.html.j2").render(
        csp=_policy(css, js), css=Markup(css), js=Markup(js), **context
    )
