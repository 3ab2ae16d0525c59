"""The console's run page: the run's replay (the same body as ``corral replay``'s file, its
screenshots served from the run's folder, or from the object store for a run recorded on another
host), refreshed while the run is live, and the replay file
to download."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from runtime.console.web import PREFIX, SECURITY_HEADERS, Viewer, Viewing, page
from runtime.errors import RunNotFoundError
from runtime.records import RunRecord
from runtime.review.replay import (
    ImageFile,
    ImageSource,
    fetch_images,
    fetch_review_images,
    image_file,
    render_replay,
    replay_context,
    replay_filename,
)

__all__ = ["router"]

router = APIRouter()


def _image_url(run_id: str) -> ImageSource:
    base = f"{PREFIX}/runs/{quote(run_id, safe='')}/files/"
    return lambda image: base + quote(image.relative)


async def _visible_run(viewer: Viewer, run_id: str) -> RunRecord:
    """The run, if the viewer may see it (else not found, as if it did not exist)."""
    run = await viewer.rt.store.runs.get_run(run_id)
    if run is None or not await viewer.rt.services.runs.may_see(viewer.actor, run.profile):
        raise RunNotFoundError(f"no run '{run_id}'")
    return run


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(run_id: str, viewer: Viewing) -> HTMLResponse:
    """A run's replay: summary, timeline, each step explained, output, trace."""
    review = await viewer.rt.services.runs.review(viewer.actor, run_id)
    fetched = await fetch_review_images(viewer.rt.objects, review)
    context = replay_context(
        review,
        Path(review.run.run_dir),
        _image_url(review.run.id),
        live_refresh=True,
        fetched=fetched,
    )
    return page(viewer, "run.html.j2", section="runs", **context)


@router.get("/runs/{run_id}/files/{path:path}")
async def run_file(run_id: str, path: str, viewer: Viewing) -> Response:
    """A screenshot of the run (a JPEG or PNG inside its folder, or the object store's copy
    when this host has no such file; anything else: not found)."""
    run = await _visible_run(viewer, run_id)
    run_dir = Path(run.run_dir)
    fetched = await fetch_images(viewer.rt.objects, run.id, run_dir, [path])
    image: ImageFile | None = image_file(run_dir, path, fetched)
    if image is None:
        raise RunNotFoundError(f"no screenshot '{path}' in run '{run.id}'")
    return Response(image.data, media_type=image.mime, headers=SECURITY_HEADERS)


@router.get("/runs/{run_id}/replay.html")
async def run_replay_file(run_id: str, viewer: Viewing) -> Response:
    """The run's replay file (``corral replay``), as a download."""
    review = await viewer.rt.services.runs.review(viewer.actor, run_id)
    fetched = await fetch_review_images(viewer.rt.objects, review)
    html = await asyncio.to_thread(render_replay, review, Path(review.run.run_dir), fetched)
    name = replay_filename(review.run.id)
    headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(html, media_type="text/html; charset=utf-8", headers=headers)
