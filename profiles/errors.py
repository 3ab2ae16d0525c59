"""The base classes of corral's errors, and the profile and browser errors.

``profiles`` is the bottom of the dependency graph, so the bases live here and the other packages
subclass them. The whole tree, and the exit code each error maps to, is drawn and decided in one
place: :mod:`runtime.errors`.
"""

from __future__ import annotations


class CorralError(Exception):
    """Base of every error corral raises on purpose."""


class UserError(CorralError):
    """Bad input: a task file, profile name, flag or bundle the user must fix."""


class RunError(CorralError):
    """A run could not complete (browser, page, lease, state)."""


class ProfileNotFoundError(UserError):
    """No profile with that name."""


class ProfileExistsError(UserError):
    """A profile with that name already exists."""


class InvalidProfileError(UserError):
    """Profile settings or an export bundle that do not validate."""


class ProfileLeasedError(RunError):
    """Another run still holds the profile after the wait time."""


class LeaseLostError(RunError):
    """A run's profile lease was taken over or could not be renewed: the run stops acting."""


class StateDecryptError(RunError):
    """Encrypted data that cannot be opened: corrupted, truncated or under another key."""


class BrowserNotFoundError(RunError):
    """No Chromium executable was found."""


class BrowserCrashedError(RunError):
    """The browser process died while a run was using it."""


class EgressConflictError(UserError):
    """An egress allowlist asked for with an upstream proxy it cannot chain through."""


class UnknownSecretError(UserError):
    """A task names a secret the vault does not hold."""


class SecretNotAvailableError(RunError):
    """A secret was asked for where its scope does not allow it (a policy violation)."""

    def __init__(self, message: str, violation: str = "secret_scope") -> None:
        super().__init__(message)
        self.violation = violation
        """``secret_scope`` (origin, profile, lease) or ``secret_field`` (the field)."""


class InvalidAllowlistError(UserError):
    """An ``allowed_domains`` or ``host_map`` entry that cannot be parsed."""
