"""The decide phase of scripted runs: variable substitution and ``when`` guards."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from runtime.errors import TaskFileError
from runtime.task import VAR_RE, Step, Task, When
from tools import AnyAction, Tabs, is_visible

__all__ = [
    "check_vars",
    "guard_holds",
    "merge_vars",
    "substitute",
    "substitute_text",
]


def merge_vars(
    task: Task, profile_vars: Mapping[str, str], cli_vars: Mapping[str, str]
) -> dict[str, str]:
    """Variables by precedence: ``--var`` over the profile's vars over the task's."""
    return {**task.vars, **profile_vars, **cli_vars}


def check_vars(task: Task, values: Mapping[str, str]) -> None:
    """Fail before the run starts if a step uses a variable nobody defined."""
    missing = sorted(task.referenced_vars() - set(values))
    if missing:
        raise TaskFileError(
            f"{task.source or task.name}: unknown variable '{missing[0]}'"
            f" in {{{{var:{missing[0]}}}}}; define it under vars:, in the profile's vars, "
            f"or with --var {missing[0]}=VALUE"
        )


def _sub(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return substitute_text(value, values)
    if isinstance(value, dict):
        return {k: _sub(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_sub(v, values) for v in value]
    return value


def substitute_text(text: str, values: Mapping[str, str]) -> str:
    """``text`` with ``{{var:NAME}}`` replaced."""
    return VAR_RE.sub(lambda m: values[m.group(1)], text)


def substitute(step: Step, values: Mapping[str, str]) -> AnyAction:
    """The step's action with ``{{var:NAME}}`` replaced (secret placeholders are left alone)."""
    action = step.typed
    data = action.model_dump(by_alias=True, exclude_none=True)
    return type(action).model_validate(_sub(data, values))


async def guard_holds(when: When | None, tabs: Tabs) -> bool:
    """True if the step should run; guards look at the page as it is, without waiting."""
    if when is None:
        return True
    page = await tabs.active()
    if when.url_contains is not None and when.url_contains not in page.url:
        return False
    if when.url_matches is not None and not re.search(when.url_matches, page.url):
        return False
    if when.visible is not None and not await is_visible(tabs, when.visible):
        return False
    return not (when.not_visible is not None and await is_visible(tabs, when.not_visible))
