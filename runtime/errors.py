"""Every error corral raises on purpose, in one tree, and the exit code each one maps to.

The base classes live in :mod:`profiles.errors` (the bottom of the dependency graph, so that
``profiles`` and ``tools`` can raise them); the runtime's own errors are defined here; the
browser's in :mod:`tools.errors` and :mod:`profiles`. User mistakes (fix the input, try again) are
kept apart from run failures. The exit code of an error is decided here only
(:func:`exit_code_for`), and so is the exit code of a run's status (:data:`RUN_EXIT_CODES`)::

    CorralError
    ├── UserError                     exit 2: the input is wrong; nothing was changed
    │   ├── (profiles) ProfileNotFoundError, ProfileExistsError, InvalidProfileError,
    │   │              InvalidAllowlistError, UnknownSecretError, EgressConflictError
    │   ├── (tools)    UploadNotAllowedError       a file outside the allowed upload folder
    │   ├── TaskFileError             a task file that cannot be read or validated
    │   ├── PolicyFileError           a policy file that cannot be read or validated
    │   ├── ModelConfigError          unknown provider or model, missing API key
    │   ├── RunNotFoundError          no run with that id
    │   ├── RotationBlockedError      another rotation or a live run stands in the way
    │   ├── ApprovalError             a request that cannot be decided (already decided, expired)
    │   │   └── ApprovalNotFoundError
    │   ├── ScheduleError             a schedule's input: cron, zone, duration, task, profiles
    │   │   └── ScheduleNotFoundError no schedule of that name
    │   ├── (services) NoteNotFoundError, AlertNotFoundError   no note / alert with that id
    │   ├── (eval)     SuiteError                  an eval suite, --models config or flag is wrong
    │   ├── AuthError                 no, unknown, expired or revoked token; disabled user
    │   └── PermissionDeniedError     role too low, or profile not granted
    │       └── TokenOutlivesError    a token may not create one that expires after it does
    └── RunError                      exit 1: the run (or command) failed
        ├── (profiles) ProfileLeasedError, LeaseLostError, StateDecryptError,
        │              BrowserNotFoundError, BrowserCrashedError, SecretNotAvailableError
        ├── (tools)    ActionError: ElementNotFoundError, AmbiguousTargetError,
        │              ActionTimeoutError, NavigationError
        ├── StoreError                the SQLite store cannot be opened or is too new
        │   └── StoreBusyError        another process held the write lock past the busy timeout
        ├── ObjectStoreError          the artifact store (runtime.objects: disk or S3) failed
        │   └── ObjectKeyError        a key that could leave the store (``..``, absolute, link)
        ├── StepFailedError           a step failed
        │   └── (agent) LoopStop      a stop rule ended the goal loop (max steps, repeats, ...)
        ├── BudgetExceededError       the run's spend or token cap
        ├── AuditTamperedError        the audit log's hash chain is broken
        ├── ServerDrainingError       the server is stopping: it starts no new run (retry later)
        ├── ModelError                a model call failed (``retryable`` for fallback chains):
        │                             ModelAuthError, ModelRateLimitError, ModelUnavailableError,
        │                             ModelTimeoutError, ModelRequestError,
        │                             InvalidModelOutputError, ChainExhaustedError
        └── ApprovalDeniedError       exit 3: a gated action was denied (a decision, not a fault)

    KeyboardInterrupt / a cancelled run: exit 130
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

from profiles import CorralError, RunError, UserError

if TYPE_CHECKING:
    from runtime.records import RunStatus

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_DENIED",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "RUN_EXIT_CODES",
    "ApprovalDeniedError",
    "ApprovalError",
    "ApprovalNotFoundError",
    "AuditTamperedError",
    "AuthError",
    "BudgetExceededError",
    "CorralError",
    "PermissionDeniedError",
    "PolicyFileError",
    "RotationBlockedError",
    "RunError",
    "RunNotFoundError",
    "ScheduleError",
    "ScheduleNotFoundError",
    "ServerDrainingError",
    "StepFailedError",
    "StoreBusyError",
    "StoreError",
    "TaskFileError",
    "TokenOutlivesError",
    "UserError",
    "combined_exit_code",
    "exit_code_for",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_DENIED = 3
EXIT_INTERRUPTED = 130


# --- user errors (exit 2) ---------------------------------------------------------------------


class TaskFileError(UserError):
    """A task file that cannot be read or validated; the message names file and field."""


class PolicyFileError(UserError):
    """A policy file that cannot be read or validated (names file, field, expectation)."""


class RunNotFoundError(UserError):
    """No run with that id (or id prefix)."""


class RotationBlockedError(UserError):
    """Another rotation or a live run stands in the way; nothing was changed."""


class ApprovalError(UserError):
    """An approval request that cannot be decided (already decided, expired, wrong state)."""


class ApprovalNotFoundError(ApprovalError):
    """No approval request with that id."""


class ScheduleError(UserError):
    """A schedule's input that does not validate: a bad duration, cron, zone or bound, task,
    profile or name.

    ``field`` names what was wrong (``cron``, ``tz``, ``every_s``, or the flag a duration came
    from), so the CLI and the API can point at it.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ScheduleNotFoundError(ScheduleError):
    """No schedule of that name."""


class AuthError(UserError):
    """No token, or one that is unknown, expired or revoked, or whose user is disabled."""


class PermissionDeniedError(UserError):
    """The actor's role is too low, or the profile is not granted to them."""


class TokenOutlivesError(PermissionDeniedError):
    """A token-authenticated actor asked for a token that would expire after its own."""


# --- run failures (exit 1) --------------------------------------------------------------------


class StoreError(RunError):
    """The store cannot be opened or used."""


class StoreBusyError(StoreError):
    """Another process held the store's write lock for longer than the busy timeout.

    Exit 1 for runs and for every other command alike: nothing was wrong with the input, and the
    transaction that could not start changed nothing, so the same command can simply be retried.
    """


class StepFailedError(RunError):
    """A scripted step failed, or a stop rule ended the goal loop; the message says which."""


class BudgetExceededError(RunError):
    """The run's spend or token budget would be, or was, exceeded."""


class AuditTamperedError(RunError):
    """The audit log's hash chain does not hold: a row was edited, removed or reordered."""


class ServerDrainingError(RunError):
    """The server is draining (stopping): it starts no new run; retry once it is back.

    Exit 1, not 2: nothing was wrong with the input, and nothing was started.
    """


class ApprovalDeniedError(RunError):
    """A gated action was denied (by a person, by policy, or by expiry); the run stops (exit 3)."""


# --- exit codes -------------------------------------------------------------------------------

# Most specific first: the first class an error is an instance of decides its code.
_EXIT_BY_ERROR: tuple[tuple[type[BaseException], int], ...] = (
    (ApprovalDeniedError, EXIT_DENIED),
    (UserError, EXIT_BAD_INPUT),
    (CorralError, EXIT_FAILED),
    (KeyboardInterrupt, EXIT_INTERRUPTED),
    (asyncio.CancelledError, EXIT_INTERRUPTED),
)

RUN_EXIT_CODES: dict[RunStatus, int] = {
    "succeeded": EXIT_OK,
    "failed": EXIT_FAILED,
    "interrupted": EXIT_FAILED,
    "cancelled": EXIT_INTERRUPTED,
    "denied": EXIT_DENIED,
    "waiting_approval": EXIT_DENIED,
    "queued": EXIT_FAILED,
    "running": EXIT_FAILED,
}
"""The exit code of a run that ended in each status (DESIGN.md)."""

# When several runs end differently, the most actionable code wins.
_EXIT_PRIORITY = (EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_DENIED, EXIT_FAILED)


def exit_code_for(exc: BaseException) -> int:
    """The exit code ``corral`` ends with when ``exc`` ends a command (1 for anything else)."""
    return next((code for cls, code in _EXIT_BY_ERROR if isinstance(exc, cls)), EXIT_FAILED)


def combined_exit_code(codes: Iterable[int]) -> int:
    """One exit code for several runs: bad input, then Ctrl-C, then a denial, then a failure."""
    seen = set(codes)
    return next((c for c in _EXIT_PRIORITY if c in seen), EXIT_OK)
