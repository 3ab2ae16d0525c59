"""Fixtures for the attack suite: a hostile site whose pages each test writes (see
``tests.support.hostile``) and a runtime whose approval requests expire quickly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from profiles import BrowserPool
from runtime import Runtime, Settings
from tests.support.hostile import APPROVAL_TTL_S, HostileSite, serve_site


@pytest.fixture
def site() -> Iterator[HostileSite]:
    """A hostile site on 127.0.0.1 (a fresh one per test)."""
    with serve_site() as state:
        yield state


@pytest.fixture
async def hrt(settings: Settings, pool: BrowserPool) -> Any:
    """A runtime whose approval requests expire after APPROVAL_TTL_S (expiry means deny)."""
    quick = settings.model_copy(update={"approval_ttl_s": APPROVAL_TTL_S})
    async with Runtime.open(quick, pool=pool) as runtime:
        yield runtime
