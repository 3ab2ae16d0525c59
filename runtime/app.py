"""The Runtime: one store, one master key, the object store, the profile manager and a lazily
started browser pool."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

import psutil

from profiles import (
    MASTER_KEY_ENV,
    PREVIOUS_KEY_ENV,
    KeyRing,
    ProfileManager,
    RedactorGroup,
    UserError,
    Vault,
)
from runtime.approvals import Approvals
from runtime.objects import ObjectStore, open_objects
from runtime.services import Services
from runtime.settings import Settings
from runtime.store import Store

if TYPE_CHECKING:
    # Playwright loads with the first browser, not with the runtime; the model config, the
    # policy file and the webhook with the first run that reads them.
    from policies import Policy
    from profiles import BrowserPool, PoolStart
    from runtime.models.config import BreakerConfig
    from runtime.models.fallback import CircuitBreaker
    from runtime.webhook import Webhook

__all__ = ["Runtime"]


class Runtime:
    """Everything a process needs to run tasks; open it with :meth:`Runtime.open`."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        key: KeyRing,
        stack: AsyncExitStack,
        pool: BrowserPool | None = None,
        starting: PoolStart | None = None,
        objects: ObjectStore | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.key = key
        self.objects = objects or open_objects(settings.artifacts_url, settings.home)
        """Where run artifacts and sealed profile archives are kept (CORRAL_ARTIFACTS_URL;
        default: the folders under HOME themselves)."""
        self.profiles = ProfileManager(store.profiles, key, settings.home, self.objects)
        self.vault = Vault(store.vault, key)
        self.redactor = RedactorGroup()
        """The redactors of this process's live runs, for log lines (the CLI's log filter).
        Each run redacts its own records with its own redactor, so one run's TOTP code never
        blanks numbers in another run's results."""
        self.env: dict[str, str] = dict(os.environ)
        """Where model API keys are read from (by the env var names in corral.toml)."""
        self._breakers: dict[tuple[int, float], CircuitBreaker] = {}
        self.approvals = Approvals(store)
        """Approval requests as a run's gate uses them (a person decides through services)."""
        self.services = Services(self)
        """Every operation an actor makes, authorized and audited: the Python API."""
        self._stack = stack
        self._pool = pool
        self._starting = starting

    def breaker_for(self, config: BreakerConfig) -> CircuitBreaker:
        """The circuit breaker for runs whose model config has this ``[breaker]`` section.

        Shared by every such run of this process, so a failing provider is skipped by all of
        them; built on first use with the configured ``failures`` and ``cooldown_s``.
        """
        from runtime.models.fallback import CircuitBreaker

        key = (config.failures, config.cooldown_s)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = CircuitBreaker(config.failures, config.cooldown_s)
        return breaker

    def policy(self) -> Policy | None:
        """The global policy (``HOME/policy.yaml``, set by a super admin), else None: defaults."""
        path = self.settings.policy_path
        if not path.exists():
            return None
        from runtime.policyfile import load_policy

        return load_policy(path)

    def webhook(self) -> Webhook | None:
        """Where approval requests are announced, if configured."""
        url = self.settings.approval_webhook
        if not url:
            return None
        if not self.settings.webhook_secret:
            raise UserError(
                "CORRAL_APPROVAL_WEBHOOK is set but CORRAL_WEBHOOK_SECRET is not: "
                "webhooks are always signed; set a shared secret"
            )
        from runtime.webhook import Webhook

        return Webhook(url, self.settings.webhook_secret)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings,
        pool: BrowserPool | None = None,
        starting: PoolStart | None = None,
    ) -> AsyncIterator[Runtime]:
        """Open the store (migrating it) and load the master key; close all on exit.

        ``pool`` shares an already started browser pool (owned by the caller), e.g. in tests;
        ``starting`` is one the caller is still starting (``profiles.start_in_background``),
        awaited when a run first needs it.
        """
        settings.prepare_home()
        env = {
            MASTER_KEY_ENV: settings.master_key or "",
            PREVIOUS_KEY_ENV: settings.previous_key or "",
        }
        key = KeyRing.load(settings.home, env)
        async with AsyncExitStack() as stack:
            store = await Store.open(settings.store_location, settings.busy_timeout_s)
            stack.push_async_callback(store.close)
            # Runs whose process died without finishing are not "running" any more (runs of
            # this host only: on a store shared by many hosts, other hosts' pids mean nothing).
            await store.mark_orphaned_runs(psutil.pid_exists)
            objects = open_objects(settings.artifacts_url, settings.home)
            stack.push_async_callback(objects.aclose)
            yield cls(settings, store, key, stack, pool, starting, objects)

    async def pool(self) -> BrowserPool:
        """The browser pool, started on first use and closed with the runtime."""
        if self._pool is None and self._starting is not None:
            self._pool = await self._starting.ready
        if self._pool is None:
            from profiles import BrowserPool

            self._pool = await self._stack.enter_async_context(
                BrowserPool.start(
                    self.settings.browser, self.settings.headless, self.settings.max_sessions
                )
            )
        return self._pool

    def release_browsers(self) -> None:
        """The process is done with browsers: a pool started for it in the background
        (``starting``) closes now, while the caller finishes; other pools close as before."""
        if self._starting is not None:
            self._starting.release()
