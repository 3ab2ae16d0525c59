"""The seam between the scheduler and where fires wait: :class:`FireQueue`.

The scheduler's logic (which fires exist, overlap, retries, pausing) only calls these methods. The
embedded queue is the store's :class:`~runtime.store.schedules.ScheduleRepository` on SQLite,
where a claim is one conditional ``UPDATE`` in a write transaction; an engine on PostgreSQL
(``SELECT ... FOR UPDATE SKIP LOCKED``, or a queue library's jobs) implements the same methods
and the scheduler does not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from runtime.schedules.records import Fire, FireStatus

if TYPE_CHECKING:
    from runtime.store.schedules import ClaimLimits

__all__ = ["FireQueue"]


class FireQueue(Protocol):
    """Where fires wait to run, and the one-winner moves between their states."""

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        """A transaction the calls below join (a claim and what must happen with it)."""
        ...

    async def add_fires(self, fires: Sequence[Fire]) -> list[Fire]:
        """Add fires not known yet (unique by id: schedule, scheduled time, profile); returns
        the ones added, so a fire added by two schedulers exists once."""
        ...

    async def get_fire(self, fire_id: str) -> Fire | None: ...

    async def due_fires(self, now: datetime, limit: int = 100) -> list[Fire]:
        """Queued fires due by ``now``, oldest first."""
        ...

    async def active_fires(self) -> list[Fire]:
        """Fires claimed by any server and not settled yet, and fires queued for a retry."""
        ...

    async def claim(self, fire_id: str, owner: str, at: datetime, limits: ClaimLimits) -> bool:
        """Take a queued fire for ``owner`` within ``limits``; exactly one claimer wins."""
        ...

    async def set_run(self, fire_id: str, run_id: str) -> None:
        """Record the run the current attempt started."""
        ...

    async def settle(
        self,
        fire_id: str,
        status: FireStatus,
        note: str | None,
        at: datetime,
        *,
        from_status: FireStatus,
        due_at: datetime | None = None,
        interrupted: bool = False,
    ) -> bool:
        """Move a fire out of ``from_status``: to a final status, or back to queued (a retry;
        ``interrupted``: an attempt a server stop cut short, not counted against retries)."""
        ...
