"""The live comparison of a canary schedule: its recent runs, grouped by the model config each
one used (its run row says; ``result.json`` for runs recorded before the row did), as
:class:`~runtime.eval.harness.EvalRun` records."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from runtime.app import Runtime
from runtime.eval.harness import EvalRun
from runtime.models.config import BUILT_IN

__all__ = ["live_runs"]

_LIVE = ("queued", "running", "waiting_approval")


def _config_of(run_dir: str) -> str | None:
    try:
        data = json.loads((Path(run_dir) / "result.json").read_text())
    except (OSError, ValueError):
        return None
    found = data.get("models_config") if isinstance(data, dict) else None
    return found if isinstance(found, str) else None


async def live_runs(
    rt: Runtime, schedule: str, since: datetime, canary: str | None
) -> tuple[list[str], list[EvalRun]]:
    """The finished runs of ``schedule`` since ``since`` and the config labels, the baseline
    first: ``baseline (CONFIG)`` and ``canary (CONFIG)`` when ``canary`` (the canary config's
    path) is given, else one label per config seen."""
    records = await rt.store.runs.list_runs(100_000, schedule=schedule, since=since)
    runs: list[EvalRun] = []
    for record in reversed(records):
        if record.status in _LIVE:
            continue
        used = record.models_config or _config_of(record.run_dir) or BUILT_IN
        if canary is not None:
            is_canary = (
                Path(used).resolve() == Path(canary).resolve() if used != BUILT_IN else False
            )
            label = f"canary ({used})" if is_canary else f"baseline ({used})"
        else:
            label = used
        runs.append(
            EvalRun(
                config=label,
                task=record.task_name,
                rep=0,
                faulted=False,
                run_id=record.id,
                status=record.status,
                success=record.status == "succeeded",
                error=record.error,
            )
        )
    labels = list(dict.fromkeys(r.config for r in runs))
    labels.sort(key=lambda label: label.startswith("canary"))
    return labels, runs
