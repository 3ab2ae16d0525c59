"""Canary fires: a deterministic share of a schedule's fires runs with a candidate model config.

Which fires: those whose id hashes below the share (:func:`is_canary`), so the set is fixed by
the fire ids and does not depend on timing or order. The run records the config it used
(``result.json``'s ``models_config``), which the live comparison reads back.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

from runtime.app import Runtime

__all__ = ["is_canary", "with_models_config"]


def is_canary(fire_id: str, share: float) -> bool:
    """Whether the fire ``fire_id`` runs on the canary config at ``share`` (0 to 1)."""
    digest = hashlib.sha256(f"canary:{fire_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


async def with_models_config(rt: Runtime, path: Path) -> Runtime:
    """A view of ``rt`` whose runs read their model config from ``path``: the same store,
    key, browsers and approvals; only the settings differ (a run reads the config from
    ``settings.models_config``). The browser pool is started first, so both share it."""
    await rt.pool()
    view = copy.copy(rt)
    view.settings = rt.settings.model_copy(update={"models_config": path})
    return view
