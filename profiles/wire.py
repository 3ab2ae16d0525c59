"""The wire backstop: a state-changing request leaves the browser only inside an action's window.

The element gate decides on what an action will touch; a page can still send a POST on its own (a
timer, a script after load, a click handler that does more than its button says). The guard sits on
the session's browser context (``context.route``), where every request the pages, their frames and
their workers start is seen with its method before it is sent:

- ``GET``, ``HEAD`` and ``OPTIONS`` go on untouched (``route.fallback()``: nothing else is done);
- a state-changing request (``POST``, ``PUT``, ``PATCH``, ``DELETE``, anything else) goes on only
  while an action window is open (:meth:`WireGuard.window`, opened by the run around each action
  it does, and kept open for a short grace after the action settled) and only if the window's
  check lets it through; otherwise it is aborted (``blockedbyclient``) and recorded as a
  :class:`HeldRequest`, for the run to report.

The check is a plain callable (:data:`WireCheck`) given by the caller, so this module knows nothing
of the risk rules. Why not the egress proxy: it sees hosts, and inside an https tunnel not even the
method. What routing does not see: the target of a redirect (the first hop was decided, and a
redirect keeps or drops its method, it never turns a GET into a POST) and requests a service worker
makes on its own: :func:`profiles.open_session` blocks service workers whenever the guard is on.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from playwright.async_api import BrowserContext, Route
from playwright.async_api import Error as PlaywrightError
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SAFE_METHODS",
    "HeldRequest",
    "SendHook",
    "WireCheck",
    "WireGuard",
    "WireRequest",
    "allow_all",
]

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that do not change anything on a server that follows HTTP (RFC 9110 "safe")."""
OUTSIDE = "sent while no action was running (a timer or a script of the page)"
"""The reason recorded for a request held between actions."""
_MAX_HELD = 1000
_MAX_URL = 2048
_GRACE_S = 0.5


@dataclass(frozen=True)
class WireRequest:
    """A state-changing request the page is about to send."""

    method: str
    """Upper case."""
    url: str
    page_url: str | None
    """The URL of the page (its main frame) the request comes from; None for a worker."""
    resource_type: str
    """Playwright's: document (a form post), fetch, xhr, ping (a beacon), ..."""


WireCheck = Callable[[WireRequest], str | None]
"""``request -> None`` lets it through; a text holds it and says why."""
SendHook = Callable[[WireRequest], Awaitable[bool]]
"""Told of a request the check let through, before it is sent; False (or an error) holds it."""


def allow_all(_: WireRequest) -> str | None:
    """The check of a window in which everything may be sent (a person approved the action)."""
    return None


class HeldRequest(BaseModel):
    """A state-changing request that was not sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    method: str
    url: str = Field(description=f"at most {_MAX_URL} characters")
    reason: str
    at: datetime


@dataclass
class _Window:
    check: WireCheck
    closes_at: float | None = None
    """``time.monotonic()`` after which the window is shut; None while the action runs."""
    on_send: SendHook | None = None


class WireGuard:
    """Holds every state-changing request of one browser context that no open window allows."""

    def __init__(self, grace_s: float = _GRACE_S) -> None:
        self.grace_s = grace_s
        """How long a window stays open after its action settled (a POST the action started a
        moment late, its redirects)."""
        self.held: deque[HeldRequest] = deque(maxlen=_MAX_HELD)
        """Held since the last :meth:`drain_held` (the newest 1000)."""
        self.passed_total = 0
        """State-changing requests let through since install."""
        self._window: _Window | None = None

    async def install(self, context: BrowserContext) -> None:
        """Route every request of ``context`` through the guard."""
        await context.route("**/*", self._route)

    @contextlib.asynccontextmanager
    async def window(
        self, check: WireCheck, on_send: SendHook | None = None
    ) -> AsyncIterator[None]:
        """Let through what ``check`` allows while the body runs, and for the grace after it;
        ``on_send`` is awaited before each such request is sent, and can still hold it."""
        window = _Window(check, on_send=on_send)
        self._window = window
        try:
            yield
        finally:
            window.closes_at = time.monotonic() + self.grace_s

    def drain_held(self) -> list[HeldRequest]:
        """What was held since the last call; clears the list."""
        drained = list(self.held)
        self.held.clear()
        return drained

    def _open_window(self) -> _Window | None:
        window = self._window
        if window is None:
            return None
        shut = window.closes_at is not None and time.monotonic() >= window.closes_at
        return None if shut else window

    def decide(self, request: WireRequest) -> str | None:
        """None to send ``request`` now; else why it is held."""
        if request.method in SAFE_METHODS:
            return None
        window = self._open_window()
        if window is None:
            return OUTSIDE
        try:
            return window.check(request)
        except Exception:
            # Fail closed: a check that cannot decide does not let a request out.
            log.exception("wire check failed; the request is held")
            return "the check of this request failed"

    async def _announce(self, on_send: SendHook, wire: WireRequest) -> str | None:
        try:
            if await on_send(wire):
                return None
        except Exception:
            # Fail closed: what cannot be recorded as sent is not sent.
            log.exception("wire: recording a request before it is sent failed; it is held")
        return "it could not be recorded as sent (a retry would not know it was)"

    async def _route(self, route: Route) -> None:
        request = route.request
        method = request.method.upper()
        if method in SAFE_METHODS:
            with contextlib.suppress(PlaywrightError):
                await route.fallback()
            return
        try:
            page_url: str | None = request.frame.page.url
        except PlaywrightError:
            page_url = None  # a worker's request has no frame
        wire = WireRequest(method, request.url, page_url, request.resource_type)
        window = self._open_window()
        reason = self.decide(wire)
        if reason is None and window is not None and window.on_send is not None:
            reason = await self._announce(window.on_send, wire)
        with contextlib.suppress(PlaywrightError):
            if reason is None:
                self.passed_total += 1
                await route.fallback()
                return
            at = datetime.now(UTC)
            self.held.append(
                HeldRequest(method=method, url=request.url[:_MAX_URL], reason=reason, at=at)
            )
            log.debug("wire: held %s %s: %s", method, request.url[:200], reason)
            await route.abort("blockedbyclient")
