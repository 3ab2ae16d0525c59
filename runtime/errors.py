"""Errors raised by the runtime, on top of the shared hierarchy in :mod:`profiles.errors`::

CorralError
├── UserError (exit 2)
│   ├── TaskFileError      the task file is missing, not YAML, or fails validation
│   └── RunNotFoundError   no run with that id
└── RunError (exit 1)
    ├── StoreError         the SQLite store cannot be opened or is too new
    │   └── StoreBusyError another process held the database lock past the busy timeout
    └── StepFailedError    a scripted step failed (wraps the tools error)
"""

from __future__ import annotations

from profiles import CorralError, RunError, UserError

__all__ = [
    "CorralError",
    "RunError",
    "RunNotFoundError",
    "StepFailedError",
    "StoreBusyError",
    "StoreError",
    "TaskFileError",
    "UserError",
]


class TaskFileError(UserError):
    """A task file that cannot be read or validated; the message names file and field."""


class RunNotFoundError(UserError):
    """No run with that id (or id prefix)."""


class StoreError(RunError):
    """The store cannot be opened or used."""


class StoreBusyError(StoreError):
    """Another process held the store's write lock for longer than the busy timeout.

    Exit 1 for runs and for every other command alike: nothing was wrong with the input, and the
    transaction that could not start changed nothing, so the same command can simply be retried.
    """


class StepFailedError(RunError):
    """A scripted step failed; the message names the step."""
