"""Evaluating model configs: suites of tasks with checkers, run under one or two configs, and
the report of their figures (``corral eval``); canary fires of schedules. See ``docs/eval.md``.

Modules: :mod:`~runtime.eval.suite` (suite files), :mod:`~runtime.eval.harness` (running one),
:mod:`~runtime.eval.metrics` (figures from the store), :mod:`~runtime.eval.stats` (intervals),
:mod:`~runtime.eval.report` (tables, JSON, Markdown), :mod:`~runtime.eval.services` (the demo
portal and MiniWoB++ pages, :mod:`~runtime.eval.miniwob`), :mod:`~runtime.eval.solver` (the
scripted models), :mod:`~runtime.eval.faults` (injected provider failures),
:mod:`~runtime.eval.canary` and :mod:`~runtime.eval.live` (canary fires and their comparison).
"""

from runtime.eval.canary import is_canary, with_models_config
from runtime.eval.errors import SuiteError
from runtime.eval.harness import ConfigSpec, EvalRun, run_suite
from runtime.eval.metrics import Figures, RunFigures, figures, read_run
from runtime.eval.report import build_report, print_report, to_markdown
from runtime.eval.suite import Suite, load_suite

__all__ = [
    "ConfigSpec",
    "EvalRun",
    "Figures",
    "RunFigures",
    "Suite",
    "SuiteError",
    "build_report",
    "figures",
    "is_canary",
    "load_suite",
    "print_report",
    "read_run",
    "run_suite",
    "to_markdown",
    "with_models_config",
]
