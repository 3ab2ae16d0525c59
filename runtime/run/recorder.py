"""Recording: every step goes to the store and to the run folder, with a screenshot.

The run folder (``HOME/runs/RUN_ID``) holds ``steps/NNNN.jpg``, ``steps.jsonl``, ``trace.zip``,
``downloads/`` and ``result.json``; everything there but ``steps.jsonl`` (the step rows are in
the store) is also registered as an artifact row, and uploaded to the object store as
``runs/RUN_ID/<path in the folder>``.

The folder is the working copy: a step never waits on the network. Uploads go in the background
(a few at a time) and :meth:`Recorder.flush` waits for them at the run's end; a failed upload is
logged and kept as a warning of the run, and the local file stays. With the default object store
(files under HOME) the folder *is* the store, and nothing is copied.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from profiles import (
    CorralError,
    Redactor,
    append_private,
    private_dir,
    redact_strings,
    write_private,
)
from runtime.objects import ObjectStore, run_key
from runtime.records import ArtifactRecord, StepRecord
from runtime.store import Store

__all__ = ["Recorder"]

log = logging.getLogger(__name__)
_UPLOADS_AT_ONCE = 4


class Recorder:
    """Writes one run's steps and files; ``redact`` scrubs every text before it is written.

    ``objects``: where registered files are uploaded (None: nowhere but the run folder).
    """

    def __init__(
        self,
        store: Store,
        run_id: str,
        run_dir: Path,
        redactor: Redactor,
        objects: ObjectStore | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.run_dir = run_dir
        self.redactor = redactor
        self.redact = redactor.text
        self.objects = objects
        self.warnings: list[str] = []
        """What went wrong without failing the run (an upload), for its result."""
        self._uploads: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(_UPLOADS_AT_ONCE)
        # Owner-only, like every file below: screenshots and results show the user's accounts.
        private_dir(run_dir / "steps")

    async def artifact(self, kind: Any, path: Path, step_idx: int | None = None) -> None:
        """Register a file inside the run folder (and start its upload)."""
        relative = path.relative_to(self.run_dir).as_posix()
        await self.store.runs.add_artifact(
            ArtifactRecord(
                run_id=self.run_id,
                step_idx=step_idx,
                kind=kind,
                path=relative,
                bytes=path.stat().st_size,
                created_at=datetime.now(UTC),
            )
        )
        self._upload(path, relative)

    def _upload(self, path: Path, relative: str) -> None:
        if self.objects is None:
            return
        key = run_key(self.run_id, relative)
        held = self.objects.local_path(key)
        if held is not None and held.absolute() == path.absolute():
            return  # the run folder is the store: this file is its object already
        # Owned by the recorder and awaited by flush(): the run's end waits for every upload.
        task = asyncio.create_task(self._put(self.objects, key, path))
        self._uploads.add(task)

    async def _put(self, objects: ObjectStore, key: str, path: Path) -> None:
        async with self._slots:
            try:
                data = await asyncio.to_thread(path.read_bytes)
                await objects.put(key, data)
            except Exception as exc:
                # Never the run's end: the local copy stays, and this host still replays it.
                why = str(exc) if isinstance(exc, CorralError | OSError) else type(exc).__name__
                warning = f"upload of {key} failed: {why}"
                self.warnings.append(warning)
                log.warning("run %s: %s", self.run_id, warning)

    async def flush(self) -> None:
        """Wait until every upload started so far is done (failures become warnings)."""
        while self._uploads:
            pending = list(self._uploads)
            self._uploads.clear()
            await asyncio.gather(*pending)

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
