"""Task files: YAML validated by pydantic, with errors that name the file, field and expectation.

A step is a mapping with exactly one action key (``goto``, ``click``, ``fill``, ...) plus optional
modifiers (``when``, ``name``, ``optional``). ``{{var:NAME}}`` placeholders are substituted at run
time from ``--var``, then the profile's vars, then the task's ``vars``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from profiles import TraceMode, describe_errors
from runtime.alerts import AlertPolicy
from runtime.errors import TaskFileError
from runtime.retention import Retention
from tools import ACTION_TYPES, Action, AnyAction, Locate, refused_scheme

__all__ = [
    "STEP_KINDS",
    "UNRESTRICTED",
    "VAR_RE",
    "AllowTarget",
    "Budget",
    "OutputPolicy",
    "Step",
    "Task",
    "When",
    "load_task",
    "load_task_text",
    "parse_task",
    "read_task_text",
]

# The step keys of the task format; `goto` is the scripted name of `navigate`.
STEP_KINDS: dict[str, str] = {"goto": "navigate", **{k: k for k in ACTION_TYPES if k != "navigate"}}
_STEP_MODIFIERS = {"when", "name", "optional"}
_ACTION = TypeAdapter(Action)
VAR_RE = re.compile(r"\{\{\s*var:([A-Za-z0-9_.-]+)\s*\}\}")
UNRESTRICTED = "*"
"""``allowed_domains: ["*"]``: no limit of the task's (a model-driven task has one by default)."""


class When(BaseModel):
    """A guard: the step runs only if every given condition holds (checked without waiting)."""

    model_config = ConfigDict(extra="forbid")
    url_contains: str | None = None
    url_matches: str | None = Field(None, description="a regular expression")
    visible: Locate | None = None
    not_visible: Locate | None = None

    @field_validator("url_matches")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class Step(BaseModel):
    """One scripted step."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    action: Any = Field(description="one of the tools.Action models")
    when: When | None = None
    name: str | None = None
    optional: bool = Field(False, description="a failure is recorded but does not stop the run")

    @property
    def typed(self) -> AnyAction:
        """The action with its precise type."""
        return self.action  # type: ignore[no-any-return]


class AllowTarget(BaseModel):
    """A target the task places as known: an action on it is not 'unknown' (a risky rule, such
    as payments, still asks)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="a regular expression for the accessible name (case-insensitive)")
    role: str | None = Field(None, description="only elements with this role, e.g. button")

    @field_validator("name")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class Budget(BaseModel):
    """Stop rules for a run."""

    model_config = ConfigDict(extra="forbid")
    max_steps: int = Field(40, ge=1, le=10_000)
    max_usd: float | None = Field(None, ge=0, description="spend cap over all model calls")
    max_tokens: int | None = Field(None, ge=1, description="token cap over all model calls")
    timeout_s: float = Field(300, gt=0, le=86_400)
    max_failures: int = Field(3, ge=1, le=100, description="consecutive failed actions")
    max_prompt_chars: int = Field(
        60_000,
        ge=4_000,
        le=2_000_000,
        description="the planner's conversation restarts past this many characters, from a "
        "summary of the earlier turns (short-term memory stays bounded)",
    )


class OutputPolicy(BaseModel):
    """What a goal's result must satisfy before the run accepts it (runtime.agent.evidence)."""

    model_config = ConfigDict(extra="forbid")
    evidence: Literal["required", "optional"] = Field(
        "optional",
        description="required: every field of done()'s result cites the page text it came from; "
        "optional: cited evidence is checked when given",
    )
    secret_like: Literal["refuse", "allow"] = Field(
        "refuse",
        description="refuse a result holding a secret-like string (a key, a token, a private "
        "key, a password field) or a value of the run's own secrets",
    )
    deny_fields: list[str] = Field(
        default_factory=list,
        description="field names a result may not contain, at any depth (e.g. card_number)",
    )


class Task(BaseModel):
    """A task file."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    description: str | None = None
    profile: str | None = None
    start_url: str | None = None
    allowed_domains: list[str] = Field(
        default_factory=list,
        description="hosts the run may reach; ['*'] for no limit (a model-driven task is "
        "limited to its start_url's site without a list)",
    )
    allow_targets: list[AllowTarget] = Field(
        default_factory=list,
        description="targets to place as known: name regexes, or {role, name} mappings",
    )
    secrets: list[str] = Field(default_factory=list)
    vars: dict[str, str] = Field(default_factory=dict)
    steps: list[Step] = Field(default_factory=list)
    goal: str | None = None
    output: str | None = Field(None, description="the extracted value that is the run's result")
    output_schema: dict[str, Any] | None = None
    output_policy: OutputPolicy = Field(default_factory=OutputPolicy)
    alerts: AlertPolicy = Field(
        default_factory=AlertPolicy,
        description="token burn, provider errors, spend near the cap: when, and what follows",
    )
    budget: Budget = Field(default_factory=Budget)
    step_timeout_s: float = Field(10.0, gt=0, le=3600)
    upload_dir: str | None = Field(None, description="the only folder uploads may come from")
    models: dict[Literal["planner", "vision", "extractor", "shadow"], list[str]] | None = Field(
        None, description="role chains overriding corral.toml for this task"
    )
    screenshots: Literal["always", "on_failure", "never"] = Field(
        "always", description="a screenshot per recorded step, only for failed steps, or none"
    )
    vision: Literal["auto", "always", "never"] = Field(
        "auto", description="auto: a vision step when the snapshot gives too little to act on"
    )
    full_page_every: int | None = Field(
        None,
        ge=0,
        le=1000,
        description="a goal: the planner gets the whole page at least every N pages (between, "
        "after in-place actions, the lines that changed); 0: always the whole page; default 8",
    )
    trace: TraceMode = Field(
        "on",
        description="on: a scrubbed Playwright trace.zip; no_bodies: without request or response "
        "bodies; off: no trace at all",
    )
    retention: Retention | None = Field(
        None,
        description="how long this task's run data is kept, per kind (screenshots, traces, "
        "excerpts, results): 30d, 12h, forever; beats the profile's rule and the global default",
    )
    source: str | None = Field(None, exclude=True, description="the file it was read from")

    @field_validator("trace", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `on` / `off` as a boolean.
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @field_validator("allowed_domains")
    @classmethod
    def _unrestricted_alone(cls, value: list[str]) -> list[str]:
        if UNRESTRICTED in [v.strip() for v in value] and len(value) > 1:
            raise ValueError(
                f"'{UNRESTRICTED}' means no limit and cannot be combined with other entries: "
                f"give either ['{UNRESTRICTED}'] or a list of hosts"
            )
        return [UNRESTRICTED if v.strip() == UNRESTRICTED else v for v in value]

    @field_validator("start_url")
    @classmethod
    def _http_start(cls, value: str | None) -> str | None:
        scheme = None if value is None or VAR_RE.match(value) else refused_scheme(value)
        if scheme is not None:
            raise ValueError(f"{scheme} URLs are not allowed: expected an http(s) URL")
        return value

    @field_validator("allow_targets", mode="before")
    @classmethod
    def _plain_names(cls, value: Any) -> Any:
        # A plain string is a name regex for any role.
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    def referenced_vars(self) -> set[str]:
        """Every ``{{var:NAME}}`` used in the steps, the start URL and the allowlist."""
        found: set[str] = set()
        for step in self.steps:
            found.update(VAR_RE.findall(step.action.model_dump_json(by_alias=True)))
        if self.start_url:
            found.update(VAR_RE.findall(self.start_url))
        for domain in self.allowed_domains:
            found.update(VAR_RE.findall(domain))
        return found


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", int: "an integer"}.get(
        type(value), type(value).__name__
    )


def _format(exc: ValidationError, prefix: str) -> str:
    lines = describe_errors(exc, prefix=prefix, drop=_UNION_TAGS, unknown_field=True, inputs=True)
    return "; ".join(lines)


_UNION_TAGS = set(ACTION_TYPES)


def _parse_step(raw: Any, where: str) -> Step:
    if not isinstance(raw, dict):
        raise TaskFileError(
            f"{where}: expected a mapping like {{click: {{role: button, name: OK}}}}, "
            f"got {_type_name(raw)}"
        )
    kinds = [k for k in raw if k not in _STEP_MODIFIERS]
    if len(kinds) != 1:
        raise TaskFileError(
            f"{where}: expected exactly one step kind ({', '.join(STEP_KINDS)}), "
            f"got {', '.join(map(str, kinds)) or 'none'}"
        )
    key = kinds[0]
    kind = STEP_KINDS.get(str(key))
    if kind is None:
        raise TaskFileError(
            f"{where}: unknown step kind '{key}'; expected one of: {', '.join(STEP_KINDS)}"
        )
    body = raw[key]
    if kind == "navigate" and isinstance(body, str):
        body = {"url": body}
    elif kind == "switch_tab" and isinstance(body, int):
        body = {"index": body}
    elif kind == "back" and body is None:
        body = {}
    if not isinstance(body, dict):
        raise TaskFileError(f"{where}.{key}: expected a mapping, got {_type_name(body)}")
    try:
        action = _ACTION.validate_python({**body, "kind": kind})
    except ValidationError as exc:
        raise TaskFileError(_format(exc, f"{where}.{key}.")) from exc
    modifiers = {k: v for k, v in raw.items() if k in _STEP_MODIFIERS}
    try:
        return Step(action=action, **modifiers)
    except ValidationError as exc:
        raise TaskFileError(_format(exc, f"{where}.")) from exc


def parse_task(data: Any, source: str) -> Task:
    """Validate already-loaded YAML data as a task; ``source`` names it in errors."""
    if not isinstance(data, dict):
        raise TaskFileError(f"{source}: expected a mapping of task fields, got {_type_name(data)}")
    raw_steps = data.get("steps", [])
    if not isinstance(raw_steps, list):
        raise TaskFileError(
            f"{source}: steps: expected a list of steps, got {_type_name(raw_steps)}"
        )
    steps = [_parse_step(s, f"{source}: steps[{i}]") for i, s in enumerate(raw_steps)]
    fields = {k: v for k, v in data.items() if k != "steps"}
    unknown = sorted(set(fields) - set(Task.model_fields) | ({"source"} & set(fields)))
    if unknown:
        expected = ", ".join(f for f in Task.model_fields if f != "source")
        raise TaskFileError(f"{source}: {unknown[0]}: unknown field (expected one of: {expected})")
    try:
        task = Task(**fields, steps=steps, source=source)
    except ValidationError as exc:
        raise TaskFileError(f"{source}: " + _format(exc, "")) from exc
    if not task.steps and not task.goal:
        raise TaskFileError(f"{source}: give 'steps' (scripted), a 'goal' (model-driven), or both")
    saved = {s.action.as_ for s in task.steps if s.action.kind == "extract"}
    if task.output is not None and not task.goal and task.output not in saved:
        raise TaskFileError(
            f"{source}: output: no extract step saves '{task.output}' "
            f"(extracted: {', '.join(sorted(saved)) or 'nothing'})"
        )
    return task


def load_task(path: Path) -> Task:
    """Read and validate a task file."""
    return load_task_text(read_task_text(path), str(path))


def read_task_text(path: Path) -> str:
    """A task file's text (``~`` expanded); a missing or unreadable file is a TaskFileError
    naming it as given."""
    try:
        return path.expanduser().read_text()
    except FileNotFoundError as exc:
        raise TaskFileError(f"{path}: task file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskFileError(f"{path}: cannot read the task file: {exc}") from exc


def load_task_text(text: str, source: str) -> Task:
    """Validate a task file's text; ``source`` names it in messages (a path, a schedule)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TaskFileError(f"{source}: not valid YAML{where}: {problem}") from exc
    return parse_task(data, source)
