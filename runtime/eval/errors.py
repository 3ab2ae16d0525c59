"""The eval's errors::

UserError (profiles)
└── SuiteError        a suite file, a --models config or a flag is wrong (exit 2)
"""

from __future__ import annotations

from profiles import UserError

__all__ = ["SuiteError"]


class SuiteError(UserError):
    """A suite file (or an eval flag) that cannot be used: names the file, field and why."""
