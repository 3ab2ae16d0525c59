"""The corral engine: tasks, runs, recording, the store, the services and the command line.

The Python API of every authorized operation is ``rt.services`` (:class:`Services`): see
``docs/api.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from profiles import LazyExports

if TYPE_CHECKING:
    from profiles import CorralError, RunError, UserError
    from runtime.app import Runtime
    from runtime.approvals import ApprovalError, ApprovalRequest, Approvals
    from runtime.auth import LOCAL_ACTOR, Actor, AuthError, PermissionDeniedError, UserRole
    from runtime.errors import RunNotFoundError, StepFailedError, StoreError, TaskFileError
    from runtime.records import ArtifactRecord, RunRecord, RunStatus, StepRecord
    from runtime.run.gate import ApprovalDeniedError
    from runtime.run.parallel import run_many
    from runtime.run.runner import RunEvent, RunResult, run_task
    from runtime.services import (
        ApprovalService,
        AuditService,
        KeyService,
        PolicyService,
        ProfileService,
        RunService,
        SecretService,
        Services,
        UserService,
    )
    from runtime.settings import Settings
    from runtime.store import Store
    from runtime.task import Budget, Step, Task, When, load_task, parse_task

__all__ = [
    "LOCAL_ACTOR",
    "Actor",
    "ApprovalDeniedError",
    "ApprovalError",
    "ApprovalRequest",
    "ApprovalService",
    "Approvals",
    "ArtifactRecord",
    "AuditService",
    "AuthError",
    "Budget",
    "CorralError",
    "KeyService",
    "PermissionDeniedError",
    "PolicyService",
    "ProfileService",
    "RunError",
    "RunEvent",
    "RunNotFoundError",
    "RunRecord",
    "RunResult",
    "RunService",
    "RunStatus",
    "Runtime",
    "SecretService",
    "Services",
    "Settings",
    "Step",
    "StepFailedError",
    "StepRecord",
    "Store",
    "StoreError",
    "Task",
    "TaskFileError",
    "UserError",
    "UserRole",
    "UserService",
    "When",
    "load_task",
    "parse_task",
    "run_many",
    "run_task",
]

_LAZY = LazyExports(__name__, __file__)


def __getattr__(name: str) -> object:
    """Import a public name's module on first use."""
    return _LAZY.load(name)


def __dir__() -> list[str]:
    return _LAZY.names()
