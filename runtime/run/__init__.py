"""One run of a task: the runner, its shared context, scripted steps, the act-and-record phases,
the approval gate, the recorder and parallel runs."""

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
