"""A leased, isolated browser session on one profile.

``open_session`` leases the profile, opens a context restored from its sealed state, and on the way
out saves the state again (sealed), closes the context and releases the lease, whatever happened.
With ``allowed_domains`` the context's traffic goes through a per-session :class:`EgressProxy`
(closed after the context), so the allowlist holds below the page; a proxy of the profile's own
(or in ``context_options``) is then chained behind it rather than given to the browser.
With ``wire=True`` a :class:`~profiles.wire.WireGuard` holds every state-changing request that no
action window allows (see :mod:`profiles.wire`); runs turn it on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playwright.async_api import BrowserContext
from playwright.async_api import Error as PlaywrightError
from pydantic import ValidationError

from .allowlist import host_resolver_rules
from .errors import BrowserCrashedError, CorralError
from .lease import LEASE_TTL_S, LeaseHolder, hold_lease
from .manager import ProfileManager
from .pool import BrowserPool
from .private import PRIVATE_FILE
from .redact import Redactor
from .settings import ProfileRecord, ProfileSettings, ProxySettings
from .trace import scrub_trace
from .wire import WireGuard

if TYPE_CHECKING:
    # The allowlist proxy (and its HTTP parser) loads for a session that has an allowlist.
    from .egress import EgressProxy

__all__ = ["Session", "open_session"]

log = logging.getLogger(__name__)
_SAVE_TIMEOUT_S = 10.0


@dataclass
class Session:
    """An open browser context owned by one run on one profile."""

    profile: ProfileRecord
    run_id: str
    context: BrowserContext
    restored: bool = field(default=False)
    """True when the context started from previously saved state."""
    closed_unexpectedly: bool = field(default=False)
    """Set when the context or its browser went away while the run still held it."""
    egress: EgressProxy | None = field(default=None)
    """The allowlisting proxy this session's traffic goes through; None without an allowlist."""
    wire: WireGuard | None = field(default=None)
    """The guard on state-changing requests; None unless the session was opened with it."""
    lease: LeaseHolder | None = field(default=None)
    """The profile lease this session runs under (its ``generation`` is the fencing token)."""
    _closing: bool = field(default=False, repr=False)

    def _on_close(self, _: object) -> None:
        if not self._closing:
            self.closed_unexpectedly = True

    async def start_trace(self) -> None:
        """Start recording a Playwright trace (actions, network and DOM snapshots).

        The trace's own screencast stays off: each step already gets a screenshot of its own, the
        screencast costs a lot of CPU with many sessions, and a video of typing cannot be masked.
        """
        await self.context.tracing.start(screenshots=False, snapshots=True)

    async def stop_trace(self, path: Path, redactor: Redactor, bodies: bool = True) -> bool:
        """Stop the trace and write it, scrubbed, to ``path`` (0600); False if nothing was written.

        The raw trace goes to a private temporary file beside ``path`` and is removed once the
        scrubbed copy has been renamed into place: ``path`` never holds an unscrubbed trace.
        ``bodies=False`` keeps no request or response bodies (see :mod:`profiles.trace`).
        """
        if self.closed_unexpectedly:
            return False
        fd, raw_name = tempfile.mkstemp(dir=path.parent, prefix=".trace-", suffix=".zip.partial")
        os.close(fd)
        raw, clean = Path(raw_name), Path(raw_name + ".scrubbed")
        try:
            try:
                await self.context.tracing.stop(path=raw)
                # Read after the trace stopped (it would record them); searched for everywhere.
                cookies = [c.get("value", "") for c in await self.context.cookies()]
            except PlaywrightError as exc:
                log.warning("trace not saved: %s", exc)
                return False
            os.chmod(raw, PRIVATE_FILE)
            await asyncio.to_thread(
                scrub_trace, raw, clean, redactor, bodies=bodies, extra_secrets=cookies
            )
            os.replace(clean, path)
            return True
        finally:
            raw.unlink(missing_ok=True)
            clean.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def open_session(
    manager: ProfileManager,
    pool: BrowserPool,
    profile: str,
    run_id: str,
    lease_wait_s: float = 30.0,
    context_options: dict[str, Any] | None = None,
    launch_args: tuple[str, ...] = (),
    save_state: bool = True,
    allowed_domains: Sequence[str] = (),
    host_map: Mapping[str, str] | None = None,
    wire: bool = False,
    lease_ttl_s: float = LEASE_TTL_S,
) -> AsyncIterator[Session]:
    """Lease ``profile`` and yield a Session; saves state and releases everything on exit.

    ``lease_ttl_s``: how long the lease outlives its last heartbeat (see :mod:`profiles.lease`).

    ``allowed_domains`` (see :mod:`profiles.egress`) limits which hosts the session may contact,
    and so does the profile's own ``allowed_domains`` setting (with both, a host must be on both);
    neither means no limit and no proxy. With an allowlist, the profile's own proxy (or
    ``context_options["proxy"]``) must be ``http://`` and becomes the allowlist proxy's upstream
    (EgressConflictError otherwise); the browser only sees the allowlist proxy. ``host_map`` gives
    host names fixed addresses (like curl ``--resolve``): in the browser's resolver without an
    allowlist, in the allowlist proxy with one, and nowhere when chaining (the upstream resolves).
    ``wire`` installs a :class:`WireGuard` on the context (``session.wire``).
    """
    record = await manager.get(profile)
    egress_cm = _egress(profile, allowed_domains, host_map, record.settings, context_options)
    if host_map and not allowed_domains and not record.settings.allowed_domains:
        # Without our proxy the browser resolves names itself; the pool keys browsers by args.
        launch_args = (*launch_args, host_resolver_rules(host_map))
    # The proxy starts before the lease (a bad entry fails before waiting for the profile) and
    # closes after the context.
    # The lease first, then a session slot: a run waiting for its profile holds no slot, so
    # slots only ever go to sessions that can start.
    async with (
        egress_cm as egress,
        hold_lease(manager.store, profile, run_id, lease_wait_s, lease_ttl_s) as held,
        pool.session_slot(),
    ):
        # Re-read under the lease: the previous holder may have saved newer state meanwhile.
        record = await manager.get(profile)
        options = {
            **record.settings.context_options(),
            "accept_downloads": True,
            **(context_options or {}),
        }
        if egress is not None:
            # Last, so nothing can switch them off; service workers would bypass page-level
            # hooks, and "<-loopback>" makes Chromium proxy 127.0.0.1/localhost too.
            from .egress import PROXY_BYPASS

            options["proxy"] = {"server": egress.url, "bypass": PROXY_BYPASS}
            options["service_workers"] = "block"
        guard = WireGuard() if wire else None
        if guard is not None:
            # A service worker's own fetches are not routed: they would pass the guard unseen.
            options["service_workers"] = "block"
        live: Path | None = None
        try:
            if record.settings.mode == "persistent":
                live = await manager.unpack_user_data(profile)
                restored = any(live.iterdir())
                context = await pool.persistent_context(live, options, launch_args)
                state = manager.open_state(record)
                if not restored and state is not None:
                    # An imported persistent profile has cookies but no user-data dir yet.
                    await context.add_cookies(state.get("cookies", []))
                    restored = True
            else:
                state = manager.open_state(record)
                restored = state is not None
                browser = await pool.browser(launch_args)
                context = await browser.new_context(storage_state=state, **options)  # type: ignore[arg-type]
            if guard is not None:
                try:
                    await guard.install(context)
                except PlaywrightError:
                    with contextlib.suppress(PlaywrightError):
                        await context.close()
                    raise
        except PlaywrightError as exc:
            if live is not None:
                shutil.rmtree(live, ignore_errors=True)
            first = (exc.message or str(exc)).strip().splitlines()[0]
            raise BrowserCrashedError(
                f"profile '{profile}': the browser could not open a session: {first}"
            ) from exc
        session = Session(
            profile=record,
            run_id=run_id,
            context=context,
            restored=restored,
            egress=egress,
            wire=guard,
            lease=held,
        )
        context.on("close", session._on_close)
        try:
            yield session
        finally:
            await asyncio.shield(_close(manager, session, live, save_state))


def _egress(
    profile: str,
    allowed_domains: Sequence[str],
    host_map: Mapping[str, str] | None,
    settings: ProfileSettings,
    context_options: Mapping[str, Any] | None,
) -> AbstractAsyncContextManager[EgressProxy | None]:
    """The session's allowlist proxy, checked now and started on entry; None without a list."""
    lists = [list(d) for d in (allowed_domains, settings.allowed_domains) if d]
    if not lists:
        return contextlib.nullcontext()
    from .egress import EgressConflictError, EgressProxy

    try:
        upstream = _own_proxy(settings, context_options)
        # The task's list and the profile's: a host must be on every list given.
        return EgressProxy.start(
            lists[0], host_map, upstream, also=lists[1] if len(lists) > 1 else ()
        )
    except EgressConflictError as exc:
        raise EgressConflictError(f"profile '{profile}': {exc}") from exc


def _own_proxy(
    settings: ProfileSettings, context_options: Mapping[str, Any] | None
) -> ProxySettings | None:
    """The proxy the browser would use without an allowlist (``context_options`` win)."""
    own = (context_options or {}).get("proxy", settings.proxy)
    if own is None or isinstance(own, ProxySettings):
        return own
    try:
        return ProxySettings.model_validate(own)
    except ValidationError:
        pass
    from .egress import EgressConflictError

    # Raised out here, so it neither quotes nor carries the ValidationError: that has the password.
    raise EgressConflictError(
        "context_options['proxy'] must be a mapping with 'server' and optionally 'bypass', "
        "'username' and 'password'"
    )


async def _close(
    manager: ProfileManager, session: Session, live: Path | None, save_state: bool
) -> None:
    name = session.profile.name
    # Persistent profiles also save their storage state, so they can be exported like any other.
    state: dict[str, Any] | None = None
    if save_state and not session.closed_unexpectedly:
        try:
            taken = await asyncio.wait_for(
                session.context.storage_state(indexed_db=True), _SAVE_TIMEOUT_S
            )
            state = dict(taken)
        except (PlaywrightError, TimeoutError) as exc:
            # The previous sealed state stays in place; losing one run's cookies is recoverable.
            log.warning("profile %s: state not saved (%s); the previous state is kept", name, exc)
    # The browser closes before anything is written to the store: a run cut off from the store
    # (its lease lost) stops acting now, not when the store answers again.
    session._closing = True
    with contextlib.suppress(PlaywrightError):
        await session.context.close()
    still_ours = True
    if state is not None and not await manager.save_state(name, state, session.lease):
        still_ours = False
        log.warning(
            "profile %s: state not saved: run %s no longer holds the profile's lease "
            "(another run took it over); the newer holder's state is kept",
            name,
            session.run_id,
        )
    if live is not None:
        # Nor its user data: the archive is the new holder's to write.
        if save_state and not session.closed_unexpectedly and still_ours:
            try:
                await manager.pack_user_data(name, live)
            except CorralError as exc:
                # As with the state: the previous sealed archive stays where it is.
                log.warning("profile %s: user data not saved (%s); the previous is kept", name, exc)
                shutil.rmtree(live, ignore_errors=True)
        else:
            shutil.rmtree(live, ignore_errors=True)
