"""Scripted models for CI: a loopback OpenAI-compatible server whose answers come from a
deterministic solver reading the page text in each request.

corral talks to it as to any provider: the real ``openai`` SDK through corral's router, with a
model config whose ``base_url`` is ``http://127.0.0.1:PORT/...`` (:func:`write_scripted_config`).
Two variants are served (the request's ``model``):

- ``careful`` reads the task (MiniWoB's query line, the demo portal's goal) and does it;
- ``hasty`` does the same, but on some episodes (deterministically, by a hash of the page it
  starts on) first sends a call to a tool that does not exist, or acts on the wrong element.

The server answers under two path prefixes (``/primary/v1`` and ``/backup/v1``) so a config
can name two providers and a chain can fall back from one to the other.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.eval.loopback import LoopbackServer
from tools import ACTIONABLE_ROLES

__all__ = ["SOLVER_KEY_ENV", "VARIANTS", "SolverServer", "decide", "write_scripted_config"]

SOLVER_KEY_ENV = "EVAL_SOLVER_KEY"
VARIANTS = ("careful", "hasty")
_HASTY_INVALID = 0.3
"""The share of episodes the hasty solver starts with a call to a tool that does not exist."""
_HASTY_WRONG = 0.35
"""The share of episodes the hasty solver acts on the wrong element."""

_FULL = "Current page:\n"
_REF_LINE = re.compile(r"\[(e\d+)\]\s+(\w+)(?::)?\s*(.*)$")


@dataclass(frozen=True)
class _Element:
    ref: str
    role: str
    name: str


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


# Role words the compact page spells out (tools.compact): a link or a named button has none
# (``[e3] Pay``).
_ROLES = ACTIONABLE_ROLES - {"link"}


def _elements(page: str) -> list[_Element]:
    found = []
    for line in page.splitlines():
        for chunk in re.split(r"(?=\[e\d+\])", line):
            m = _REF_LINE.match(chunk.strip())
            if not m:
                continue
            role, rest = m.group(2), m.group(3).strip()
            if role not in _ROLES:
                # Something to click, named by the whole rest of its line.
                role, rest = "button", f"{role} {rest}".strip() if rest else role
            found.append(_Element(m.group(1), role, rest.strip('"')))
    return found


def _pick(episode: str, variant: str, what: str) -> float:
    digest = hashlib.sha256(f"{variant}|{what}|{episode}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _episode(line: str) -> str:
    """What identifies an episode across evals: the first page's URL without its origin (a
    port of the eval's own) and its run id (``episode=``), i.e. the task and its seed."""
    line = re.sub(r"^https?://[^/\s]+", "", line)
    return re.sub(r"([?&])episode=[^&\s]*", r"\1", line)


def _call(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "arguments": json.dumps(args)}


def decide(variant: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The solver's one tool call for this conversation (``{"name", "arguments"}``)."""
    goal = next((_text(m) for m in messages if m.get("role") == "user"), "")
    pages = [_text(m) for m in messages if m.get("role") == "user" and _FULL in _text(m)]
    first = pages[0].split(_FULL, 1)[1] if pages else ""
    current = pages[-1].split(_FULL, 1)[1] if pages else ""
    results = [_text(m) for m in messages if m.get("role") == "tool"]
    asked = sum(1 for m in messages if m.get("role") == "assistant" and m.get("tool_calls"))
    done = sum(1 for r in results if ": rejected:" not in r)
    episode = _episode(first.splitlines()[0] if first else goal)
    hasty = variant == "hasty"
    if hasty and asked == 0 and _pick(episode, variant, "invalid") < _HASTY_INVALID:
        return _call("clik", ref="e1")
    wrong = hasty and _pick(episode, variant, "wrong") < _HASTY_WRONG
    if m := re.search(r"Pay invoice (INV-[\d-]+)", goal):
        refused = bool(results) and "not done" in results[-1]
        return _pay_step(m.group(1), goal, current, wrong, refused)
    plan = _plan(goal, first, current, wrong)
    return plan[done] if done < len(plan) else _call("done", result=_result(goal, current))


def _named(elements: list[_Element], role: str, name: str | None = None) -> _Element | None:
    for el in elements:
        if el.role == role and (name is None or el.name.lower() == name.lower()):
            return el
    return None


def _plan(goal: str, first: str, current: str, wrong: bool) -> list[dict[str, Any]]:
    """Every action of the task, from the page it started on (refs stay valid on a page)."""
    els = _elements(first)
    query = first.splitlines()[1] if len(first.splitlines()) > 1 else ""
    if m := re.match(r'Click on the "(.*)" button\.', query):
        buttons = [e for e in els if e.role == "button"]
        target = _named(buttons, "button", m.group(1))
        if wrong:
            others = [b for b in buttons if target is None or b.name != target.name]
            target = others[0] if others else target
        return [_call("click", ref=target.ref)] if target else []
    if m := re.match(r"Select (.*) from the list and click Submit\.", query):
        box, submit = _named(els, "combobox"), _named(els, "button", "Submit")
        if box is None or submit is None:
            return []
        options = [o.strip().rstrip("*") for o in box.name.split(",")]
        option = m.group(1)
        if wrong:
            option = next((o for o in options if o != option), option)
        return [_call("select", ref=box.ref, option=option), _call("click", ref=submit.ref)]
    if m := re.match(r"Select (.*) and click Submit\.", query):
        names = [] if m.group(1) == "nothing" else [n.strip() for n in m.group(1).split(",")]
        if wrong and names:
            names = names[:-1]
        boxes = [e for e in els if e.role == "checkbox" and e.name in names]
        submit = _named(els, "button", "Submit")
        return [_call("click", ref=b.ref) for b in boxes] + (
            [_call("click", ref=submit.ref)] if submit else []
        )
    if m := re.match(r'Enter "(.*)" into the text field and press Submit\.', query):
        box, submit = _named(els, "textbox"), _named(els, "button", "Submit")
        value = m.group(1).lower() if wrong else m.group(1)
        if box is None or submit is None:
            return []
        return [_call("fill", ref=box.ref, value=value), _call("click", ref=submit.ref)]
    if m := re.match(r'Enter the username "(.*)" and the password "(.*)" into', query):
        user, password = _named(els, "textbox", "Username"), _named(els, "textbox", "Password")
        login = _named(els, "button", "Login")
        if user is None or password is None or login is None:
            return []
        first_value, second = (m.group(2), m.group(1)) if wrong else (m.group(1), m.group(2))
        return [
            _call("fill", ref=user.ref, value=first_value),
            _call("fill", ref=password.ref, value=second),
            _call("click", ref=login.ref),
        ]
    if m := re.match(r"Click on Tab #(\d)\.", query):
        want = int(m.group(1))
        if wrong:
            want = want % 3 + 1
        tabs = [e for e in els if e.role.startswith("Tab") or e.name.startswith("Tab #")]
        tab = next((e for e in tabs if e.name.endswith(f"#{want}")), None)
        return [_call("click", ref=tab.ref)] if tab else []
    return []


def _pay_step(number: str, goal: str, page: str, wrong: bool, refused: bool) -> dict[str, Any]:
    """The next step of paying ``number``, from the page as it is now (every step of it
    navigates, so the page is whole): open the invoice, Pay, Confirm payment, report."""
    els = _elements(page)
    if not refused:
        confirm = _named(els, "button", "Confirm payment")
        if confirm is not None:
            return _call("click", ref=confirm.ref)
        pay = next((e for e in els if e.role == "button" and e.name.startswith("Pay ")), None)
        if pay is not None:
            return _call("click", ref=pay.ref)
        links = _invoice_links(page)
        target = next((e for e in links if e.name == number), None)
        if wrong:
            target = next((e for e in links if e.name != number), target)
        if target is not None:
            return _call("click", ref=target.ref)
    return _call("done", result=_result(goal, page))


def _invoice_links(page: str) -> list[_Element]:
    """The invoice links of a compact invoice table: the header says what every number
    starts with (``Number (INV-1002-00…)``), each row starts with its link's ref and the rest."""
    head = re.search(r"Number \(([^)…]*)…\)", page)
    prefix = head.group(1) if head else ""
    return [
        _Element(m.group(1), "link", prefix + m.group(2))
        for m in re.finditer(r"^\[(e\d+)\]([\w-]+)\|", page, re.MULTILINE)
    ]


def _result(goal: str, page: str) -> Any:
    if "Count the unpaid invoices" in goal:
        found = re.search(r"(\d+) invoices?\b", page)
        return int(found.group(1)) if found else len(set(re.findall(r"INV-\d{4}-\d{4}", page)))
    if "Pay invoice" in goal:
        status = re.search(r"^Status: (\w+)", page, re.MULTILINE)
        return status.group(1) if status else "unknown"
    return {"done": True}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    calls: list[int]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if not self.path.endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        variant = str(body.get("model", ""))
        if variant not in VARIANTS:
            self._send(404, {"error": {"message": f"no model {variant}", "type": "not_found"}})
            return
        messages = body.get("messages", [])
        call = decide(variant, messages)
        self.calls.append(1)
        chars = sum(len(json.dumps(m)) for m in messages)
        last = len(json.dumps(messages[-1])) if messages else 0
        prompt = chars // 4 + 200
        completion = len(call["arguments"]) // 4 + 12
        self._send(
            200,
            {
                "id": f"chatcmpl-{len(self.calls)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": variant,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {
                                    "id": f"call_{len(self.calls)}",
                                    "type": "function",
                                    "function": call,
                                }
                            ],
                        },
                        "finish_reason": "tool_calls",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    # A provider's prefix cache would serve all but the newest turn.
                    "prompt_tokens_details": {"cached_tokens": max(0, (chars - last) // 4)},
                },
            },
        )

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class SolverServer(LoopbackServer):
    """The scripted models on 127.0.0.1 (a free port), for ``with`` blocks."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        super().__init__(type("Handler", (_Handler,), {"calls": self.calls}), "solver-server")

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self.origin


def write_scripted_config(folder: Path, variant: str, base_url: str) -> Path:
    """A real model config (``corral.toml``) for the ``variant`` solver: planner chain
    ``solver:VARIANT`` then ``backup:VARIANT`` (the same solver under another provider, for
    fallback), the other variant as the shadow planner, and prices so cost is counted."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown scripted model {variant!r} (known: {', '.join(VARIANTS)})")
    other = next(v for v in VARIANTS if v != variant)
    prices = "\n".join(
        f'[prices."{p}:{v}"]\ninput = {0.4 if v == "careful" else 0.15}\n'
        f"output = {1.6 if v == 'careful' else 0.6}\ncached = "
        f"{0.1 if v == 'careful' else 0.04}\n"
        for p in ("solver", "backup")
        for v in VARIANTS
    )
    text = f"""# The scripted '{variant}' solver (corral eval --models scripted:{variant}).
[providers.solver]
type = "openai"
base_url = "{base_url}/primary/v1"
api_key_env = "{SOLVER_KEY_ENV}"
max_retries = 0
timeout_s = 30
vision = false

[providers.backup]
type = "openai"
base_url = "{base_url}/backup/v1"
api_key_env = "{SOLVER_KEY_ENV}"
max_retries = 0
timeout_s = 30
vision = false

[roles]
planner = ["solver:{variant}", "backup:{variant}"]
vision = ["solver:{variant}"]
extractor = ["solver:{variant}"]
shadow = ["solver:{other}"]

[breaker]
failures = 1000
cooldown_s = 0

{prices}"""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"scripted-{variant}.toml"
    path.write_text(text)
    return path
