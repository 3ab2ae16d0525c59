"""Reviewing recorded runs: the review model (:mod:`.model`), built from a run's rows
(:mod:`.build`); ``corral runs show``, ``corral replay`` and the console's run page show it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from profiles import LazyExports

if TYPE_CHECKING:
    from runtime.review.build import action_words, build_review, hit_cap
    from runtime.review.model import (
        ApprovalView,
        Box,
        CostLine,
        ModelAttempt,
        RunReview,
        RunSummary,
        StepView,
        TargetView,
    )

__all__ = [
    "ApprovalView",
    "Box",
    "CostLine",
    "ModelAttempt",
    "RunReview",
    "RunSummary",
    "StepView",
    "TargetView",
    "action_words",
    "build_review",
    "hit_cap",
]

_LAZY = LazyExports(__name__, __file__)


def __getattr__(name: str) -> object:
    """Import a public name's module on first use."""
    return _LAZY.load(name)


def __dir__() -> list[str]:
    return _LAZY.names()
