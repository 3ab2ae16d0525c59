"""Suite files: the tasks of an eval, how often to run them, and how to tell they succeeded.

A suite is YAML validated by pydantic (``extra="forbid"``); a problem names the file, the field
and what was expected (exit 2). Example::

    name: demo-portal
    serve: [portal]                 # services the eval starts: portal (the demo), miniwob
    profile: alice                  # default profile of the tasks (made if missing)
    reps: 2                         # repetitions of each task (a task's reps overrides)
    approvals:                      # how approval requests are decided during the eval
      default: deny
      rules: [{match: "{{var:invoice}}", decision: approve}]
    faults: {share: 0.5, reps: 1}   # extra runs with that share of provider calls failing
    tasks:
      - file: tasks/count-unpaid.yaml           # relative to this file
        expect:
          output: {equals: "{{var:unpaid_alice}}"}
      - task: {name: inline, start_url: ..., goal: ...}
        expect:
          check_url: {url: "{{var:miniwob}}reward/{{var:eval_run}}", subset: {positive: true}}
          check_task: {file: tasks/read-status.yaml, equals: Paid}

``{{var:NAME}}`` in expectations, approval rules and a task's goal is filled from the run's
variables: the suite's and task's ``vars``, the services' (``portal``, ``miniwob``,
``unpaid_USER``, ``first_unpaid_USER``) and the eval's own (``eval_run``: unique per run,
``eval_rep``: the repetition from 0, ``eval_seed``: the seed of the repetition).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from profiles import describe_errors
from runtime.eval.errors import SuiteError

__all__ = [
    "ApprovalRule",
    "Approvals",
    "CheckTask",
    "CheckUrl",
    "Expect",
    "Faults",
    "OutputCheck",
    "Suite",
    "SuiteTask",
    "load_suite",
]

Service = Literal["portal", "miniwob"]


def _regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class OutputCheck(_Strict):
    """What a value must be: equal to, matching a JSON schema, and/or matching a regex."""

    equals: Any = None
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    regex: str | None = Field(None, description="searched in the value as text")

    _check_regex = field_validator("regex")(_regex)

    @model_validator(mode="after")
    def _something(self) -> OutputCheck:
        if self.equals is None and self.json_schema is None and self.regex is None:
            raise ValueError("expected at least one of equals, schema, regex")
        return self


class CheckUrl(_Strict):
    """After the run, GET ``url``: its JSON must equal ``equals`` or contain ``subset``."""

    url: str
    equals: Any = None
    subset: dict[str, Any] | None = None
    timeout_s: float = Field(5.0, gt=0, le=120)

    @model_validator(mode="after")
    def _something(self) -> CheckUrl:
        if self.equals is None and self.subset is None:
            raise ValueError("expected equals or subset")
        return self


class CheckTask(OutputCheck):
    """After the run, a scripted corral task (no goal) whose output is checked."""

    file: str
    profile: str | None = None
    vars: dict[str, str] = Field(default_factory=dict)


class Expect(_Strict):
    """The checkers of a task: all given must pass (with the run succeeding) for a success."""

    output: OutputCheck | None = None
    check_url: CheckUrl | None = None
    check_task: CheckTask | None = None


class SuiteTask(_Strict):
    """One task of the suite: a task file (relative to the suite) or an inline task."""

    file: str | None = None
    task: dict[str, Any] | None = Field(None, description="an inline task (the task file format)")
    profile: str | None = None
    vars: dict[str, str] = Field(default_factory=dict)
    reps: int | None = Field(None, ge=1, le=1000)
    expect: Expect = Field(default_factory=Expect)

    @model_validator(mode="after")
    def _one_source(self) -> SuiteTask:
        if (self.file is None) == (self.task is None):
            raise ValueError("expected exactly one of file (a task file) or task (inline)")
        return self


class ApprovalRule(_Strict):
    """Decide requests whose summary or page URL matches ``match`` (a regex)."""

    match: str
    decision: Literal["approve", "deny"]
    comment: str | None = None

    _check_match = field_validator("match")(_regex)


class Approvals(_Strict):
    """How the eval answers approval requests: the first matching rule, else ``default``."""

    default: Literal["approve", "deny"] = "approve"
    rules: list[ApprovalRule] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"default": value} if isinstance(value, str) else value


class Faults(_Strict):
    """Extra runs of every task in which a share of the first planner provider's calls fail."""

    share: float = Field(ge=0, le=1, description="0.3 or '30%'")
    reps: int = Field(1, ge=1, le=100)
    seed: int = 0

    @field_validator("share", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                return float(value.strip()[:-1]) / 100
            except ValueError:
                return value
        return value


class Suite(_Strict):
    """A suite file."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str | None = None
    serve: list[Service] = Field(default_factory=list)
    profile: str | None = Field(None, description="the tasks' profile unless they name one")
    reps: int = Field(1, ge=1, le=1000)
    seed: int = 0
    vars: dict[str, str] = Field(default_factory=dict)
    approvals: Approvals = Field(default_factory=Approvals)
    faults: Faults | None = None
    tasks: list[SuiteTask] = Field(min_length=1)
    source: Path = Field(Path("."), exclude=True)

    @property
    def folder(self) -> Path:
        """Where relative task files are found."""
        return self.source.parent


def load_suite(path: Path) -> Suite:
    """Read and validate a suite file; every problem names the file and the field."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise SuiteError(f"{path}: suite file not found") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SuiteError(f"{path}: not valid YAML{where}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read the suite file: {exc}") from exc
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: (top level): expected a mapping of suite fields")
    try:
        suite = Suite.model_validate({**data, "source": path})
    except ValidationError as exc:
        lines = describe_errors(exc, unknown_field=True, inputs=True, strip_value_error=True)
        raise SuiteError("; ".join(f"{path}: {line}" for line in lines)) from exc
    for i, entry in enumerate(suite.tasks):
        named = [("file", entry.file)]
        if entry.expect.check_task is not None:
            named.append(("expect.check_task.file", entry.expect.check_task.file))
        for where, rel in named:
            if rel is not None and not (suite.folder / rel).is_file():
                raise SuiteError(f"{path}: tasks.{i}.{where}: {rel!r}: no such task file")
    return suite
