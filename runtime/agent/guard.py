"""The policy hook of the agent loop: the risk classifier's verdict for each model action."""

from __future__ import annotations

import re
from typing import Any

from policies import ActionFacts, Policy, Verdict, classify
from tools import AnyAction, Observation, Tabs, action_target
from tools.facts import action_facts

from ..task import Task
from .loop import PolicyHook

__all__ = ["risk_hook"]


def _link_facts(action: AnyAction, obs: Observation, base: dict[str, Any]) -> dict[str, Any] | None:
    """Facts for a link straight from the snapshot the model saw: a link goes somewhere, its
    name is all the rules look at, and asking the page costs a round trip per action."""
    target = action_target(action)
    if target is None or target.ref is None:
        return None
    line = re.search(
        rf'^\s*-\s+link(?:\s+"(?P<name>(?:[^"\\]|\\.)*)")?[^\n]*\[ref={re.escape(target.ref)}\]',
        obs.snapshot,
        re.MULTILINE,
    )
    if line is None:
        return None
    return {**base, "role": "link", "name": line["name"]}


def risk_hook(tabs: Tabs, task: Task, profile: str, policy: Policy | None = None) -> PolicyHook:
    """Classify each action on the live page with the task's allowlist and the policy's rules."""

    async def hook(action: AnyAction, observation: Observation) -> Verdict:
        base = {
            "kind": action.kind,
            "side_effect": str(type(action).side_effect),
            "page_url": observation.url,
            "allowed_domains": list(task.allowed_domains),
        }
        facts = _link_facts(action, observation, base) or await action_facts(
            tabs, action, task.allowed_domains, timeout_s=1.0
        )
        return classify(ActionFacts.model_validate(facts), policy, task.name, profile)

    return hook
