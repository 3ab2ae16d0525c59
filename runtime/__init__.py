"""The corral engine: tasks, runs, recording, the store and the command line."""

from profiles import CorralError, RunError, UserError
from runtime.app import Runtime
from runtime.approvals import ApprovalError, ApprovalRequest, Approvals
from runtime.auth import LOCAL_ACTOR, Actor, AuthError, PermissionDeniedError
from runtime.errors import RunNotFoundError, StepFailedError, StoreError, TaskFileError
from runtime.records import ArtifactRecord, RunRecord, RunStatus, StepRecord
from runtime.run.gate import ApprovalDeniedError
from runtime.run.parallel import run_many
from runtime.run.runner import RunEvent, RunResult, run_task
from runtime.settings import Settings
from runtime.store import Store
from runtime.task import Budget, Step, Task, When, load_task, parse_task

__all__ = [
    "LOCAL_ACTOR",
    "Actor",
    "ApprovalDeniedError",
    "ApprovalError",
    "ApprovalRequest",
    "Approvals",
    "ArtifactRecord",
    "AuthError",
    "Budget",
    "CorralError",
    "PermissionDeniedError",
    "RunError",
    "RunEvent",
    "RunNotFoundError",
    "RunRecord",
    "RunResult",
    "RunStatus",
    "Runtime",
    "Settings",
    "Step",
    "StepFailedError",
    "StepRecord",
    "Store",
    "StoreError",
    "Task",
    "TaskFileError",
    "UserError",
    "When",
    "load_task",
    "parse_task",
    "run_many",
    "run_task",
]
