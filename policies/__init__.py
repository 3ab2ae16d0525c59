"""What may happen: risk classification today; approval gates, egress allowlists and roles next.

The classifier depends on neither ``runtime`` nor Playwright: ``tools`` gathers facts about an
action's target, :func:`classify` turns them into a verdict.
"""

from .risk import (
    DEFAULT_RULES,
    REQUEST_KIND,
    SAFE_NAMES,
    SAFE_RULES,
    UNKNOWN_RULE,
    ActionFacts,
    AutoApprove,
    Decision,
    Match,
    Policy,
    Rule,
    Verdict,
    classify,
)

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
