"""``corral policy ...``: the global policy file (``set``, ``show``) and ``check``, the verdict the
risk rules give each element of a page (a dry run that acts on nothing)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from policies import ActionFacts, Policy, classify
from runtime.app import Runtime
from runtime.cli.common import cli_actor, out_console, print_json, run_async, with_runtime
from runtime.errors import TaskFileError
from runtime.policyfile import load_policy
from runtime.task import VAR_RE, Task, load_task

if TYPE_CHECKING:
    from tools import AnyAction

__all__ = ["policy_group"]

# The elements the dry run checks.
_CHECKED_ROLES = frozenset(
    [
        "button",
        "link",
        "textbox",
        "searchbox",
        "checkbox",
        "radio",
        "combobox",
        "menuitem",
        "tab",
        "switch",
        "option",
    ]
)


def _probe_action(role: str, ref: str) -> AnyAction:
    from tools import Click, Fill, Select

    if role in ("textbox", "searchbox"):
        return Fill(ref=ref, value="")
    if role == "combobox":
        return Select(ref=ref, option="")
    return Click(ref=ref)


@click.group("policy")
def policy_group() -> None:
    """Risk rules for actions."""


@policy_group.command("set")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def set_(file: Path) -> None:
    """Validate FILE and make it the global policy (super_admin; audited)."""

    async def body(rt: Runtime) -> None:
        digest = await rt.services.policy.set(await cli_actor(rt), file)
        click.echo(f"global policy set from {file} (sha256 {digest[:12]})")

    run_async(lambda: with_runtime(body))


@policy_group.command("show")
def show() -> None:
    """Print the active global policy file, or say that the built-in defaults apply."""

    async def body(rt: Runtime) -> None:
        policy = await rt.services.policy.show(await cli_actor(rt))
        if policy.data is None or policy.sha256 is None:
            click.echo("built-in defaults (no global policy: corral policy set FILE)")
            return
        # A YAML comment, so the output can be saved and given to `policy set` again.
        click.echo(f"# {policy.path} (sha256 {policy.sha256[:12]})")
        click.echo(policy.data.decode(), nl=False)

    run_async(lambda: with_runtime(body))


def _is_task_file(target: str) -> bool:
    return "://" not in target and Path(target).suffix.lower() in (".yaml", ".yml")


async def _task_start_url(rt: Runtime, task: Task, profile: str | None) -> str:
    from runtime.run.scripted import merge_vars, substitute_text

    if not task.start_url:
        raise TaskFileError(f"{task.source}: start_url: policy check needs a page to open")
    profile_vars = (await rt.profiles.get(profile)).settings.vars if profile else {}
    values = merge_vars(task, profile_vars, {})
    missing = sorted(set(VAR_RE.findall(task.start_url)) - set(values))
    if missing:
        raise TaskFileError(
            f"{task.source}: start_url: unknown variable '{missing[0]}' (define it under vars: "
            "or in the profile's vars)"
        )
    return substitute_text(task.start_url, values)


@policy_group.command("check")
@click.argument("target", metavar="URL|TASK.yaml")
@click.option("--profile", help="look at the page as this profile (its saved session)")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="a policy file (YAML); default: the global policy, else the built-in rules",
)
@click.option("--task", help="apply this task's overrides from the policy file")
@click.option("--allowed-domain", "allowed", multiple=True, help="the egress allowlist")
@click.option("--json", "as_json", is_flag=True)
def check(
    target: str,
    profile: str | None,
    policy_file: Path | None,
    task: str | None,
    allowed: tuple[str, ...],
    as_json: bool,
) -> None:
    """Open URL, or a task file's start_url (with its name, profile and allowed domains), and
    print the verdict for every element an agent could act on (acts on none)."""

    async def body(rt: Runtime) -> None:
        actor = await cli_actor(rt)
        # Without --policy: the global policy, exactly as runs load it.
        policy = load_policy(policy_file) if policy_file else rt.policy() or Policy()
        url, task_name, domains = target, task, list(allowed)
        if _is_task_file(target):
            parsed = load_task(Path(target))
            profile_name = profile or parsed.profile
            task_name = task or parsed.name
            domains = [*parsed.allowed_domains, *allowed]
            url = await _task_start_url(rt, parsed, profile_name)
        else:
            profile_name = profile
        await rt.services.policy.authorize_check(actor, profile_name)
        await _check(rt, url, profile_name, policy, task_name, domains, as_json)

    run_async(lambda: with_runtime(body))


async def _check(
    rt: Runtime,
    url: str,
    profile: str | None,
    policy: Policy,
    task: str | None,
    allowed: list[str],
    as_json: bool,
) -> None:
    """Open ``url`` as ``profile`` (or a throwaway one) and print each element's verdict."""
    from profiles import open_session
    from tools import ActionContext, Navigate, Tabs, action_facts, execute, snapshot_elements

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
            for node in snapshot_elements(snapshot):
                if node.role not in _CHECKED_ROLES or node.ref is None:
                    continue
                action = _probe_action(node.role, node.ref)
                facts = ActionFacts.model_validate(await action_facts(tabs, action, allowed))
                verdict = classify(facts, policy, task, profile)
                rows.append(
                    {
                        "ref": node.ref,
                        "role": node.role,
                        "name": node.name,
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
