"""Recording: every step goes to the store and to the run folder, with a screenshot.

The run folder (``HOME/runs/RUN_ID``) holds ``steps/NNNN.jpg``, ``steps.jsonl``, ``trace.zip``,
``downloads/`` and ``result.json``; everything there is also registered as an artifact row.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from profiles import Redactor, append_private, private_dir, redact_strings, write_private
from runtime.records import ArtifactRecord, StepRecord
from runtime.store import Store

__all__ = ["Recorder"]


class Recorder:
    """Writes one run's steps and files; ``redact`` scrubs every text before it is written."""

    def __init__(self, store: Store, run_id: str, run_dir: Path, redactor: Redactor) -> None:
        self.store = store
        self.run_id = run_id
        self.run_dir = run_dir
        self.redactor = redactor
        self.redact = redactor.text
        # Owner-only, like every file below: screenshots and results show the user's accounts.
        private_dir(run_dir / "steps")

    async def artifact(self, kind: Any, path: Path, step_idx: int | None = None) -> None:
        """Register a file inside the run folder."""
        await self.store.runs.add_artifact(
            ArtifactRecord(
                run_id=self.run_id,
                step_idx=step_idx,
                kind=kind,
                path=str(path.relative_to(self.run_dir)),
                bytes=path.stat().st_size,
                created_at=datetime.now(UTC),
            )
        )

    def write_file(self, path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` in the run folder: 0600, in an 0700 folder."""
        private_dir(path.parent)
        write_private(path, data)

    def scrub(self, value: Any) -> Any:
        """``value`` (JSON-like) with every string redacted."""
        return redact_strings(value, self.redact)

    async def step(self, step: StepRecord, screenshot: bytes | None) -> StepRecord:
        """Record a step (and its screenshot); returns the record as written."""
        if screenshot is not None:
            path = self.run_dir / "steps" / f"{step.idx:04d}.jpg"
            write_private(path, screenshot)
            step = step.model_copy(update={"screenshot": str(path.relative_to(self.run_dir))})
        clean = StepRecord.model_validate(self.scrub(step.model_dump(mode="json")))
        await self.store.runs.add_step(clean)
        append_private(self.run_dir / "steps.jsonl", (clean.model_dump_json() + "\n").encode())
        if screenshot is not None:
            await self.artifact("screenshot", self.run_dir / str(clean.screenshot), step.idx)
        return clean

    async def result(self, payload: dict[str, Any]) -> None:
        """Write ``result.json``."""
        path = self.run_dir / "result.json"
        text = json.dumps(self.scrub(payload), indent=2, default=str) + "\n"
        write_private(path, text.encode())
        await self.artifact("result", path)
