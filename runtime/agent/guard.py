"""The policy hook of the agent loop: the risk classifier's verdict for each model action."""

from __future__ import annotations

from policies import ActionFacts, Policy, Verdict, classify
from tools import AnyAction, Observation, Tabs
from tools.facts import action_facts

from ..task import Task
from .loop import PolicyHook

__all__ = ["risk_hook"]


def risk_hook(tabs: Tabs, task: Task, profile: str, policy: Policy | None = None) -> PolicyHook:
    """Classify each action on the live page with the task's allowlist and the policy's rules."""

    async def hook(action: AnyAction, observation: Observation) -> Verdict:
        facts = ActionFacts.model_validate(
            await action_facts(tabs, action, task.allowed_domains, timeout_s=1.0)
        )
        return classify(facts, policy, task.name, profile)

    return hook
