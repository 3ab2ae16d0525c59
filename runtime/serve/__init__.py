"""Serving corral: the worker pool that runs tasks inside the server process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from profiles import LazyExports

if TYPE_CHECKING:
    from runtime.serve.pool import DrainOutcome, JobInfo, JobState, Submitted, WorkerPool

__all__ = ["DrainOutcome", "JobInfo", "JobState", "Submitted", "WorkerPool"]

_LAZY = LazyExports(__name__, __file__)


def __getattr__(name: str) -> object:
    """Import a public name's module on first use."""
    return _LAZY.load(name)


def __dir__() -> list[str]:
    return _LAZY.names()
