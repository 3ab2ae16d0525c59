"""Lazy package exports: a public name's module is imported on first use, not with the package.

Keeps ``import runtime`` and ``import profiles`` light, so a command that never drives a browser
never loads Playwright or the model SDKs. A package's ``__init__`` lists its names under
``TYPE_CHECKING`` (for type checkers and the import contracts) and here (for the interpreter).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Mapping


class LazyExports:
    """The public names of ``package`` and the module each comes from, imported on demand."""

    def __init__(self, package: str, exports: Mapping[str, Iterable[str]]) -> None:
        self._package = package
        self._where = {name: module for module, names in exports.items() for name in names}

    def load(self, name: str) -> object:
        """The public ``name``, imported from its module and kept on the package."""
        module = self._where.get(name)
        if module is None:
            raise AttributeError(f"module {self._package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, self._package), name)
        setattr(sys.modules[self._package], name, value)
        return value

    def names(self) -> list[str]:
        """Every public name and what the package already holds, for ``dir()``."""
        return sorted({*vars(sys.modules[self._package]), *self._where})
