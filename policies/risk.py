"""Risk classification: a verdict for every action before it runs, from rules over what the action
does and what it touches.

Inputs are plain facts (``ActionFacts``): the action's side-effect class, the target element's
role, accessible name and nearby text, the form's method and action URL, the page URL, and
whether the form or the link leads off the allowlist (decided where the allowlist is known, by
``tools``). Rules come from a policy (a validated model; ``runtime.policyfile`` reads the file)
layered as: task overrides, profile overrides, the policy's
own rules, then the safe defaults. Every matching rule contributes; the most severe verdict wins
(``deny`` > ``require_approval`` > ``allow``) and all their reasons are kept.

This module knows nothing of Playwright, profiles or the runtime: ``tools`` gathers the facts,
the runtime asks for the verdict.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "DEFAULT_RULES",
    "REQUEST_KIND",
    "SAFE_NAMES",
    "SAFE_RULES",
    "UNKNOWN_RULE",
    "ActionFacts",
    "AutoApprove",
    "Decision",
    "Match",
    "Policy",
    "Rule",
    "Verdict",
    "classify",
]

Decision = Literal["allow", "require_approval", "deny"]
_SEVERITY: dict[str, int] = {"allow": 0, "require_approval": 1, "deny": 2}


class ActionFacts(BaseModel):
    """What is known about an action before it runs."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(description="the action type, e.g. click, fill, navigate")
    side_effect: str = Field(description="read | input | navigate | download | upload | submit")
    role: str | None = None
    name: str | None = Field(None, description="the target's accessible name")
    nearby_text: str | None = Field(None, description="text around the target (its form/section)")
    form_method: str | None = None
    form_action: str | None = None
    page_url: str | None = None
    target_url: str | None = Field(None, description="where a navigation or link leads")
    form_off_allowlist: bool = Field(
        False, description="form_action is on a host outside the task's allowed domains"
    )
    target_off_allowlist: bool = Field(
        False, description="target_url is on a host outside the task's allowed domains"
    )
    submits_form: bool = Field(False, description="the action submits form_action")
    scripted: bool = Field(
        False, description="a control that does something only through page scripts"
    )
    secret_login: bool = Field(
        False, description="the form holds a secret of this run that may go where it posts"
    )


class Match(BaseModel):
    """Conditions of a rule; all given must hold. Patterns are case-insensitive regexes."""

    model_config = ConfigDict(extra="forbid")
    kinds: list[str] | None = None
    side_effects: list[str] | None = None
    roles: list[str] | None = None
    name: str | None = None
    text: str | None = Field(None, description="matched against the name and the nearby text")
    url: str | None = Field(None, description="matched against the page URL")
    form_method: str | None = None
    form_off_allowlist: bool | None = Field(
        None, description="the form posts to a host outside the task's allowed domains"
    )
    form_posts: bool | None = Field(
        None, description="the element sits in (or submits) a POST form"
    )
    has_form: bool | None = Field(None, description="the element sits in (or submits) a form")
    submits_form: bool | None = None
    scripted: bool | None = None
    secret_login: bool | None = None
    target_inside: bool | None = Field(
        None, description="leads to an http(s) URL on the allowlist (any, without one)"
    )
    target_outside: bool | None = Field(
        None, description="leads to a URL the allowlist refuses, or one that is not http(s)"
    )

    @field_validator("name", "text", "url")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class Rule(BaseModel):
    """When ``match`` holds, this verdict applies, for this reason."""

    model_config = ConfigDict(extra="forbid")
    name: str
    match: Match
    verdict: Decision
    reason: str


class Verdict(BaseModel):
    """The decision about one action, with every reason that led to it."""

    model_config = ConfigDict(extra="forbid")
    decision: Decision
    reasons: list[str] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list, description="names of the matching rules")
    gating: list[str] = Field(
        default_factory=list, description="names of the rules that gave this decision"
    )


class AutoApprove(BaseModel):
    """Approve a gated action without asking, for low-risk repeats, only where a policy says so.

    Applies when every rule that asked for approval is listed in ``rules``, a person approved the
    same action (same target on the same page, task and profile) at least ``after_approvals``
    times before, none of those is of unknown outcome, and this run has used the rule fewer than
    ``max_per_run`` times.
    """

    model_config = ConfigDict(extra="forbid")
    name: str
    rules: list[str] = Field(min_length=1, description="risk rule names this may approve")
    after_approvals: int = Field(1, ge=0, description="earlier approvals by a person needed")
    max_per_run: int = Field(5, ge=1)
    tasks: list[str] | None = Field(None, description="only for these tasks (default: all)")
    profiles: list[str] | None = Field(None, description="only for these profiles")

    def covers(self, verdict: Verdict, task: str | None, profile: str | None) -> bool:
        """True if this entry may approve ``verdict`` for this task and profile."""
        if verdict.decision != "require_approval" or not verdict.gating:
            return False
        if self.tasks is not None and task not in self.tasks:
            return False
        if self.profiles is not None and profile not in self.profiles:
            return False
        return set(verdict.gating) <= set(self.rules)


class Policy(BaseModel):
    """A policy file: rules, plus overrides per task and per profile."""

    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = 1
    rules: list[Rule] = Field(default_factory=list)
    approval_ttl_s: float | None = Field(
        None, gt=0, le=7 * 86_400, description="how long a request waits; expiry means deny"
    )
    auto_approve: list[AutoApprove] = Field(default_factory=list)
    tasks: dict[str, list[Rule]] = Field(default_factory=dict)
    profiles: dict[str, list[Rule]] = Field(default_factory=dict)
    use_defaults: bool = Field(True, description="apply DEFAULT_RULES after these")

    @model_validator(mode="after")
    def _known_rules(self) -> Policy:
        known = {r.name for r in [*self.rules, *DEFAULT_RULES, *SAFE_RULES]} | {UNKNOWN_RULE}
        known |= {
            r.name for rules in [*self.tasks.values(), *self.profiles.values()] for r in rules
        }
        for i, entry in enumerate(self.auto_approve):
            unknown = sorted(set(entry.rules) - known)
            if unknown:
                raise ValueError(
                    f"auto_approve.{i}.rules: unknown rule '{unknown[0]}' "
                    f"(known: {', '.join(sorted(known))})"
                )
        return self

    def rules_for(self, task: str | None, profile: str | None) -> list[Rule]:
        """Rules in the order they are considered."""
        layered = [*self.tasks.get(task or "", []), *self.profiles.get(profile or "", [])]
        return [*layered, *self.rules, *(DEFAULT_RULES if self.use_defaults else [])]


def _rule(rule: str, verdict: Decision, reason: str, /, **match: object) -> Rule:
    return Rule(name=rule, verdict=verdict, reason=reason, match=Match.model_validate(match))


SAFE_NAMES = (
    r"^\s*(next|previous|prev|back|more|less|first|last|close|cancel|dismiss|search|filter"
    r"|filters|refresh|reload|help|details|menu|(next|previous|prev|first|last|older|newer) page"
    r"|page \d+|\d{1,3}|[<>«»‹›×✕]|((show|hide|view|open|expand|collapse|toggle|sort|load)"
    r"( [\w-]+){0,2}))\s*$"
)
"""Whole names of controls that commit nothing (pagination, disclosure, dialogs, search)."""

DEFAULT_RULES: list[Rule] = [
    _rule(
        "payments",
        "require_approval",
        "looks like a payment",
        side_effects=["submit"],
        text=r"\b(pay|payment|purchase|place (an )?order|checkout|check out|buy|subscribe"
        r"|upgrade)\b",
    ),
    _rule(
        "deletions",
        "require_approval",
        "looks like a deletion",
        side_effects=["submit"],
        text=r"\b(delete|remove|erase|close (my |the )?account|cancel (my |the )?subscription)\b",
    ),
    _rule(
        "sending",
        "require_approval",
        "looks like sending a message or money",
        side_effects=["submit"],
        text=r"\b(send|transfer|wire|submit (the )?(order|payment))\b",
    ),
    _rule(
        "account-changes",
        "require_approval",
        "changes the account or its credentials",
        side_effects=["submit"],
        text=r"\b(change|update|reset) (my |the )?(password|e-?mail|phone|username|2fa)\b",
    ),
    _rule(
        "confirmations",
        "require_approval",
        "confirms an irreversible step",
        side_effects=["submit"],
        roles=["button"],
        name=r"^\s*(yes|confirm|i agree|proceed)\b",
    ),
    _rule(
        "foreign-forms",
        "require_approval",
        "submits a form to a host outside the allowlist",
        side_effects=["submit"],
        form_off_allowlist=True,
    ),
    _rule("uploads", "require_approval", "uploads a file", side_effects=["upload"]),
    _rule(
        "off-allowlist-navigation",
        "deny",
        "leads to a URL outside the allowed domains, or not http(s)",
        target_outside=True,
    ),
]

SAFE_RULES: list[Rule] = [
    # What the defaults can place as safe: consulted only when no other rule matched a
    # submission; any other submission is unknown, and unknown means ask.
    _rule(
        "safe-controls",
        "allow",
        "a control that commits nothing",
        side_effects=["submit"],
        form_posts=False,
        name=SAFE_NAMES,
    ),
    _rule(
        "session-controls",
        "allow",
        "signs in or out",
        side_effects=["submit"],
        name=r"^\s*((sign|log) ?(in|on|out|off)|login|logout)\s*$",
    ),
    _rule(
        "safe-roles",
        "allow",
        "a tab, menu item, option or toggle outside any POST form",
        side_effects=["submit"],
        form_posts=False,
        roles=[
            "tab",
            "menuitem",
            "menuitemcheckbox",
            "menuitemradio",
            "option",
            "switch",
            "checkbox",
            "radio",
            "treeitem",
            "combobox",
            "listbox",
        ],
    ),
    _rule(
        "links-inside",
        "allow",
        "a link to an allowed host",
        side_effects=["submit"],
        roles=["link"],
        scripted=False,
        target_inside=True,
    ),
    _rule(
        "get-forms",
        "allow",
        "a search or filter form (GET) on an allowed host",
        side_effects=["submit"],
        has_form=True,
        form_posts=False,
        form_off_allowlist=False,
    ),
    _rule(
        "upload-controls",
        "allow",
        "sends files an approved upload step chose",
        side_effects=["submit"],
        has_form=True,
        form_off_allowlist=False,
        name=r"^\s*(upload|attach)( [\w-]+){0,2}\s*$",
    ),
    _rule(
        "login-forms",
        "allow",
        "a form holding this run's own secret, posting where the secret may go",
        side_effects=["submit"],
        secret_login=True,
    ),
]

REQUEST_KIND = "request"
"""The ``kind`` of the facts of a state-changing request on the wire (``runtime.run.wirecheck``)."""
UNKNOWN_RULE = "unknown-submission"
"""The verdict's rule name when a submission matched no rule: unknown means ask."""


def _search(pattern: str | None, *texts: str | None) -> bool:
    if pattern is None:
        return True
    return any(t and re.search(pattern, t, re.IGNORECASE) for t in texts)


def _target(f: ActionFacts) -> str | None:
    """Where a link or navigation leads: inside the allowlist, outside it, or nowhere."""
    if not f.target_url:
        return None
    url = str(f.target_url)
    scheme = urlsplit(url).scheme.lower()
    if url.strip().lower() == "about:blank":
        return "inside"
    if scheme not in ("http", "https"):
        # Other schemes are refused (or not) by the navigation check itself, with an error that
        # names the scheme (tools.navigation); a `javascript:` link is a scripted control, which
        # the rules classify by what it is, not as a navigation.
        return None
    if f.target_off_allowlist:
        return "outside"
    return "inside"


def _matches(m: Match, f: ActionFacts) -> bool:
    if m.kinds is not None and f.kind not in m.kinds:
        return False
    if m.side_effects is not None and f.side_effect not in m.side_effects:
        return False
    if m.roles is not None and (f.role or "") not in m.roles:
        return False
    if m.form_method is not None and (f.form_method or "").lower() != m.form_method.lower():
        return False
    flags = {
        "form_off_allowlist": f.form_off_allowlist and bool(f.form_action),
        "form_posts": (f.form_method or "").lower() == "post",
        "has_form": bool(f.form_action),
        "submits_form": f.submits_form,
        "scripted": f.scripted,
        "secret_login": f.secret_login,
        "target_inside": _target(f) == "inside",
        "target_outside": _target(f) == "outside",
    }
    for flag, value in flags.items():
        wanted = getattr(m, flag)
        if wanted is not None and wanted != value:
            return False
    return (
        _search(m.name, f.name)
        and _search(m.text, f.name, f.nearby_text)
        and _search(m.url, f.page_url)
    )


def classify(
    facts: ActionFacts,
    policy: Policy | None = None,
    task: str | None = None,
    profile: str | None = None,
    extra: Sequence[Rule] = (),
) -> Verdict:
    """The verdict for one action: the most severe of every matching rule; with none, allow,
    except a submission, which is unknown and asks. ``extra`` rules (a task's) come first."""
    policy = policy or Policy()
    rules: Sequence[Rule] = [*extra, *policy.rules_for(task, profile)]
    hits = [r for r in rules if _matches(r.match, facts)]
    if not hits:
        # A request on the wire (runtime.run.wirecheck) is already inside an action the gate
        # placed; asking again for every POST of that action would only add noise.
        if facts.side_effect == "submit" and facts.kind != REQUEST_KIND and policy.use_defaults:
            placed = [r.name for r in SAFE_RULES if _matches(r.match, facts)]
            if placed:
                return Verdict(decision="allow", rules=placed)
            # Unknown means ask: keywords in one language cannot be the whole defence.
            return Verdict(
                decision="require_approval",
                reasons=["a submission no rule places as safe (unknown means ask)"],
                rules=[UNKNOWN_RULE],
                gating=[UNKNOWN_RULE],
            )
        return Verdict(decision="allow")
    decision = max((r.verdict for r in hits), key=lambda d: _SEVERITY[d])
    return Verdict(
        decision=decision,
        reasons=list(dict.fromkeys(r.reason for r in hits if r.verdict == decision)),
        rules=[r.name for r in hits],
        gating=[r.name for r in hits if r.verdict == decision],
    )
