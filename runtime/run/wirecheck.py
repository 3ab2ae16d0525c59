"""The risk rules applied to a state-changing request on the wire (see :mod:`profiles.wire`).

A request the page sends inside an action's window is classified like a form submission: its
URL's path and query words stand for the button's name (``POST /api/pay`` reads "api pay"; a
``DELETE`` also reads "delete"), its method and URL for the form's. Anything the rules would not
simply allow is held: the gate allowed the action, not this request.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

from policies import REQUEST_KIND, ActionFacts, Policy, classify
from profiles import WireCheck, WireRequest, off_allowlist

__all__ = ["request_check", "request_facts"]

_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")


def _words(method: str, url: str) -> str:
    parts = urlsplit(url)
    # camelCase and snake_case split too: /api/payNow and /api/pay_now both read "pay now".
    words = [w.lower() for w in _WORDS.findall(unquote(f"{parts.path} {parts.query}"))]
    # HTTP's DELETE says what it does whatever the path: the deletion rules should see it.
    return " ".join(["delete", *words] if method == "DELETE" else words)


def request_facts(request: WireRequest, allowed_domains: Sequence[str]) -> ActionFacts:
    """The facts the risk rules see for ``request``."""
    return ActionFacts(
        kind=REQUEST_KIND,
        side_effect="submit",
        name=_words(request.method, request.url) or None,
        form_method=request.method.lower(),
        form_action=request.url,
        page_url=request.page_url,
        form_off_allowlist=off_allowlist(request.url, allowed_domains),
    )


def request_check(
    policy: Policy | None, task: str, profile: str, allowed_domains: Sequence[str]
) -> WireCheck:
    """A check that lets through only what the rules allow outright."""
    domains = list(allowed_domains)

    def check(request: WireRequest) -> str | None:
        verdict = classify(request_facts(request, domains), policy, task, profile)
        if verdict.decision == "allow":
            return None
        why = "; ".join(verdict.reasons) or verdict.decision
        return f"{why} (not part of an action a person approved)"

    return check
