"""Lazy package exports: a public name's module is imported on first use, not with the package.

Keeps ``import runtime`` and ``import profiles`` light, so a command that never drives a browser
never loads Playwright or the model SDKs. A package's ``__init__`` lists its names under
``TYPE_CHECKING`` (for type checkers and the import contracts) and here (for the interpreter).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Iterable, Mapping


class _Package(types.ModuleType):
    """A package whose public name may share a submodule's name (``tools.observe``, the function
    in ``tools/observe.py``): importing that submodule sets the package's attribute to the
    module, which would hide the function; the function is kept instead, as an eager
    ``from .observe import observe`` would leave it."""

    _lazy: LazyExports

    def __setattr__(self, name: str, value: object) -> None:
        submodule = f"{self.__name__}.{name}"
        if isinstance(value, types.ModuleType) and self._lazy.module_of(name) == submodule:
            value = getattr(value, name)
        super().__setattr__(name, value)


class LazyExports:
    """The public names of ``package`` and the module each comes from, imported on demand."""

    def __init__(self, package: str, exports: Mapping[str, Iterable[str]]) -> None:
        self._package = package
        self._where = {name: module for module, names in exports.items() for name in names}
        module = sys.modules[package]
        module.__class__ = _Package
        object.__setattr__(module, "_lazy", self)

    def module_of(self, name: str) -> str | None:
        """The absolute name of the module ``name`` comes from (None: not a lazy export)."""
        module = self._where.get(name)
        if module is None:
            return None
        return importlib.util.resolve_name(module, self._package)

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
