"""Retention rules: how long each kind of run data is kept, and which rule applies to a run.

Four kinds of data a run leaves behind (see ``docs/retention.md`` for exactly what each covers):

- ``screenshots``: the step and approval screenshots;
- ``traces``: the Playwright ``trace.zip``;
- ``excerpts``: page text kept in step records (the planner's page excerpt, values an action
  read off the page, the model's stated reason, the summary of earlier turns), the run folder's
  ``steps.jsonl`` copy, and the page text the result's evidence cites;
- ``results``: the run's result value and its evidence, ``result.json`` and the downloads.

A rule is a duration (``30d``, ``12h``, ``2w``, ``90m``, ``3600s``) counted from the run's end,
or ``forever`` (also ``never``: never expires). Rules come from three levels, the first that sets
a kind wins: the task file's ``retention:``, then the profile's rule (``corral retention set
--profile``), then the global default (``CORRAL_RETENTION_<KIND>``); a kind none of them sets is
kept forever.

This module is only the rules (pydantic, no I/O): the task file, the settings and the service
layer (:mod:`runtime.services.retention`, which deletes) read them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from profiles import UserError

__all__ = [
    "FOREVER",
    "KINDS",
    "RETENTION_ENV_PREFIX",
    "AppliedRule",
    "Kind",
    "Retention",
    "parse_duration",
    "resolve",
]

Kind = Literal["screenshots", "traces", "excerpts", "results"]
KINDS: tuple[Kind, ...] = get_args(Kind)
FOREVER = "forever"
RETENTION_ENV_PREFIX = "CORRAL_RETENTION_"
_KEEP_WORDS = frozenset({"forever", "never"})
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_DURATION = re.compile(r"(\d{1,6})\s*([smhdw])")
_EXPECTED = "a duration like 30d, 12h, 2w, 90m or 3600s, or 'forever'"
# Python's timedelta tops out at 999,999,999 days; a rule past a century is 'forever' in effect.
_MAX_DAYS = 36_600


def parse_duration(text: str) -> timedelta | None:
    """``7d`` -> 7 days; ``forever`` / ``never`` -> None (never expires); ValueError otherwise."""
    value = str(text).strip().lower()
    if value in _KEEP_WORDS:
        return None
    m = _DURATION.fullmatch(value)
    if not m or int(m[1]) == 0:
        raise ValueError(f"expected {_EXPECTED}")
    seconds = int(m[1]) * _UNITS[m[2]]
    if seconds > _MAX_DAYS * 86_400:
        raise ValueError(f"at most {_MAX_DAYS}d; use 'forever' to keep for good")
    return timedelta(seconds=seconds)


def _normal(value: Any) -> str | None:
    """A rule as stored and shown: ``30d`` as given (lower-case), ``forever`` for keep."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"expected {_EXPECTED}")
    text = str(value)
    return FOREVER if parse_duration(text) is None else text.strip().lower().replace(" ", "")


class Retention(BaseModel):
    """How long each kind of run data is kept; a kind left out falls through to the next level
    (task, then profile, then the global default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    screenshots: str | None = Field(None, description="step and approval screenshots")
    traces: str | None = Field(None, description="the Playwright trace.zip")
    excerpts: str | None = Field(
        None, description="page text in step records (excerpts, read values, model reasons)"
    )
    results: str | None = Field(None, description="the result value, result.json, downloads")

    @field_validator("screenshots", "traces", "excerpts", "results", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> str | None:
        return _normal(value)

    def get(self, kind: Kind) -> str | None:
        """The rule this level sets for ``kind`` (None: not set here)."""
        value: str | None = getattr(self, kind)
        return value

    def given(self) -> dict[str, str]:
        """The kinds this level sets, with their rules."""
        return {k: v for k in KINDS if (v := self.get(k)) is not None}

    @classmethod
    def from_pairs(cls, pairs: Iterable[str], source: str) -> Retention:
        """``["screenshots=7d", "traces=forever"]``; a bad pair is a UserError naming
        ``source``, the kind and what is expected."""
        values: dict[str, str] = {}
        for pair in pairs:
            kind, sep, rule = pair.partition("=")
            kind = kind.strip().lower()
            if not sep or kind not in KINDS:
                raise UserError(
                    f"{source}: {pair!r}: expected KIND=DURATION with KIND one of "
                    f"{', '.join(KINDS)} (e.g. screenshots=30d)"
                )
            values[kind] = rule
        return cls.checked(values, source)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Retention:
        """The global default from ``CORRAL_RETENTION_SCREENSHOTS`` and the like."""
        values = {
            kind: text
            for kind in KINDS
            if (text := env.get(RETENTION_ENV_PREFIX + kind.upper(), "").strip())
        }
        for kind, text in values.items():
            try:
                _normal(text)
            except ValueError:
                # Not echoed in full: a value pasted into the wrong variable may be a secret.
                shown = text if len(text) <= 12 else text[:12] + "..."
                raise UserError(
                    f"{RETENTION_ENV_PREFIX}{kind.upper()}={shown!r}: expected {_EXPECTED}"
                ) from None
        return cls(**values)

    @classmethod
    def checked(cls, data: Any, source: str) -> Retention:
        """``data`` validated; a problem is a UserError naming ``source`` and the field."""
        from pydantic import ValidationError

        from profiles import describe_errors

        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise UserError(
                f"{source}: expected a mapping like {{screenshots: 30d, traces: 7d}}, "
                f"got {type(data).__name__}"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            lines = describe_errors(exc, unknown_field=True, strip_value_error=True)
            raise UserError(f"{source}: " + "; ".join(lines)) from exc


class AppliedRule(BaseModel):
    """The rule that applies to one kind of one run's data, and where it came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Kind
    rule: str = Field(description="a duration like 30d, or 'forever'")
    source: Literal["task", "profile", "global", "default"]

    @property
    def keep_for(self) -> timedelta | None:
        """How long after the run's end the data is kept (None: forever)."""
        return parse_duration(self.rule)

    def words(self) -> str:
        """``30d (task)``: the rule and its level, for reports and the audit log."""
        return f"{self.rule} ({self.source})"


def resolve(
    task: Retention | None, profile: Retention | None, default: Retention | None
) -> dict[Kind, AppliedRule]:
    """Per kind, the first level that sets it: task, then profile, then the global default;
    else ``forever`` (the built-in default)."""
    levels: list[tuple[Literal["task", "profile", "global"], Retention | None]] = [
        ("task", task),
        ("profile", profile),
        ("global", default),
    ]
    out: dict[Kind, AppliedRule] = {}
    for kind in KINDS:
        out[kind] = AppliedRule(kind=kind, rule=FOREVER, source="default")
        for source, level in levels:
            rule = level.get(kind) if level is not None else None
            if rule is not None:
                out[kind] = AppliedRule(kind=kind, rule=rule, source=source)
                break
    return out
