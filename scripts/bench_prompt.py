#!/usr/bin/env python3
"""Planner prompt benchmark: how much of each request a provider's prefix cache can serve, and
how many input tokens a task costs, with delta observations beside whole pages, in one run.

Two 10-turn tasks on the demo portal, driven by a scripted planner (a ``FunctionModel`` that
plays a fixed list of calls, finding each element's ref by role and name in what it was sent):

- form: sign in (username, password, Sign in), then on Settings change the display name, tab
  away, save, change it again, hover Save, save again, scroll;
- table: bob's 87 invoices on one page: extract the unpaid ones, scroll, hover a row's link,
  filter Unpaid, extract, scroll, open an invoice, go back, scroll, filter All.

Each task runs twice through the real loop in Chromium: ``delta`` (the default: after an action
that leaves the page in place the planner gets the lines that changed) and ``full``
(``FULL_PAGE_EVERY = 0``: every page whole, in the same append-only conversation). A third
shape, ``today``, is rebuilt from the ``full`` run's requests as the loop sent them before the
conversation was append-only: the system prompt and one user message of the task, the history
lines (the call results, the last 30) and the whole current page.

For every request the benchmark serializes what goes on the wire (OpenAI Chat Completions
messages after the tool list, as the provider renders them into its prompt) and measures:

- prefix share: the byte-identical prefix of the request and the next one, over the request's
  length (from the third request on; the last has no next);
- input tokens (estimate: UTF-8 bytes of the body / 4, the same for every shape) and cached
  tokens: a fake provider cache that holds every earlier request of the run serves the longest
  shared prefix (the fake planner reports them in its usage, so they reach the run's records).

Usage: .venv/bin/python scripts/bench_prompt.py [--write] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _bench_common import write_section  # noqa: E402

import runtime.agent.turn as agent_turn  # noqa: E402
from profiles import BrowserPool, ProfileSettings  # noqa: E402
from runtime import Runtime, Settings, parse_task, run_task  # noqa: E402
from runtime.agent.prompt import SYSTEM_PROMPT  # noqa: E402
from runtime.auth import LOCAL_ACTOR  # noqa: E402
from runtime.demo.portal import USERS, PortalServer  # noqa: E402
from runtime.models import Message, ModelResponse, ToolSpec  # noqa: E402
from runtime.models.openai_chat import to_openai_messages, to_openai_tool  # noqa: E402
from runtime.models.types import Usage  # noqa: E402
from runtime.testing import FunctionModel, call, reply  # noqa: E402

Step = tuple[str, str | None, str | None, dict[str, Any]]
"""(tool, role, name pattern, other arguments): the ref is found by role and name."""

FORM: list[Step] = [
    ("fill", "textbox", "Username", {"value": "alice"}),
    ("fill", "textbox", "Password", {"value": "{{secret:alice.password}}"}),
    ("click", "button", "Sign in", {}),
    ("fill", "textbox", "Display name", {"value": "Alice"}),
    ("press", "textbox", "Display name", {"key": "Tab"}),
    ("click", "button", "Save", {}),
    ("fill", "textbox", "Display name", {"value": "Alice Q."}),
    ("hover", "button", "Save", {}),
    ("click", "button", "Save", {}),
    ("scroll", None, None, {"direction": "down"}),
]
EXTRACT = {"name": "unpaid", "instruction": "The unpaid invoices: number and amount."}
TABLE: list[Step] = [
    ("extract_data", None, None, EXTRACT),
    ("scroll", None, None, {"direction": "down"}),
    ("hover", "row", "", {}),
    ("click", "link", "Unpaid", {}),
    ("extract_data", None, None, EXTRACT),
    ("scroll", None, None, {"direction": "down"}),
    ("click", "row", "", {}),
    ("back", None, None, {}),
    ("scroll", None, None, {"direction": "down"}),
    ("click", "link", "All", {}),
]
HISTORY_KEEP = 30  # the history lines the old prompt kept


def tokens(text: str) -> int:
    """Token estimate of ``text``: UTF-8 bytes / 4."""
    return (len(text.encode()) + 3) // 4


def wire(messages: list[Message], tools: list[ToolSpec]) -> str:
    """The request as a provider renders it: the tools, then the messages (OpenAI's format)."""
    return json.dumps(
        {
            "tools": [to_openai_tool(t) for t in tools],
            "messages": to_openai_messages(messages),
        },
        ensure_ascii=False,
    )


def shared_prefix(a: str, b: str) -> int:
    """Length of the common prefix of ``a`` and ``b``."""
    n = min(len(a), len(b))
    lo = 0
    while lo < n and a[lo] == b[lo]:
        lo += 1
    return lo


def _texts(messages: list[Message]) -> list[tuple[str, str]]:
    return [
        (m.role, "\n".join(p.text for p in m.content if p.type == "text"))
        for m in messages
        if m.role in ("user", "tool")
    ]


def find_ref(messages: list[Message], role: str, name: str) -> str:
    """The ref of the newest line naming ``role name`` the planner was sent; role "row": the
    ref that starts a table row ("[e41]87|2026-10-31|...", its invoice number's link)."""
    # Compact tables leave out a cell's link role.
    if role == "row":
        pattern = re.compile(r"^(?:[+~=] )?\[(\w+)\] ?\d+\|")
    else:
        pattern = re.compile(rf"\[(\w+)\] (?:{role} )?\"?{name}")
    for _, text in reversed(_texts(messages)):
        for line in reversed(text.splitlines()):
            found = pattern.search(line)
            if found:
                return found.group(1)
    raise AssertionError(f"no {role} {name!r} sent to the planner:\n{_texts(messages)[-1][1]}")


class CachingPlanner:
    """Plays ``plan``, then done(); reports input tokens and what a prefix cache of every earlier
    request would serve."""

    def __init__(self, plan: list[Step]) -> None:
        self.plan = plan
        self.bodies: list[str] = []
        self.fixed = 0
        """Tokens of what every request starts with: the tools, the system prompt, the task."""
        self.model = FunctionModel(self.decide, name="scripted-planner")

    def decide(self, messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        body = wire(messages, tools)
        cached = max((shared_prefix(body, b) for b in self.bodies), default=0)
        self.bodies.append(body)
        self.fixed = self.fixed or tokens(wire(messages[:2], tools))
        turn = len(self.bodies) - 1
        if turn < len(self.plan):
            tool, role, name, extra = self.plan[turn]
            args = dict(extra)
            if role is not None and name is not None:
                args["ref"] = find_ref(messages, role, name)
            response = reply(call(tool, **args))
        else:
            response = reply(call("done", result={"turns": turn}))
        usage = Usage(
            input_tokens=tokens(body), output_tokens=20, cached_tokens=tokens(body[:cached])
        )
        return response.model_copy(update={"usage": usage})


def extractor() -> FunctionModel:
    """An extractor that answers every request with an empty list of rows."""
    return FunctionModel(lambda m, t: reply(text='{"rows": []}'), name="extractor")


def today_shape(goal: str, messages: list[Message]) -> list[Message]:
    """The request the loop sent before its conversation was append-only, for the same turn:
    the system prompt, then one message of the task, the history lines and the whole page."""
    texts = _texts(messages)
    lines = [line for role, text in texts if role == "tool" for line in text.splitlines()]
    page = texts[-1][1].split("Current page:\n", 1)[-1]
    parts = [f"Task: {goal}"]
    if lines:
        parts.append("History (oldest first):\n" + "\n".join(lines[-HISTORY_KEEP:]))
    parts.append("Current page:\n" + page)
    return [
        Message(role="system", content=[Message.text("system", SYSTEM_PROMPT).content[0]]),
        Message.text("user", "\n\n".join(parts)),
    ]


def measure(bodies: list[str]) -> dict[str, Any]:
    """Prefix shares (from the third request on), input and cached tokens of one run."""
    shares = [shared_prefix(a, b) / len(a) for a, b in itertools.pairwise(bodies)][2:]
    cached = [
        max((shared_prefix(body, b) for b in bodies[:i]), default=0)
        for i, body in enumerate(bodies)
    ]
    total = sum(tokens(b) for b in bodies)
    hit = sum(tokens(b[:c]) for b, c in zip(bodies, cached, strict=True))
    return {
        "requests": len(bodies),
        "prefix_share_min": round(min(shares), 3) if shares else None,
        "prefix_share_median": round(statistics.median(shares), 3) if shares else None,
        "input_tokens": total,
        "cached_tokens": hit,
        "uncached_tokens": total - hit,
    }


async def approve_all(rt: Runtime) -> None:
    """Approve every request a run asks a person about (the form's saves), as they come."""
    while True:
        for request in await rt.approvals.list_requests():
            await rt.services.approvals.decide(LOCAL_ACTOR, request.id, True, "benchmark")
        await asyncio.sleep(0.05)


async def run_one(
    rt: Runtime, task: Any, profile: str, plan: list[Step], full_every: int
) -> tuple[CachingPlanner, Any]:
    """One run of ``plan`` with ``FULL_PAGE_EVERY = full_every``."""
    agent_turn.FULL_PAGE_EVERY = full_every
    planner = CachingPlanner(plan)
    models: dict[str, Any] = {"planner": [planner.model], "extractor": [extractor()]}
    approver = asyncio.create_task(approve_all(rt))
    try:
        result = await run_task(rt, task, profile, models=models)
    finally:
        approver.cancel()
    print(f"{task.name} FULL_PAGE_EVERY={full_every}: {result.status}", file=sys.stderr)
    assert result.status == "succeeded", result.error
    assert len(planner.bodies) == len(plan) + 1, len(planner.bodies)
    return planner, result


async def main(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="corral-bench-prompt-"))
    server = PortalServer(port=0, db_path=home / "portal.db")
    server.start()
    default_every = agent_turn.FULL_PAGE_EVERY
    out: dict[str, Any] = {"full_page_every": default_every, "tasks": {}}
    try:
        async with (
            BrowserPool.start(os.environ.get("CORRAL_BROWSER")) as pool,
            Runtime.open(Settings(home=home), pool=pool) as rt,
        ):
            # alice signs in afresh in each form run: a profile of her own for each.
            alices = ["alice-delta", "alice-full"]
            for name in [*alices, "bob"]:
                await rt.profiles.create(name, ProfileSettings())
            pw = USERS["alice"].password
            await rt.vault.set("alice.password", pw, [server.url], alices)
            await rt.vault.set("bob.password", USERS["bob"].password, [server.url], ["bob"])
            login = parse_task(
                {
                    "name": "login",
                    "start_url": server.url,
                    "secrets": ["bob.password"],
                    "steps": [
                        {"goto": "/login"},
                        {"fill": {"label": "Username", "value": "bob"}},
                        {"fill": {"label": "Password", "value": "{{secret:bob.password}}"}},
                        {"click": {"role": "button", "name": "Sign in"}},
                    ],
                },
                "login",
            )
            assert (await run_task(rt, login, "bob")).status == "succeeded"
            goals: dict[str, tuple[str, str, list[Step], str]] = {
                "form": (
                    "alice",
                    f"{server.url}/login?next=/settings",
                    FORM,
                    "Sign in and set the display name on the settings page.",
                ),
                "table": (
                    "bob",
                    f"{server.url}/invoices?per_page=100",
                    TABLE,
                    "Review the unpaid invoices.",
                ),
            }
            for task_name, (profile, start, plan, goal) in goals.items():
                spec: dict[str, Any] = {
                    "name": task_name,
                    "start_url": start,
                    "goal": goal,
                    "vision": "never",
                    "screenshots": "on_failure",
                    "budget": {"max_steps": 30},
                }
                if profile == "alice":
                    spec["secrets"] = ["alice.password"]
                task = parse_task(spec, task_name)
                shapes: dict[str, Any] = {}
                runs: dict[str, CachingPlanner] = {}
                for shape, every in (("delta", default_every), ("full", 0)):
                    who = f"{profile}-{shape}" if profile == "alice" else profile
                    planner, result = await run_one(rt, task, who, plan, every)
                    runs[shape] = planner
                    calls = await rt.store.runs.list_model_calls(str(result.run_id))
                    shapes[shape] = measure(planner.bodies) | {
                        "recorded_cached_tokens": sum(
                            c.cached_tokens for c in calls if c.role == "planner"
                        ),
                        "fixed_tokens": planner.fixed * len(planner.bodies),
                    }
                full_requests = [r.messages for r in runs["full"].model.requests]
                tools = runs["full"].model.requests[0].tools
                today = [wire(today_shape(goal, m), tools) for m in full_requests]
                shapes["today"] = measure(today)
                out["tasks"][task_name] = shapes
    finally:
        agent_turn.FULL_PAGE_EVERY = default_every
        server.stop()
    total = {
        shape: sum(t[shape]["input_tokens"] for t in out["tasks"].values())
        for shape in ("today", "full", "delta")
    }
    uncached = {
        shape: sum(t[shape]["uncached_tokens"] for t in out["tasks"].values())
        for shape in ("today", "full", "delta")
    }
    fixed = {
        shape: sum(t[shape]["fixed_tokens"] for t in out["tasks"].values())
        for shape in ("full", "delta")
    }
    out["total_fixed_tokens"] = fixed
    out["turns_vs_full"] = round(
        (total["delta"] - fixed["delta"]) / (total["full"] - fixed["full"]), 3
    )
    out["total_input_tokens"] = total
    out["total_uncached_tokens"] = uncached
    out["delta_vs_full"] = round(total["delta"] / total["full"], 3)
    out["delta_vs_today"] = round(total["delta"] / total["today"], 3)
    out["uncached_delta_vs_today"] = round(uncached["delta"] / uncached["today"], 3)
    return out


def to_markdown(r: dict[str, Any]) -> str:
    """The BENCHMARKS.md section."""
    rows = []
    for task, shapes in r["tasks"].items():
        for shape in ("today", "full", "delta"):
            s = shapes[shape]
            rows.append(
                f"| {task} | {shape} | {s['requests']} | {s['prefix_share_min']:.0%} | "
                f"{s['prefix_share_median']:.0%} | {s['input_tokens']:,} | "
                f"{s['cached_tokens']:,} | {s['uncached_tokens']:,} |"
            )
    t, u = r["total_input_tokens"], r["total_uncached_tokens"]
    per_task = ", ".join(
        f"{task} {shapes['delta']['input_tokens'] / shapes['full']['input_tokens']:.2f}x"
        for task, shapes in r["tasks"].items()
    )
    return (
        "## Planner prompts: prefix caching and delta observations (scripts/bench_prompt.py)\n\n"
        "Two 10-turn tasks on the demo portal through the real loop in Chromium, the planner a "
        "scripted `FunctionModel` (finds each ref by role and name in what it was sent). "
        "form: sign in, then change the display name on Settings twice (fills, Tab, hover, "
        "three saves, a scroll); table: bob's 87 invoices on one page (two extract_data calls, "
        "scrolls, a hover, the Unpaid and All filters, an invoice and back). Shapes, in one run: "
        "**today** = the prompt before this change (system + one user message: task, history "
        "lines, whole page), rebuilt from the `full` run's turns; **full** = the append-only "
        "conversation with every page whole (`FULL_PAGE_EVERY = 0`); **delta** = the default "
        f"(pages after in-place actions as the lines that changed, the whole page after a "
        f"navigation, on `observe()`, and at least every {r['full_page_every']} pages).\n\n"
        "Prefix share: the byte-identical prefix of a request and the next (OpenAI wire format, "
        "tools first), over the request, from the third request on. Tokens: estimated as UTF-8 "
        "bytes / 4 of the request body (the same estimate for every shape, so the ratios hold); "
        "cached = what a provider prefix cache holding every earlier request of the run would "
        "serve (the fake planner reports it as `cached_tokens` in its usage, and the run's "
        "model-call records carry it: `recorded_cached_tokens` in `--json`).\n\n"
        "| task | shape | requests | prefix share min | median | input tokens | cached | "
        "uncached |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"Total input tokens, both tasks: today {t['today']:,}, full {t['full']:,}, delta "
        f"{t['delta']:,}: **delta {r['delta_vs_full']:.2f}x full** ({per_task}), "
        f"{r['delta_vs_today']:.2f}x today. Uncached (what is not served from a prefix "
        f"cache): today {u['today']:,}, full "
        f"{u['full']:,}, delta {u['delta']:,} ({r['uncached_delta_vs_today']:.2f}x today).\n\n"
        "Reading: the append-only conversation is a byte-identical prefix of the next request "
        "(100% from the third request on, target >= 80%), where today's shape shares only the "
        "tools, system prompt, task and history (the page, last in it, differs every turn). "
        "Re-sending the conversation costs more input tokens in all than today's one-message "
        "shape, but a prefix cache serves all but the new turn, and with delta observations "
        f"fewer tokens are left uncached than today. What every request starts with (the tool "
        f"list, the system prompt, the task: {r['total_fixed_tokens']['delta']:,} tokens of the "
        f"delta runs, {r['total_fixed_tokens']['full']:,} of the full runs) is paid alike by "
        "both shapes; the turns alone (pages, calls, results) cost "
        f"**{r['turns_vs_full']:.2f}x** with deltas what they cost with whole pages. "
        f"The delta target (<= 0.4x full) is {'met' if r['delta_vs_full'] <= 0.4 else 'NOT met'}"
        " on these tasks: even with no fixed part the ratio would be the turns' one, which the "
        "whole pages after navigations set (four of the form's ten actions navigate; in the "
        "table task the Unpaid and All filters, the invoice and the way back give whole pages of "
        "29 and 87 rows), and every request re-sends the first, 87-row page.\n\n"
        "The conversation restarts (system, task, one line per earlier call, the whole page) when "
        "its text passes 60,000 characters (about 15k tokens): that turn is the only one whose "
        "request is not a prefix of the next; these tasks stay under it. Anthropic: "
        "`cache_control` on the last tool, the system prompt and the two latest turns (the "
        "adapter reads `cache_read_input_tokens` / `cache_creation_input_tokens` into "
        "`cached_tokens` / `cache_write_tokens`; OpenAI's adapter reads "
        "`prompt_tokens_details.cached_tokens`).\n"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    arguments = parser.parse_args()
    results = asyncio.run(main(arguments))
    if arguments.json:
        print(json.dumps(results, indent=2))
    markdown = to_markdown(results)
    print(markdown)
    if arguments.write:
        write_section(ROOT / "BENCHMARKS.md", "bench_prompt", markdown)
