"""Reviewing recorded runs: the review model (:mod:`.model`), built from a run's rows
(:mod:`.build`); ``corral runs show``, ``corral replay`` and the console's run page show it."""

from runtime.review.build import action_words, build_review, hit_cap, scrub
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
    "scrub",
]
