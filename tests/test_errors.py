"""The error tree: every error corral defines is drawn in runtime.errors' docstring, and its exit
code is decided there."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import runtime.errors as errors
from profiles import CorralError, RunError, UserError
from runtime.errors import (
    EXIT_BAD_INPUT,
    EXIT_DENIED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    ApprovalDeniedError,
    combined_exit_code,
    exit_code_for,
)


def _corral_errors() -> set[type[CorralError]]:
    found: set[type[CorralError]] = set()
    for package in ("profiles", "tools", "policies", "runtime"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if ".demo." in info.name or info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            for _, obj in inspect.getmembers(module, inspect.isclass):
                if (
                    issubclass(obj, CorralError)
                    and obj not in (CorralError, UserError, RunError)
                    and obj.__module__ == info.name
                ):
                    found.add(obj)
    return found


def test_every_error_is_drawn_in_the_one_tree() -> None:
    found = _corral_errors()
    assert len(found) > 30  # the walk found the packages' errors, not nothing
    missing = sorted(c.__name__ for c in found if c.__name__ not in (errors.__doc__ or ""))
    assert missing == []


def test_every_error_maps_to_its_family_code() -> None:
    for cls in _corral_errors():
        exc = cls.__new__(cls)
        if issubclass(cls, ApprovalDeniedError):
            assert exit_code_for(exc) == EXIT_DENIED
        elif issubclass(cls, UserError):
            assert exit_code_for(exc) == EXIT_BAD_INPUT, cls
        else:
            assert issubclass(cls, RunError), cls
            assert exit_code_for(exc) == EXIT_FAILED, cls


def test_interrupts_and_foreign_errors() -> None:
    assert exit_code_for(KeyboardInterrupt()) == EXIT_INTERRUPTED
    assert exit_code_for(ValueError("not ours")) == EXIT_FAILED


@pytest.mark.parametrize(
    ("codes", "expected"),
    [([], 0), ([0, 0], 0), ([0, 1], 1), ([1, 3], 3), ([3, 130, 1], 130), ([1, 130, 2], 2)],
)
def test_several_runs_give_the_most_actionable_code(codes: list[int], expected: int) -> None:
    assert combined_exit_code(codes) == expected
