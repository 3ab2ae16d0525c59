"""The error hierarchy shared by every corral package.

``profiles`` is the bottom of the dependency graph, so the base classes live here and the other
packages add their own subclasses::

    CorralError                      base; ``exit_code`` is what ``corral`` exits with
    ├── UserError (exit 2)           the user's input is wrong; fix it and try again
    │   ├── ProfileNotFoundError
    │   ├── ProfileExistsError
    │   ├── InvalidProfileError      bad profile settings or an unreadable export bundle
    │   └── (runtime) TaskFileError  a task file that cannot be read or validated
    └── RunError (exit 1)            the run itself failed
        ├── ProfileLeasedError       another run holds the profile past the wait time
        ├── StateDecryptError        saved state corrupted or encrypted with another key
        ├── BrowserNotFoundError     no Chromium to launch
        ├── BrowserCrashedError      the browser died under a run
        └── (tools) ActionError      an action failed in the page (element not found, ...)
"""

from __future__ import annotations


class CorralError(Exception):
    """Base of every error corral raises on purpose."""

    exit_code = 1


class UserError(CorralError):
    """Bad input: a task file, profile name, flag or bundle the user must fix."""

    exit_code = 2


class RunError(CorralError):
    """A run could not complete (browser, page, lease, state)."""

    exit_code = 1


class ProfileNotFoundError(UserError):
    """No profile with that name."""


class ProfileExistsError(UserError):
    """A profile with that name already exists."""


class InvalidProfileError(UserError):
    """Profile settings or an export bundle that do not validate."""


class ProfileLeasedError(RunError):
    """Another run still holds the profile after the wait time."""


class StateDecryptError(RunError):
    """Encrypted data that cannot be opened: corrupted, truncated or under another key."""


class BrowserNotFoundError(RunError):
    """No Chromium executable was found."""


class BrowserCrashedError(RunError):
    """The browser process died while a run was using it."""
