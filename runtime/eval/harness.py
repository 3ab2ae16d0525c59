"""Running a suite: every task, its repetitions (and fault-injected ones) under each model
config, with approvals decided by the suite's rules and every run checked by its checkers.

Each run is tagged as the eval's: its source is ``eval:SUITE`` with a fire id of the eval's
own (``corral runs list --schedule eval:SUITE`` lists them), and the report's figures are read
back from the store's records of exactly these runs (:mod:`runtime.eval.metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema

from runtime.app import Runtime
from runtime.auth import ROLES, Actor
from runtime.errors import ApprovalError
from runtime.eval.canary import with_models_config
from runtime.eval.errors import SuiteError
from runtime.eval.services import ensure_profiles, services
from runtime.eval.suite import Approvals, CheckUrl, OutputCheck, Suite, SuiteTask
from runtime.records import RunSource
from runtime.run.runner import RunResult, new_run_id, run_task
from runtime.task import VAR_RE, Task, load_task, parse_task

__all__ = [
    "ConfigSpec",
    "EvalRun",
    "check_config",
    "check_value",
    "eval_source",
    "fill_vars",
    "run_suite",
]


def check_config(path: Path) -> None:
    """A ``--models`` config a suite can run on: it loads, and its planner has its key (checked
    before any run: a missing key would fail every run of the suite); ModelConfigError if not."""
    import os

    from runtime.models.config import load_models_config

    load_models_config(Path("."), path).require("planner", os.environ)


@dataclass(frozen=True)
class ConfigSpec:
    """One model config under test: its label in the report and its file (None: the default
    one, as ``corral run`` would pick it)."""

    label: str
    path: Path | None


@dataclass
class EvalRun:
    """One run of the eval and how its checks went."""

    config: str
    task: str
    rep: int
    faulted: bool
    run_id: str | None
    status: str
    success: bool
    checks: dict[str, bool] = field(default_factory=dict)
    error: str | None = None
    injected: int = 0
    """Provider failures injected into this run."""


def eval_source(suite: str) -> str:
    """The schedule name the eval's runs are tagged with."""
    return f"eval:{suite}"


def fill_vars(value: Any, values: Mapping[str, str]) -> Any:
    """``value`` with ``{{var:NAME}}`` filled wherever it is known (strings in lists and maps)."""
    if isinstance(value, str):
        return VAR_RE.sub(lambda m: values.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [fill_vars(v, values) for v in value]
    if isinstance(value, dict):
        return {k: fill_vars(v, values) for k, v in value.items()}
    return value


def _same(expected: Any, actual: Any) -> bool:
    if expected == actual:
        return True
    # A number written in YAML as text (or filled from a variable) equals the number.
    if (
        isinstance(expected, str)
        and isinstance(actual, int | float)
        and not isinstance(actual, bool)
    ):
        return expected.strip() == str(actual)
    if isinstance(actual, str) and isinstance(expected, int | float):
        return actual.strip() == str(expected)
    return False


def check_value(check: OutputCheck, value: Any, values: Mapping[str, str]) -> bool:
    """Whether ``value`` passes ``check`` (its variables filled from ``values``)."""
    if check.equals is not None and not _same(fill_vars(check.equals, values), value):
        return False
    if check.json_schema is not None:
        try:
            jsonschema.validate(value, fill_vars(check.json_schema, values))
        except jsonschema.ValidationError:
            return False
    if check.regex is not None:
        text = value if isinstance(value, str) else json.dumps(value)
        if re.search(fill_vars(check.regex, values), text) is None:
            return False
    return True


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _subset(v, actual[k]) for k, v in expected.items()
        )
    return _same(expected, actual)


def _get_json(url: str, timeout_s: float) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.loads(response.read())


async def check_url(check: CheckUrl, values: Mapping[str, str]) -> bool:
    """GET the check URL (retried for up to a second while it does not match yet: a page's
    last report may still be on its way)."""
    url = fill_vars(check.url, values)
    if not url.startswith(("http://", "https://")):
        raise SuiteError(f"check_url: {url!r}: expected an http(s) URL")
    deadline = time.monotonic() + 1.0
    while True:
        try:
            got = await asyncio.to_thread(_get_json, url, check.timeout_s)
        except (OSError, ValueError):
            got = None
        ok = got is not None and (
            (check.equals is None or _same(fill_vars(check.equals, values), got))
            and (check.subset is None or _subset(fill_vars(check.subset, values), got))
        )
        if ok or time.monotonic() > deadline:
            return ok
        await asyncio.sleep(0.1)


class _Decider:
    """Answers the approval requests of one run by the suite's rules, as the eval's actor."""

    def __init__(self, rt: Runtime, actor: Actor, rules: Approvals, values: Mapping[str, str]):
        self.rt = rt
        self.actor = actor
        self.rules = rules
        self.values = values

    def decision(self, summary: str, url: str | None) -> tuple[bool, str]:
        """The first matching rule's decision (else the default) and the comment it leaves."""
        text = f"{summary}\n{url or ''}"
        for rule in self.rules.rules:
            if re.search(fill_vars(rule.match, self.values), text):
                return rule.decision == "approve", rule.comment or f"eval rule: {rule.match}"
        return self.rules.default == "approve", f"eval default: {self.rules.default}"

    async def watch(self, run_id: str) -> None:
        """Decide each request of ``run_id`` as it comes (until cancelled)."""
        while True:
            for request in await self.rt.approvals.list_requests("pending", run_id):
                approve, comment = self.decision(request.summary, request.page_url)
                # Decided or expired meanwhile: nothing left to answer.
                with contextlib.suppress(ApprovalError):
                    await self.rt.services.approvals.decide(
                        self.actor, request.id, approve, comment
                    )
            await asyncio.sleep(0.05)


def _load(suite: Suite, entry: SuiteTask) -> Task:
    if entry.file is not None:
        return load_task(suite.folder / entry.file)
    assert entry.task is not None
    return parse_task(entry.task, f"{suite.source}: tasks ({entry.task.get('name', '?')})")


async def _one(
    rt: Runtime,
    suite: Suite,
    entry: SuiteTask,
    task: Task,
    spec: ConfigSpec,
    values: dict[str, str],
    source: RunSource,
    faulted: bool,
    actor: Actor,
) -> tuple[RunResult, int]:
    client = transport = None
    if faulted:
        from runtime.eval.faults import fault_client, primary_planner_url

        assert suite.faults is not None
        prefix = primary_planner_url(rt.settings.home, spec.path)
        client, transport = fault_client(prefix, suite.faults.share, source.fire_id)
    goal = fill_vars(task.goal, values) if task.goal else None
    task = task.model_copy(update={"goal": goal})
    run_id = new_run_id()
    decider = _Decider(rt, actor, suite.approvals, values)
    running = asyncio.create_task(
        run_task(
            rt,
            task,
            entry.profile or suite.profile,
            values,
            run_id=run_id,
            source=source,
            http_client=client,
        )
    )
    watching = asyncio.create_task(decider.watch(run_id))
    try:
        await asyncio.wait({running, watching}, return_when=asyncio.FIRST_COMPLETED)
        if watching.done():
            # The eval cannot decide (e.g. its actor may not): the run would wait for nobody.
            running.cancel()
            watching.result()
        result = await running
    finally:
        for job in (running, watching):
            job.cancel()
        await asyncio.gather(running, watching, return_exceptions=True)
        if client is not None:
            await client.aclose()
    return result, transport.injected if transport is not None else 0


async def _checks(
    rt: Runtime,
    suite: Suite,
    entry: SuiteTask,
    result: RunResult,
    values: dict[str, str],
    source: RunSource,
) -> dict[str, bool]:
    checks: dict[str, bool] = {}
    expect = entry.expect
    if expect.output is not None:
        checks["output"] = check_value(expect.output, result.output, values)
    if expect.check_url is not None:
        checks["check_url"] = await check_url(expect.check_url, values)
    if expect.check_task is not None:
        spec = expect.check_task
        check = load_task(suite.folder / spec.file)
        if check.goal:
            raise SuiteError(f"{suite.source}: check_task {spec.file}: must be scripted (no goal)")
        found = await run_task(
            rt,
            check,
            spec.profile or entry.profile or suite.profile,
            {**values, **fill_vars(spec.vars, values)},
            source=source.model_copy(update={"fire_id": source.fire_id + ":check"}),
        )
        checks["check_task"] = found.status == "succeeded" and check_value(
            spec, found.output, values
        )
    return checks


async def run_suite(
    rt: Runtime,
    suite: Suite,
    configs: list[ConfigSpec],
    reps: int | None = None,
    progress: Callable[[EvalRun], None] | None = None,
) -> tuple[str, list[EvalRun]]:
    """Run ``suite`` under each config; the eval's id and every run, in order."""
    eval_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    tasks = [(entry, _load(suite, entry)) for entry in suite.tasks]
    profiles = [e.profile or suite.profile or t.profile for e, t in tasks]
    if None in profiles:
        raise SuiteError(f"{suite.source}: profile: a task has no profile (set profile:)")
    runs: list[EvalRun] = []
    # Approvals are decided as the CLI's actor, who must be allowed to: checked before any run.
    actor = await rt.services.actor(rt.settings.token)
    if actor.level < ROLES["admin"]:
        raise SuiteError(
            f"{suite.source}: approvals: {actor.name} ({actor.role}) cannot decide approval "
            "requests: run the eval as an admin (CORRAL_TOKEN)"
        )
    async with services(rt, suite.serve) as current:
        await ensure_profiles(rt, [p for p in profiles if p])
        number = 0
        for spec in configs:
            crt = await with_models_config(rt, spec.path) if spec.path is not None else rt
            for entry, task in tasks:
                plan = [(r, False) for r in range(reps or entry.reps or suite.reps)]
                if suite.faults is not None:
                    plan += [(r, True) for r in range(suite.faults.reps)]
                for rep, faulted in plan:
                    number += 1
                    seed = suite.seed + rep + (1000 if faulted else 0)
                    values = {
                        **suite.vars,
                        **current(),
                        **entry.vars,
                        "eval_run": f"{eval_id}-{number}",
                        "eval_rep": str(rep),
                        "eval_seed": str(seed),
                    }
                    values = {k: fill_vars(v, values) for k, v in values.items()}
                    source = RunSource(
                        schedule=eval_source(suite.name), fire_id=f"{eval_id}:{number}"
                    )
                    result, injected = await _one(
                        crt, suite, entry, task, spec, values, source, faulted, actor
                    )
                    checks = (
                        await _checks(crt, suite, entry, result, values, source)
                        if result.run_id is not None
                        else {}
                    )
                    run = EvalRun(
                        config=spec.label,
                        task=task.name,
                        rep=rep,
                        faulted=faulted,
                        run_id=result.run_id,
                        status=result.status,
                        success=result.status == "succeeded" and all(checks.values()),
                        checks=checks,
                        error=result.error,
                        injected=injected,
                    )
                    runs.append(run)
                    if progress is not None:
                        progress(run)
    return eval_id, runs
