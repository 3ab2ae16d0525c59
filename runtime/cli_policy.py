"""``corral policy check URL``: the verdict the risk rules give each element of a page (dry run)."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from policies import ActionFacts, Policy, classify, load_policy
from profiles import open_session
from tools import ActionContext, AnyAction, Click, Fill, Navigate, Select, Tabs, execute
from tools.facts import action_facts

from .app import Runtime
from .clitools import out_console, print_json, run_async, with_runtime

__all__ = ["policy_group"]

_ELEMENT = re.compile(
    r"-\s+(?P<role>button|link|textbox|searchbox|checkbox|radio|combobox|menuitem|tab|switch|"
    r'option)\b(?:\s+"(?P<name>(?:[^"\\]|\\.)*)")?[^\n]*?\[ref=(?P<ref>\w+)\]'
)


def _probe_action(role: str, ref: str) -> AnyAction:
    if role in ("textbox", "searchbox"):
        return Fill(ref=ref, value="")
    if role == "combobox":
        return Select(ref=ref, option="")
    return Click(ref=ref)


@click.group("policy")
def policy_group() -> None:
    """Risk rules for actions."""


@policy_group.command("check")
@click.argument("url")
@click.option("--profile", help="look at the page as this profile (its saved session)")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="a policy file (YAML); default: the built-in rules",
)
@click.option("--task", help="apply this task's overrides from the policy file")
@click.option("--allowed-domain", "allowed", multiple=True, help="the egress allowlist")
@click.option("--json", "as_json", is_flag=True)
def check(
    url: str,
    profile: str | None,
    policy_file: Path | None,
    task: str | None,
    allowed: tuple[str, ...],
    as_json: bool,
) -> None:
    """Open URL and print the verdict for every element an agent could act on (acts on none)."""
    policy = load_policy(policy_file) if policy_file else Policy()

    async def body(rt: Runtime) -> None:
        name = profile or f"policy-check-{secrets.token_hex(3)}"
        if profile is None:
            await rt.profiles.create(name)
        rows: list[dict[str, Any]] = []
        try:
            async with open_session(
                rt.profiles,
                await rt.pool(),
                name,
                f"policy-check-{secrets.token_hex(3)}",
                save_state=False,
            ) as session:
                tabs = Tabs(session)
                ctx = ActionContext(downloads_dir=rt.settings.home / "tmp")
                await execute(tabs, Navigate(url=url), ctx)
                page = await tabs.active()
                snapshot = await page.aria_snapshot(mode="ai")
                for m in _ELEMENT.finditer(snapshot):
                    action = _probe_action(m["role"], m["ref"])
                    facts = ActionFacts.model_validate(await action_facts(tabs, action, allowed))
                    verdict = classify(facts, policy, task, profile)
                    rows.append(
                        {
                            "ref": m["ref"],
                            "role": m["role"],
                            "name": m["name"] or "",
                            "action": action.kind,
                            "verdict": verdict.decision,
                            "reasons": verdict.reasons,
                            "rules": verdict.rules,
                        }
                    )
        finally:
            if profile is None:
                await rt.profiles.delete(name)
        if as_json:
            print_json(rows)
            return
        table = Table(title=f"verdicts on {url}")
        for col in ("ref", "role", "name", "action", "verdict", "reasons"):
            table.add_column(col)
        for r in rows:
            style = {"allow": "green", "require_approval": "yellow", "deny": "red"}[r["verdict"]]
            table.add_row(
                r["ref"],
                r["role"],
                r["name"],
                r["action"],
                f"[{style}]{r['verdict']}[/]",
                "; ".join(r["reasons"]),
            )
        out_console().print(table)

    run_async(lambda: with_runtime(body))
