"""Runs: who may start them, and reading what they recorded."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from runtime.auth import Actor
from runtime.errors import RunNotFoundError
from runtime.records import ArtifactRecord, ModelCallRecord, RunRecord, StepRecord
from runtime.services.base import Service

__all__ = ["RunDetail", "RunService"]


class RunDetail(NamedTuple):
    """One run with everything it recorded."""

    run: RunRecord
    steps: list[StepRecord]
    model_calls: list[ModelCallRecord]
    artifacts: list[ArtifactRecord]


class RunService(Service):
    """Starting runs is the run's own path (:mod:`runtime.run`); this says who may."""

    async def authorize(self, actor: Actor, profiles: Iterable[str]) -> None:
        """May ``actor`` run tasks on each of ``profiles``? (users need a grant on each)"""
        for name in profiles:
            await self._authz.require_profile(actor, name, f"run tasks on profile '{name}'")

    def authorize_demo(self, actor: Actor) -> None:
        """The demo creates profiles and secrets and decides on approvals: an admin's work."""
        self._authz.require(actor, "admin", "run the demo")

    async def list(
        self, actor: Actor, limit: int = 20, profile: str | None = None
    ) -> list[RunRecord]:
        """The latest runs, newest first."""
        del actor
        return await self._store.runs.list_runs(limit, profile)

    async def show(self, actor: Actor, run_id: str) -> RunDetail:
        """One run: its steps, model calls and artifacts."""
        del actor
        run = await self._store.runs.get_run(run_id)
        if run is None:
            raise RunNotFoundError(f"no run '{run_id}' (see: corral runs list)")
        return RunDetail(
            run,
            await self._store.runs.list_steps(run.id),
            await self._store.runs.list_model_calls(run.id),
            await self._store.runs.list_artifacts(run.id),
        )
