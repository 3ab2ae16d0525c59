"""``corral eval``: run a suite under one or two model configs and report the figures, or
compare a canary schedule's baseline and canary fires (``--schedule``).

A suite is a file, or the name of a shipped one (``demo``, ``miniwob``: in
``runtime/eval/suites/``). ``--models`` takes a model config file (``corral.toml`` format), or
``scripted:careful`` / ``scripted:hasty``: the scripted solvers on a loopback OpenAI-compatible
server, for CI (``runtime.eval.solver``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from runtime.cli.common import err_console, fail, out_console, print_json, run_async, with_runtime

if TYPE_CHECKING:
    from runtime.app import Runtime
    from runtime.eval.harness import ConfigSpec, EvalRun

__all__ = ["SUITES_DIR", "eval_command"]

SUITES_DIR = Path(__file__).resolve().parent.parent / "eval" / "suites"
_EVAL_MODULES = ("runtime.app", "runtime.run.runner", "runtime.eval.harness")


def _suite_path(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    shipped = SUITES_DIR / f"{name}.yaml"
    if shipped.is_file():
        return shipped
    known = ", ".join(sorted(p.stem for p in SUITES_DIR.glob("*.yaml")))
    fail(f"{name}: no such suite file, nor a shipped suite (shipped: {known})")


@click.command("eval")
@click.argument("suite_file", required=False)
@click.option(
    "--models",
    "models",
    multiple=True,
    help="a model config file (corral.toml format), or scripted:careful / scripted:hasty; "
    "give it twice to compare two configs side by side",
)
@click.option("--reps", type=click.IntRange(1, 1000), help="repetitions of every task")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option(
    "--out",
    "out_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="also write the report as Markdown to this file",
)
@click.option("--schedule", help="compare this canary schedule's baseline and canary fires")
@click.option(
    "--since",
    default="7d",
    show_default=True,
    help="with --schedule: fires of this long ago until now (e.g. 7d, 12h)",
)
def eval_command(
    suite_file: str | None,
    models: tuple[str, ...],
    reps: int | None,
    as_json: bool,
    out_file: Path | None,
    schedule: str | None,
    since: str,
) -> None:
    """Run a suite under model configs and report success, cost, latency, validity, overrides."""
    from runtime.eval.errors import SuiteError

    if schedule is not None:
        if suite_file or models or reps:
            fail("--schedule compares live fires: give no suite, --models or --reps with it")
        report = run_async(lambda: with_runtime(lambda rt: _live(rt, schedule, since)))
        _emit(report, as_json, out_file)
        return
    if suite_file is None:
        fail("expected a suite file (or a shipped suite: demo, miniwob), or --schedule NAME")
    if len(models) > 2:
        fail("--models: at most two configs are compared side by side")
    if len(set(models)) != len(models):
        fail("--models: the same config is given twice")
    from runtime.eval.suite import load_suite

    try:
        suite = load_suite(_suite_path(suite_file))
    except SuiteError as exc:
        fail(str(exc))
    with contextlib.ExitStack() as stack:
        specs = _configs(models, stack)
        report = run_async(
            lambda: with_runtime(lambda rt: _run(rt, suite, specs, reps), browser=_EVAL_MODULES)
        )
    _emit(report, as_json, out_file)


def _configs(models: tuple[str, ...], stack: contextlib.ExitStack) -> list[ConfigSpec]:
    """The configs to run, scripted ones served for the eval (stopped with ``stack``)."""
    from runtime.eval.harness import ConfigSpec, check_config
    from runtime.eval.solver import SOLVER_KEY_ENV, VARIANTS, SolverServer, write_scripted_config
    from runtime.models.types import ModelConfigError

    if not models:
        return [ConfigSpec("default", None)]
    specs = []
    server = None
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="corral-eval-")))
    for name in models:
        if name.startswith("scripted:"):
            variant = name.partition(":")[2]
            if variant not in VARIANTS:
                fail(
                    f"--models {name}: unknown scripted model (known: "
                    f"{', '.join('scripted:' + v for v in VARIANTS)})"
                )
            if server is None:
                server = stack.enter_context(SolverServer())
                # The scripted server takes any key; the SDK wants one.
                os.environ.setdefault(SOLVER_KEY_ENV, "scripted")
            specs.append(ConfigSpec(name, write_scripted_config(folder, variant, server.url)))
            continue
        path = Path(name)
        try:
            check_config(path)
        except ModelConfigError as exc:
            fail(f"--models {name}: {exc}")
        specs.append(ConfigSpec(str(path), path.resolve()))
    return specs


async def _run(
    rt: Runtime, suite: Any, specs: list[ConfigSpec], reps: int | None
) -> dict[str, Any]:
    from runtime.eval.harness import eval_source, run_suite
    from runtime.eval.metrics import read_run
    from runtime.eval.report import build_report

    console = err_console()

    def progress(run: EvalRun) -> None:
        mark = "ok  " if run.success else "FAIL"
        fault = " (faults injected)" if run.faulted else ""
        console.print(
            f"{mark} {run.config}  {run.task} #{run.rep}{fault}  run {run.run_id}  {run.status}"
            + (f"  checks {run.checks}" if run.checks else ""),
            highlight=False,
            soft_wrap=True,
        )

    eval_id, runs = await run_suite(rt, suite, specs, reps, progress)
    rt.release_browsers()
    figures = [await read_run(rt.store, run) for run in runs]
    return build_report(
        f"eval {suite.name} ({eval_id})",
        [s.label for s in specs],
        figures,
        {
            "suite": suite.name,
            "eval_id": eval_id,
            "tag": eval_source(suite.name),
            "runs": [
                {
                    "config": r.config,
                    "task": r.task,
                    "rep": r.rep,
                    "faulted": r.faulted,
                    "run_id": r.run_id,
                    "status": r.status,
                    "success": r.success,
                    "checks": r.checks,
                    "injected": r.injected,
                }
                for r in runs
            ],
        },
    )


async def _live(rt: Runtime, name: str, since: str) -> dict[str, Any]:
    from runtime.cli.common import cli_actor
    from runtime.eval.live import live_runs
    from runtime.eval.metrics import read_run
    from runtime.eval.report import build_report
    from runtime.schedules.timing import parse_duration

    seconds = parse_duration(since, "--since")
    schedule = await rt.services.schedules.get(await cli_actor(rt), name)
    canary = schedule.policy.canary
    start = datetime.now(UTC) - timedelta(seconds=seconds)
    labels, runs = await live_runs(rt, name, start, str(canary.models) if canary else None)
    figures = [await read_run(rt.store, run) for run in runs]
    return build_report(
        f"schedule {name}: fires since {start:%Y-%m-%d %H:%M}Z",
        labels,
        figures,
        {"schedule": name, "canary": canary.model_dump(mode="json") if canary else None},
    )


def _emit(report: dict[str, Any], as_json: bool, out_file: Path | None) -> None:
    from runtime.eval.report import print_report, to_markdown

    if out_file is not None:
        out_file.write_text(to_markdown(report))
    if as_json:
        print_json(report)
    else:
        print_report(report, out_console())
    sys.stdout.flush()
