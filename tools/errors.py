"""Errors raised while acting in a page::

RunError (profiles.errors)
└── ActionError               an action could not be done
    ├── ElementNotFoundError  the target matched nothing (after the timeout)
    ├── AmbiguousTargetError  the target matched several elements
    ├── ActionTimeoutError    the page did not reach the awaited state in time
    └── NavigationError       a URL could not be loaded
UserError (profiles.errors)
└── UploadNotAllowedError     a file outside the allowed upload folder
"""

from __future__ import annotations

from profiles import RunError, UserError

__all__ = [
    "ActionError",
    "ActionTimeoutError",
    "AmbiguousTargetError",
    "ElementNotFoundError",
    "NavigationError",
    "UploadNotAllowedError",
]


class ActionError(RunError):
    """An action failed in the page."""


class ElementNotFoundError(ActionError):
    """No element matched the target in time."""


class AmbiguousTargetError(ActionError):
    """The target matched more than one element."""


class ActionTimeoutError(ActionError):
    """The awaited page state did not happen in time."""


class NavigationError(ActionError):
    """A navigation failed (bad URL, connection refused, ...)."""


class UploadNotAllowedError(UserError):
    """The file to upload is outside the allowed folder."""
