"""Evidence at the checkpoint: a goal's result is accepted only with its sources and within the
task's output policy.

``done(result, evidence)`` cites, per field of the result (each top-level key of an object
result; ``result`` for any other), a short excerpt of the page text it came from, copied as the
planner saw it. The run checks, before it accepts the result:

- the output schema (:mod:`runtime.agent.phases`);
- every cited excerpt is on a page this run showed the planner (refs, spacing and case aside);
  with ``output_policy.evidence: required`` every field must cite one;
- the output policy: no value of the run's own secrets, no secret-like string (a private key, an
  API key or token of a known shape, a JWT, or a non-empty value of a field named like a password
  or key) unless ``secret_like: allow``, and none of ``deny_fields`` at any depth.

A result that fails goes back to the model with the reason (bounded: the run stops after
``MAX_INVALID_RESULTS`` such results). An accepted result's evidence is recorded with the run:
per field the excerpt, the page's URL, the step after which that page was seen, and the ref on the
page line that holds the excerpt; the replay links each field to that step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from profiles import looks_secret
from runtime.task import OutputPolicy

__all__ = ["Cited", "Pages", "check_result", "result_fields"]

_REF = re.compile(r"\[(?:[a-z]\d*)?[ep]\d+\]")
_SPACE = re.compile(r"\s+")
_SECRET_NAMES = re.compile(
    r"^(pass(word|wd|phrase)?|secret|client_secret|api[_-]?key|private[_-]?key|access[_-]?token"
    r"|refresh[_-]?token|otp|totp|pin|cvv|cvc)$",
    re.IGNORECASE,
)
_MAX_EXCERPT = 500


def _plain(text: str) -> str:
    """Page text as excerpts are compared: refs and all spacing out (the compact text drops
    some spaces a page has, e.g. ``Due:2026``), case folded."""
    return _SPACE.sub("", _REF.sub(" ", text)).casefold()


@dataclass(frozen=True)
class Seen:
    """A page the planner was shown: its text (as the planner knows it), after which step."""

    after_step: int | None
    url: str
    text: str


@dataclass
class Pages:
    """Every page of the run the planner was shown, for finding what an excerpt cites."""

    seen: list[Seen] = field(default_factory=list)

    def add(self, after_step: int | None, url: str, text: str) -> None:
        """Keep ``text`` unless it is the same as the last page kept."""
        if not self.seen or self.seen[-1].text != text:
            self.seen.append(Seen(after_step, url, text))

    def find(self, excerpt: str) -> tuple[Seen, str | None] | None:
        """The latest page holding ``excerpt``, and the ref on the line holding it (if any)."""
        wanted = _plain(excerpt)
        if not wanted:
            return None
        for page in reversed(self.seen):
            if wanted not in _plain(page.text):
                continue
            for line in page.text.splitlines():
                if wanted in _plain(line):
                    found = _REF.search(line)
                    return page, found.group(0)[1:-1] if found else None
            return page, None  # it spans lines
        return None


@dataclass(frozen=True)
class Cited:
    """Where one field of an accepted result came from."""

    field: str
    excerpt: str
    url: str
    after_step: int | None
    """The step after which the page was seen (None: the first page, before any step)."""
    ref: str | None

    def record(self) -> dict[str, Any]:
        """As stored with the run (and shown by the replay)."""
        return {
            "field": self.field,
            "excerpt": self.excerpt,
            "url": self.url,
            "step": None if self.after_step is None else self.after_step + 1,
            "ref": self.ref,
        }


def result_fields(result: Any) -> list[str]:
    """The fields evidence is cited for: an object's keys, else ``result``."""
    return [str(k) for k in result] if isinstance(result, dict) else ["result"]


def _walk(value: Any, key: str | None = None) -> list[tuple[str | None, Any]]:
    """Every (key, value) pair at any depth (lists' items under their list's key)."""
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _walk(v, str(k))]
    if isinstance(value, list):
        return [pair for item in value for pair in _walk(item, key)]
    return [(key, value)]


def _policy_problems(
    result: Any, policy: OutputPolicy, shows_secret: Callable[[str], bool] | None
) -> list[str]:
    problems = []
    keys = {k for k, _ in _walk(result) if k is not None}
    if isinstance(result, dict):
        keys |= {str(k) for k in result}
    denied = sorted(keys & set(policy.deny_fields))
    if denied:
        problems.append(f"the result may not contain the field(s) {', '.join(denied)}")
    if shows_secret is not None and shows_secret(json.dumps(result, ensure_ascii=False)):
        problems.append("the result holds a secret of this run; secrets never go in a result")
    if policy.secret_like == "refuse":
        for key, value in _walk(result):
            text = str(value) if value is not None else ""
            if looks_secret(text):
                problems.append(
                    f"the field {key or 'result'} holds a secret-like string (a key or token); "
                    "results may not carry credentials"
                )
                break
            if key is not None and text and _SECRET_NAMES.match(key):
                problems.append(f"the field {key} looks like a credential; leave it out")
                break
    return problems


def check_result(
    result: Any,
    evidence: dict[str, str] | None,
    policy: OutputPolicy,
    pages: Pages,
    shows_secret: Callable[[str], bool] | None,
) -> tuple[list[Cited], list[str]]:
    """The evidence of an acceptable result, or the problems to send back to the model."""
    problems = _policy_problems(result, policy, shows_secret)
    fields = result_fields(result)
    given = evidence or {}
    unknown = sorted(set(given) - set(fields))
    if unknown:
        problems.append(
            f"evidence names field(s) the result does not have: {', '.join(unknown)} "
            f"(the fields are: {', '.join(fields)})"
        )
    if policy.evidence == "required":
        missing = [f for f in fields if not given.get(f)]
        if missing:
            problems.append(
                f"cite evidence for every field: missing for {', '.join(missing)} (evidence: "
                "{field: a short excerpt of the page text it came from, copied as shown})"
            )
    cited = []
    for name in fields:
        excerpt = given.get(name)
        if not excerpt:
            continue
        excerpt = excerpt[:_MAX_EXCERPT]
        found = pages.find(excerpt)
        if found is None:
            problems.append(
                f"the evidence for {name} is not on any page of this run; copy it from a page "
                "as shown"
            )
            continue
        page, ref = found
        cited.append(Cited(name, excerpt, page.url, page.after_step, ref))
    return cited, problems
