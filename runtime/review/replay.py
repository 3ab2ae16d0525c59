"""A run's replay: the review of :mod:`runtime.review.model` as HTML.

:func:`render_replay` writes one self-contained file that works offline: every screenshot
embedded as a ``data:`` URI, the stylesheet and the script inlined, and a Content-Security-Policy
that allows exactly that script and stylesheet (by their hashes) and ``data:`` images, nothing
else, so even a missed escape of page text could not run a script or load anything.
:func:`replay_context` is what the body template needs; the console's run page renders the same
body with image URLs instead of embedded images.

A screenshot is shown only if the path its record names resolves (links followed) to a JPEG or
PNG inside the run's folder (:func:`image_file`): a record can never make a replay read or serve
another file. A host without the run's folder (the run was recorded on another one) reads the
screenshots from the object store instead (:func:`fetch_images`, before rendering), by the same
path taken as words alone: one that would leave the folder (``..``, another absolute path, NUL)
names no object, and what comes back is shown only if it is a JPEG or PNG.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import logging
import os
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2
from markupsafe import Markup
from PIL import Image

from runtime.objects import ObjectKeyError, ObjectStore, ObjectStoreError, check_key, run_key
from runtime.review.model import ApprovalView, Box, RunReview, StepView

__all__ = [
    "LIVE_STATUSES",
    "Figure",
    "ImageFile",
    "ImageSource",
    "StepShow",
    "fetch_images",
    "fetch_review_images",
    "image_file",
    "read_run_file",
    "render_replay",
    "replay_context",
    "replay_filename",
    "review_images",
    "run_relative",
    "seconds_text",
    "usd",
    "when",
]

LIVE_STATUSES = frozenset({"queued", "running", "waiting_approval"})
"""A run in one of these may still record steps."""

_MIMES = {"JPEG": "image/jpeg", "PNG": "image/png"}


@dataclass(frozen=True)
class ImageFile:
    """A screenshot of a run: its path relative to the run folder, its type, its size in
    pixels and its bytes."""

    relative: str
    mime: str
    width: int
    height: int
    data: bytes = b""


ImageSource = Callable[[ImageFile], str]
"""Where a page loads an image from: a ``data:`` URI (the file) or a URL (the console)."""

log = logging.getLogger(__name__)
_MISSING = object()
_FETCHES_AT_ONCE = 8


def run_relative(run_dir: Path, recorded: str) -> str | None:
    """``recorded`` (relative to ``run_dir``, or absolute) as a plain path inside the folder,
    judged by its words alone (no file is read); None if it would leave the folder."""
    if "\x00" in recorded:
        return None
    path = PurePosixPath(recorded)
    if path.is_absolute():
        try:
            path = path.relative_to(PurePosixPath(run_dir.as_posix()))
        except ValueError:
            return None
    try:
        return check_key(path.as_posix())
    except ObjectKeyError:
        return None


def _local(run_dir: Path, recorded: str) -> tuple[str, bytes] | object | None:
    """The file ``recorded`` names in this host's run folder: (relative path, bytes); None if
    it is not to be read (outside the folder, a link out, not a file); _MISSING if absent."""
    try:
        root = run_dir.resolve(strict=True)
        os.lstat(root / recorded)
    except FileNotFoundError:
        return _MISSING
    except (OSError, RuntimeError, ValueError):
        return None
    try:
        path = (root / recorded).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None
    if not path.is_relative_to(root) or not path.is_file():
        return None
    try:
        return path.relative_to(root).as_posix(), path.read_bytes()
    except OSError:
        return None


def _image(relative: str, data: bytes) -> ImageFile | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, (width, height) = image.format, image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    mime = _MIMES.get(kind or "")
    if mime is None or width <= 0 or height <= 0:
        return None
    return ImageFile(relative, mime, width, height, data)


def image_file(
    run_dir: Path, recorded: str | None, fetched: Mapping[str, bytes] | None = None
) -> ImageFile | None:
    """The JPEG or PNG that ``recorded`` (relative to ``run_dir``, or absolute) names, if it
    resolves inside ``run_dir``; None for anything else (outside, a link out, not an image).

    A file this host's run folder does not have is taken from ``fetched`` (what
    :func:`fetch_images` got from the object store), by its path inside the folder."""
    if not recorded:
        return None
    found = _local(run_dir, recorded)
    if found is _MISSING:
        relative = run_relative(run_dir, recorded)
        data = (fetched or {}).get(relative) if relative is not None else None
        return _image(relative, data) if relative is not None and data is not None else None
    if not isinstance(found, tuple):
        return None
    return _image(*found)


async def read_run_file(
    objects: ObjectStore, run_id: str, run_dir: Path, recorded: str
) -> bytes | None:
    """The bytes of the file ``recorded`` names in the run's folder (any kind: trace, download,
    result), from this host's copy when it has one, else from the object store; None when it
    is outside the folder (``..``, a link out) or nowhere."""
    found = _local(run_dir, recorded)
    if isinstance(found, tuple):
        data: bytes = found[1]
        return data
    if found is not _MISSING:
        return None
    relative = run_relative(run_dir, recorded)
    return await objects.get(run_key(run_id, relative)) if relative is not None else None


def review_images(review: RunReview) -> list[str]:
    """Every screenshot path the review's records name (steps and approvals)."""
    named = [s.screenshot for s in review.steps]
    named += [s.approval.screenshot for s in review.steps if s.approval is not None]
    return [n for n in named if n]


async def fetch_images(
    objects: ObjectStore, run_id: str, run_dir: Path, recorded: Iterable[str | None]
) -> dict[str, bytes]:
    """From the object store, the files ``recorded`` names that this host's copy of the run
    folder lacks (a run recorded on another host), by path inside the folder. A path that would
    leave the folder is never asked for; an object store that fails shows no picture (logged)."""
    wanted: set[str] = set()
    for name in recorded:
        if name and _local(run_dir, name) is _MISSING:
            relative = run_relative(run_dir, name)
            if relative is not None:
                wanted.add(relative)
    slots = asyncio.Semaphore(_FETCHES_AT_ONCE)

    async def one(relative: str) -> tuple[str, bytes | None]:
        async with slots:
            try:
                return relative, await objects.get(run_key(run_id, relative))
            except ObjectStoreError as exc:
                log.warning("run %s: %s not shown: %s", run_id, relative, exc)
                return relative, None

    got = await asyncio.gather(*(one(r) for r in sorted(wanted)))
    return {relative: data for relative, data in got if data is not None}


async def fetch_review_images(objects: ObjectStore, review: RunReview) -> dict[str, bytes]:
    """:func:`fetch_images` for every screenshot of ``review``."""
    run = review.run
    return await fetch_images(objects, run.id, Path(run.run_dir), review_images(review))


def _data_uri(image: ImageFile) -> str:
    return f"data:{image.mime};base64,{base64.b64encode(image.data).decode()}"


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

    def __init__(
        self, run_dir: Path, source: ImageSource, share: bool, fetched: Mapping[str, bytes]
    ) -> None:
        self.run_dir = run_dir
        self.source = source
        self.share = share
        self.fetched = fetched
        self.first: dict[str | bytes, str] = {}

    def image(self, recorded: str | None) -> ImageFile | None:
        return image_file(self.run_dir, recorded, self.fetched)

    def make(self, image: ImageFile, fig_id: str, caption: str, box: Box | None = None) -> Figure:
        key = hashlib.sha256(image.data).digest() if self.share else image.relative
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
    fetched: Mapping[str, bytes] | None = None,
) -> dict[str, Any]:
    """What ``replay_body.html.j2`` renders: the review, its steps with their screenshots (each
    image's ``src`` from ``image_src``; with ``share_images`` an image is given once), and text
    helpers. ``live_refresh``: the summary refreshes on ``runs`` events while the run is live.
    ``fetched``: screenshots from the object store that the run folder here lacks."""
    make = _Figures(run_dir, image_src, share_images, fetched or {})
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
        "expired": review.run.expired or {},
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


def render_replay(
    review: RunReview, run_dir: Path, fetched: Mapping[str, bytes] | None = None
) -> str:
    """The replay of ``review`` as one self-contained HTML file (images from ``run_dir``, else
    from ``fetched``: see :func:`fetch_images`)."""
    css, js = _static("replay.css"), _static("replay.js")
    context = replay_context(review, run_dir, _data_uri, share_images=True, fetched=fetched)
    return _ENV.get_template("replay.html.j2").render(
        csp=_policy(css, js), css=Markup(css), js=Markup(js), **context
    )
