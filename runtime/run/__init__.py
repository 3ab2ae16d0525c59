"""One run of a task: the runner, scripted steps, the act-and-record phases, the approval gate,
the recorder and parallel runs."""

from runtime.run.gate import ApprovalDeniedError
from runtime.run.parallel import combined_exit_code, results_table, run_many
from runtime.run.runner import RunEvent, RunResult, run_task

__all__ = [
    "ApprovalDeniedError",
    "RunEvent",
    "RunResult",
    "combined_exit_code",
    "results_table",
    "run_many",
    "run_task",
]
