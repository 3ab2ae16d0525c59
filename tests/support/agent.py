"""Helpers for tests that drive the agent loop with the fake models of ``runtime.testing``."""

from __future__ import annotations

import re
from typing import Any

from runtime import parse_task
from runtime.models import Message, ModelResponse, ToolSpec
from runtime.testing import call, reply

__all__ = ["goal_task", "login_then", "page_of", "ref_of"]


def page_of(messages: list[Message]) -> str:
    """What the planner was told, laid out as one page: the results of all its calls, then the
    last whole page it was sent and the page changes after it."""
    texts = [
        (m.role, "\n".join(p.text for p in m.content if p.type == "text"))
        for m in messages
        if m.role in ("user", "tool")
    ]
    start = max((i for i, (_, text) in enumerate(texts) if "Current page:\n" in text), default=0)
    results = [text for role, text in texts if role == "tool"]
    pages = [text for role, text in texts[start:] if role == "user"]
    return "\n".join([*results, *pages])


def ref_of(text: str, role: str, name: str) -> str:
    """The ref of ``role name`` in a compact page (``[e7] textbox Username``; a named button,
    like a link, has no role: ``[e8] Sign in``)."""
    word = f"(?:{role} )?" if role == "button" else f"{role} "
    for line in text.splitlines():
        m = re.search(rf"\[(\w+)\] {word}\"?{re.escape(name)}", line)
        if m:
            return m.group(1)
    raise AssertionError(f"no {role} {name!r} on the page:\n{text}")


def login_then(finish: Any, **click: Any) -> Any:
    """A planner that signs in as alice when on the login page, then calls ``finish(page)``;
    ``click`` goes to the Sign in click's reply (its text, its usage)."""

    def decide(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        page = page_of(messages)
        fills = sum(c.name == "fill" for m in messages for c in m.tool_calls)
        if "# Sign in" in page:
            if fills == 0:
                return reply(call("fill", ref=ref_of(page, "textbox", "Username"), value="alice"))
            if fills == 1:
                secret = "{{secret:alice.password}}"
                return reply(call("fill", ref=ref_of(page, "textbox", "Password"), value=secret))
            return reply(call("click", ref=ref_of(page, "button", "Sign in")), **click)
        return finish(page)

    return decide


def goal_task(portal: str, **extra: Any) -> Any:
    """A goal task on ``portal``: count alice's unpaid invoices, as ``{"unpaid": N}``."""
    return parse_task(
        {
            "name": "goal",
            "start_url": f"{portal}/dashboard",
            "secrets": ["alice.password"],
            "goal": "Report how many unpaid invoices the account has.",
            "output_schema": {
                "type": "object",
                "properties": {"unpaid": {"type": "integer"}},
                "required": ["unpaid"],
            },
            **extra,
        },
        "goal.yaml",
    )
