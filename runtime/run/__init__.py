"""One run of a task: the runner, its shared context, scripted steps, the act-and-record phases,
the approval gate, the recorder and parallel runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from profiles import LazyExports

if TYPE_CHECKING:
    from runtime.run.context import RunContext
    from runtime.run.gate import ApprovalDeniedError
    from runtime.run.parallel import combined_exit_code, results_table, run_many
    from runtime.run.runner import RunResult, run_task
    from runtime.run.state import RunEvent, RunState

__all__ = [
    "ApprovalDeniedError",
    "RunContext",
    "RunEvent",
    "RunResult",
    "RunState",
    "combined_exit_code",
    "results_table",
    "run_many",
    "run_task",
]

_LAZY = LazyExports(__name__, __file__)


def __getattr__(name: str) -> object:
    """Import a public name's module on first use."""
    return _LAZY.load(name)


def __dir__() -> list[str]:
    return _LAZY.names()
