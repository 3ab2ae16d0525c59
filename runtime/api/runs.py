"""``/api/runs``: start runs in the server's worker pool, read them, wait for and cancel them."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from runtime.api.auth import Authenticated
from runtime.api.schemas import (
    CancelRequest,
    CancelResult,
    RunAccepted,
    RunDetailOut,
    RunPending,
    RunRequest,
    SubmittedRun,
)
from runtime.errors import RunNotFoundError
from runtime.records import RunRecord
from runtime.review import RunReview
from runtime.review.replay import (
    fetch_review_images,
    read_run_file,
    render_replay,
    replay_filename,
)
from runtime.run.runner import RunResult
from runtime.task import load_task_text

__all__ = ["router"]

router = APIRouter(prefix="/runs", tags=["runs"])

_LIVE = ("queued", "running", "waiting_approval")


@router.post("", status_code=202, response_model=RunAccepted)
async def start_runs(body: RunRequest, call: Authenticated) -> RunAccepted:
    """Start the task on each profile (empty: the task's own); answers at once with run ids."""
    task = load_task_text(body.task_yaml, body.task_path)
    submitted = await call.pool.submit(
        call.actor, task, body.profiles, body.vars, lease_timeout_s=body.lease_timeout_s
    )
    return RunAccepted(runs=[SubmittedRun(run_id=s.run_id, profile=s.profile) for s in submitted])


@router.get("", response_model=list[RunRecord])
async def list_runs(
    call: Authenticated,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    profile: str | None = None,
    schedule: str | None = None,
    task: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[RunRecord]:
    """The latest runs, newest first (a ``user`` sees runs on profiles granted to it): of a
    profile, a schedule, a task, with a status, started at or after ``since`` and before
    ``until``."""
    return await call.rt.services.runs.list(
        call.actor, limit, profile, schedule, task=task, status=status, since=since, until=until
    )


@router.get("/{run_id}", response_model=RunDetailOut)
async def show_run(run_id: str, call: Authenticated) -> RunDetailOut:
    """One run with its steps, model calls and artifacts."""
    detail = await call.rt.services.runs.show(call.actor, run_id)
    return RunDetailOut(
        run=detail.run,
        steps=detail.steps,
        model_calls=detail.model_calls,
        artifacts=detail.artifacts,
    )


@router.get("/{run_id}/review", response_model=RunReview)
async def review_run(run_id: str, call: Authenticated) -> RunReview:
    """The run as a person reviews it: each step explained (target, verdict, approval, model,
    tokens, cost, blocked hosts, page excerpt), the summary and the output; redacted."""
    return await call.rt.services.runs.review(call.actor, run_id)


@router.get(
    "/{run_id}/replay",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}, "description": "the replay file"}},
)
async def replay_run(run_id: str, call: Authenticated) -> HTMLResponse:
    """The run's replay: one self-contained HTML file (``corral replay``)."""
    review = await call.rt.services.runs.review(call.actor, run_id)
    fetched = await fetch_review_images(call.rt.objects, review)
    html = await asyncio.to_thread(render_replay, review, Path(review.run.run_dir), fetched)
    disposition = f'attachment; filename="{replay_filename(review.run.id)}"'
    return HTMLResponse(
        html, headers={"Content-Disposition": disposition, "X-Content-Type-Options": "nosniff"}
    )


@router.get(
    "/{run_id}/files/{path:path}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "the file"}},
)
async def run_file(run_id: str, path: str, call: Authenticated) -> Response:
    """A file the run registered as an artifact (``path`` as in its artifact row: a screenshot,
    ``trace.zip``, a download, ``result.json``), from this host's run folder or, for a run
    recorded on another host, the object store; as a download."""
    detail = await call.rt.services.runs.show(call.actor, run_id)
    run = detail.run
    data = None
    if path in {a.path for a in detail.artifacts}:
        data = await read_run_file(call.rt.objects, run.id, Path(run.run_dir), path)
    if data is None:
        # A file deleted under the retention rules is not found either; the run says which.
        gone = f" (expired: {', '.join(sorted(run.expired))})" if run.expired else ""
        raise RunNotFoundError(f"no file '{path}' in run '{run.id}'{gone}")
    name = re.sub(r"[^A-Za-z0-9._-]", "_", PurePosixPath(path).name) or "file"
    return Response(
        data,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get(
    "/{run_id}/result",
    response_model=RunResult,
    responses={202: {"model": RunPending, "description": "the run is queued or going"}},
)
async def run_result(run_id: str, call: Authenticated) -> RunResult | JSONResponse:
    """200 with the result once the run has ended, 202 while it is queued or going."""
    rt, pool = call.rt, call.pool
    info = pool.info(run_id)
    if info is None:
        # Not this server's (or long finished): the stored record says how it ended.
        record = (await rt.services.runs.show(call.actor, run_id)).run
        if record.status in _LIVE:
            return _pending(record.id, record.status)
        return RunResult.from_record(record)
    if not await rt.services.runs.may_see(call.actor, info.profile):
        await rt.services.runs.show(call.actor, run_id)  # raises: not found for this actor
    result = pool.result(run_id)
    if result is not None:
        return result
    if info.state == "queued":
        return _pending(run_id, "queued")
    stored = await rt.store.runs.get_run(run_id)
    status = stored.status if stored is not None and stored.status in _LIVE else "running"
    return _pending(run_id, status)


@router.post("/{run_id}/cancel", response_model=CancelResult)
async def cancel_run(
    run_id: str, call: Authenticated, body: CancelRequest | None = None
) -> CancelResult:
    """Cancel a run of this server (who started it, or an admin); its state is saved."""
    rt, pool = call.rt, call.pool
    info = pool.info(run_id)
    if info is None or info.state == "finished":
        record = (await rt.services.runs.show(call.actor, run_id)).run
        return CancelResult(run_id=record.id, cancelled=False, status=record.status)
    cancelled = await rt.services.runs.cancel(
        call.actor,
        run_id,
        info.profile,
        info.started_by,
        lambda why: pool.cancel(run_id, why),
        body.reason if body else None,
    )
    return CancelResult(run_id=run_id, cancelled=cancelled, status=pool.status(run_id))


def _pending(run_id: str, status: str) -> JSONResponse:
    body = RunPending.model_validate({"run_id": run_id, "status": status})
    return JSONResponse(body.model_dump(mode="json"), status_code=202)
