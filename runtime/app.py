"""The Runtime: one store, one master key, the profile manager and a lazily started browser pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import psutil

from profiles import BrowserPool, MasterKey, ProfileManager

from .settings import Settings
from .store import Store

__all__ = ["Runtime"]


class Runtime:
    """Everything a process needs to run tasks; open it with :meth:`Runtime.open`."""

    def __init__(self, settings: Settings, store: Store, key: MasterKey, stack: AsyncExitStack):
        self.settings = settings
        self.store = store
        self.key = key
        self.profiles = ProfileManager(store, key, settings.home)
        self._stack = stack
        self._pool: BrowserPool | None = None

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator[Runtime]:
        """Open the store (migrating it) and load the master key; close all on exit."""
        settings.home.mkdir(parents=True, exist_ok=True)
        key = MasterKey.load(settings.home, settings.master_key)
        async with AsyncExitStack() as stack:
            store = await Store.open(settings.db_path)
            stack.push_async_callback(store.close)
            # Runs whose process died without finishing are not "running" any more.
            await store.mark_orphaned_runs(psutil.pid_exists)
            yield cls(settings, store, key, stack)

    async def pool(self) -> BrowserPool:
        """The browser pool, started on first use and closed with the runtime."""
        if self._pool is None:
            self._pool = await self._stack.enter_async_context(
                BrowserPool.start(self.settings.browser, self.settings.headless)
            )
        return self._pool
