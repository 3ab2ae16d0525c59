"""The dependency rule, read from the source: only a package's public names cross its boundary.

A module of ``profiles``, ``tools``, ``policies`` or ``runtime`` that imports from another of them
imports from the package itself (``from tools import Click``, not ``from tools.facts import ...``),
and only names that package lists in ``__all__``; nothing private (``_name``) crosses. Which package
may import which is checked by the import-linter contracts in ``pyproject.toml``
(``lint-imports``, run by ``scripts/test``). Tests and scripts may reach into submodules.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("profiles", "tools", "policies", "runtime")


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def _public(package: str) -> set[str]:
    names = getattr(importlib.import_module(package), "__all__", None)
    assert names is not None, f"{package}/__init__.py has no __all__"
    return set(names)


def _crossings(source: str, where: str) -> list[str]:
    """Every import in ``source`` (the module at ``where``, relative to the project) that crosses
    a package boundary other than through ``__all__``."""
    own = where.split("/")[0]
    problems = []
    for node in ast.walk(ast.parse(source, where)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in PACKAGES and top != own and alias.name != top:
                    problems.append(f"{where}:{node.lineno}: import {alias.name} (use {top})")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top = node.module.split(".")[0]
            if top not in PACKAGES or top == own:
                continue
            if node.module != top:
                names = ", ".join(a.name for a in node.names)
                problems.append(
                    f"{where}:{node.lineno}: from {node.module} import {names} (use from {top})"
                )
                continue
            public = _public(top)
            for alias in node.names:
                if alias.name.startswith("_") or alias.name not in public:
                    problems.append(f"{where}:{node.lineno}: {alias.name} is not in {top}.__all__")
    return problems


def test_only_public_names_cross_a_package_boundary() -> None:
    problems = [
        p
        for path in _modules()
        for p in _crossings(path.read_text(), path.relative_to(ROOT).as_posix())
    ]
    assert problems == []


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_exists(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in _public(package) if not hasattr(module, name)]
    assert missing == []


def test_the_check_sees_a_crossing() -> None:
    # The rule itself can fail: a submodule import, a private name and an unlisted one.
    source = (
        "import tools.facts\n"
        "from tools.facts import probe\n"
        "def f():\n"
        "    from tools import _private, Click, not_listed\n"
        "from runtime.task import Task\n"
    )
    found = _crossings(source, "runtime/probe.py")
    assert found == [
        "runtime/probe.py:1: import tools.facts (use tools)",
        "runtime/probe.py:2: from tools.facts import probe (use from tools)",
        "runtime/probe.py:4: _private is not in tools.__all__",
        "runtime/probe.py:4: not_listed is not in tools.__all__",
    ]
