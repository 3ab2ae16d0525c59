"""The statistics of an eval report: Wilson intervals for rates, Newcombe's interval for the
difference of two rates, a seeded bootstrap for the difference of two means, and quantiles."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

__all__ = ["Z95", "bootstrap_diff", "mean", "newcombe_diff", "quantile", "wilson"]

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``successes``/``n`` (``(0, 1)`` when ``n`` is 0)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_diff(s1: int, n1: int, s2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """The difference p2 - p1 and its 95% interval (Newcombe's hybrid score method, from the
    two Wilson intervals)."""
    p1 = s1 / n1 if n1 else 0.0
    p2 = s2 / n2 if n2 else 0.0
    l1, u1 = wilson(s1, n1, z)
    l2, u2 = wilson(s2, n2, z)
    d = p2 - p1
    low = d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    high = d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return d, max(-1.0, low), min(1.0, high)


def mean(values: Sequence[float]) -> float | None:
    """The mean, or None for no values."""
    return sum(values) / len(values) if values else None


def quantile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile with linear interpolation (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def bootstrap_diff(
    a: Sequence[float], b: Sequence[float], rounds: int = 2000, seed: int = 0
) -> tuple[float, float, float] | None:
    """mean(b) - mean(a) and its 95% percentile-bootstrap interval (fixed ``seed``: the same
    figures every time); None unless both have values."""
    if not a or not b:
        return None
    rng = random.Random(seed)
    diffs = []
    for _ in range(rounds):
        ra = [a[rng.randrange(len(a))] for _ in a]
        rb = [b[rng.randrange(len(b))] for _ in b]
        diffs.append(sum(rb) / len(rb) - sum(ra) / len(ra))
    diffs.sort()
    d = sum(b) / len(b) - sum(a) / len(a)
    return d, diffs[int(0.025 * (rounds - 1))], diffs[int(0.975 * (rounds - 1))]
