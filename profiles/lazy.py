"""Lazy package exports: a public name's module is imported on first use, not with the package.

Keeps ``import runtime`` and ``import profiles`` light, so a command that never drives a browser
never loads Playwright or the model SDKs. A package's ``__init__`` imports its public names under
``if TYPE_CHECKING:`` (what type checkers and the import contracts read) and lists them in
``__all__``; :class:`LazyExports` reads that block from the file, so each name is written once::

    if TYPE_CHECKING:
        from .pool import BrowserPool

    __all__ = ["BrowserPool"]

    _LAZY = LazyExports(__name__, __file__)

    def __getattr__(name: str) -> object:
        return _LAZY.load(name)
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import types
from pathlib import Path


def _type_checking_imports(source: str, package: str) -> dict[str, str]:
    """Each name imported under ``if TYPE_CHECKING:`` in ``source``, and its module."""
    where = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"):
            continue
        for statement in node.body:
            if isinstance(statement, ast.ImportFrom):
                module = "." * statement.level + (statement.module or "")
                absolute = importlib.util.resolve_name(module, package)
                where.update({alias.asname or alias.name: absolute for alias in statement.names})
    return where


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
    """The public names of ``package`` (its ``__all__``), each imported from its module on first
    use; ``init_file`` is the package's ``__init__.py``, whose ``TYPE_CHECKING`` imports say
    which module each name comes from."""

    def __init__(self, package: str, init_file: str) -> None:
        self._package = package
        module = sys.modules[package]
        imported = _type_checking_imports(Path(init_file).read_text(), package)
        # A name the package defines or imports itself is already there.
        held = vars(module)
        self._where = {name: imported[name] for name in module.__all__ if name not in held}
        module.__class__ = _Package
        object.__setattr__(module, "_lazy", self)

    def module_of(self, name: str) -> str | None:
        """The module public ``name`` comes from (None: not a public name)."""
        return self._where.get(name)

    def load(self, name: str) -> object:
        """The public ``name``, imported from its module and kept on the package."""
        module = self._where.get(name)
        if module is None:
            raise AttributeError(f"module {self._package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[self._package], name, value)
        return value

    def names(self) -> list[str]:
        """Every public name and what the package already holds, for ``dir()``."""
        return sorted({*vars(sys.modules[self._package]), *self._where})
