"""The corral engine: tasks, runs, recording, the store and the command line."""

from profiles.errors import CorralError, RunError, UserError

from .app import Runtime
from .approvals import ApprovalError, ApprovalRequest, Approvals
from .auth import LOCAL_ACTOR, Actor, AuthError, PermissionDeniedError
from .errors import RunNotFoundError, StepFailedError, StoreError, TaskFileError
from .gate import ApprovalDeniedError
from .live import run_many
from .records import ArtifactRecord, RunRecord, RunStatus, StepRecord
from .run import RunEvent, RunResult, run_task
from .settings import Settings
from .store import Store
from .task import Budget, Step, Task, When, load_task, parse_task

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
