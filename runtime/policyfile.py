"""Reading a policy file: YAML, validated into a ``policies.Policy``, with errors that name the
file, the field and what was expected (``PolicyFileError``, a user error: exit 2)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from policies import Policy
from profiles import describe_errors
from runtime.errors import PolicyFileError

__all__ = ["PolicyFileError", "load_policy"]


def load_policy(path: Path) -> Policy:
    """Read and validate a policy file; errors name the file, the field and the expectation."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise PolicyFileError(f"{path}: policy file not found") from exc
    except yaml.YAMLError as exc:
        raise PolicyFileError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Policy.model_validate(data or {})
    except ValidationError as exc:
        problems = "; ".join(describe_errors(exc, unknown_field=True))
        raise PolicyFileError(f"{path}: {problems}") from exc
