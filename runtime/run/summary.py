"""What a person is shown of an action, and what an approval is bound to.

``summarize`` gives the one line a person reads (sanitized: nothing in it can drive a terminal or
a web page); ``fingerprint`` the exact action and page state a person approved (a change means a
new request); ``idempotency_key`` the same thing done to the same target whatever the run (so a
person sees what happened to earlier ones); ``denial_keys`` what a denial sticks to.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import unicodedata
from typing import Any
from urllib.parse import urlsplit

from profiles import Redactor
from tools import AnyAction, Checked, Navigate, Press, action_target

__all__ = [
    "denial_keys",
    "digest",
    "fingerprint",
    "idempotency_key",
    "sanitize_summary",
    "summarize",
    "where",
]

# ANSI/VT escape sequences (CSI, OSC, and two-character escapes), then any other control or
# format character (bidi overrides included): nothing in a summary may drive a terminal.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)?|\x1b[@-_]|\x9b[0-?]*[ -/]*[@-~]"
)
_VERBS = {
    "click": "Click",
    "fill": "Fill",
    "select": "Select in",
    "press": "Press a key in",
    "upload": "Upload a file to",
    "download": "Download",
    "hover": "Hover",
}
# What an approval is bound to besides the action itself.
_FINGERPRINT_FACTS = (
    "page_url",
    "role",
    "name",
    "nearby_text",
    "form_method",
    "form_action",
    "target_url",
    "submits_form",
    "scripted",
    "side_effect",
)
_TARGET_FACTS = ("role", "name", "form_action", "target_url")


def digest(value: Any) -> str:
    """A SHA-256 of ``value`` as canonical JSON."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def where(url: str | None) -> str:
    """The path and query of ``url``: where on a site an action happens."""
    parts = urlsplit(url or "")
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def sanitize_summary(text: str, *, for_html: bool = False) -> str:
    """``text`` safe to show a person: no escape sequences or control characters (a terminal),
    and with ``for_html`` HTML-escaped too. Rich markup is escaped where rich prints it."""
    text = _ESCAPES.sub("", text)
    text = "".join(
        " " if ch in "\t\n\r" else ch
        for ch in text
        if ch in "\t\n\r" or unicodedata.category(ch) not in ("Cc", "Cf", "Co", "Cs")
    )
    text = re.sub(r"\s+", " ", text).strip()
    return html.escape(text) if for_html else text


def summarize(action: AnyAction, facts: dict[str, Any]) -> str:
    """One line for a person: ``Click 'Pay $120.00' on /invoices/1042``, sanitized."""
    if isinstance(action, Navigate):
        return sanitize_summary(f"Open {facts.get('target_url') or action.url}")
    target = action_target(action)
    name = facts.get("name") or (target.describe() if target else "the focused element")
    verb = _VERBS.get(action.kind, action.kind.title())
    if isinstance(action, Press):
        verb = f"Press {action.key} on"
    return sanitize_summary(f"{verb} '{name}' on {where(facts.get('page_url'))}")


def fingerprint(action: AnyAction, checked: Checked, redactor: Redactor) -> str:
    """The action and the page state it was checked on, as an approval is bound to them."""
    facts = checked.facts
    # What will really be sent: every field's name and value (secrets as placeholders).
    fields = [
        [name, kind, redactor.text(value) if value else value]
        for name, kind, value in checked.fields
    ]
    return digest(
        {
            "action": action.model_dump(mode="json", by_alias=True, exclude_none=True),
            **{k: facts.get(k) for k in _FINGERPRINT_FACTS},
            "fields": fields,
        }
    )


def idempotency_key(task: str, profile: str, action: AnyAction, facts: dict[str, Any]) -> str:
    """The same thing done to the same target on the same page, whatever the run."""
    return digest(
        {
            "task": task,
            "profile": profile,
            "kind": action.kind,
            "where": where(facts.get("page_url")),
            **{k: facts.get(k) for k in _TARGET_FACTS},
        }
    )


def denial_keys(facts: dict[str, Any]) -> list[str]:
    """What a denial sticks to: the element (role, name, form target or link) and its form."""
    keys = []
    if facts.get("role") or facts.get("name"):
        target = facts.get("form_action") or facts.get("target_url")
        keys.append("target:" + digest([facts.get("role"), facts.get("name"), target]))
    if facts.get("form_action"):
        keys.append("form:" + digest([facts.get("form_action"), facts.get("form_method") or "get"]))
    return keys
