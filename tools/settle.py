"""Waiting for what an action set off: a navigation of the page, or a popup, and nothing else.

The browser says what an action asks for while the action runs, over CDP's Page domain on corral's
own session of the page (:meth:`tools.tabs.Tabs.page_events`):

- ``Page.frameRequestedNavigation`` for a new document in a frame: a link, a form, a script
  setting ``location`` (not a ``javascript:`` URL, a fragment or ``history.pushState``: those stay
  in the document);
- ``Page.windowOpen`` for a new window (``target=_blank``, ``window.open``).

A round trip on that session after the action makes sure every event the action caused has
arrived (events and answers of one session come in order; Playwright's own waits use the same
signal). So an action that asked for nothing returns at once, and one that asked for a navigation
returns when the new page has loaded, or when the navigation ended without one (a 204, a download,
a refused or failed request).

A navigation the page asks for later, from a timer or after its own fetch, is not the action's and
is not waited for. The next observation reads the page as it is then (Playwright's snapshot is taken
again if a navigation interrupts it), and the gate checks a target again, in the document it is in,
before acting on it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Frame, Page, Request

from .tabs import Tabs

__all__ = ["settle"]

# How long a navigation the action asked for may take to begin (its request sent, or an answer
# that it will not: the browser refused it, it became a download). Beginning takes milliseconds;
# a navigation the browser drops without a word (a URL it will not load) would otherwise hold the
# action until its timeout.
_START_S = 2.0
# How long a new window the action asked for may take to appear as a page.
_POPUP_S = 5.0


class _Watch:
    """What one action set off, heard from the browser while it ran."""

    def __init__(self, page: Page, main: str) -> None:
        self.page = page
        self.main = main
        self.requested = False  # a new document in the main frame
        self.window = False  # a new window
        self.started = asyncio.Event()  # the navigation began (or will not)
        self.ended = asyncio.Event()  # it committed, or ended without a document
        self.committed = False
        self.popups: list[Page] = []
        self.popped = asyncio.Event()

    # CDP events of corral's session (dicts).
    def on_requested(self, event: dict[str, Any]) -> None:
        if event.get("disposition", "currentTab") != "currentTab":
            self.window = True
        elif event.get("frameId") == self.main:
            self.requested = True

    def on_window(self, _: dict[str, Any]) -> None:
        self.window = True

    def on_started(self, event: dict[str, Any]) -> None:
        if event.get("frameId") == self.main:
            self.started.set()

    def on_stopped(self, event: dict[str, Any]) -> None:
        # Only a load that began after the request: a 204 or a refused response stops loading
        # without a new document.
        if event.get("frameId") == self.main and self.started.is_set():
            self.ended.set()

    # Playwright's events of the page.
    def on_request(self, request: Request) -> None:
        if request.is_navigation_request() and request.frame == self.page.main_frame:
            self.requested = True
            self.started.set()

    def on_navigated(self, frame: Frame) -> None:
        if frame == self.page.main_frame:
            self.committed = True
            self.started.set()
            self.ended.set()

    def on_abandoned(self, _: object) -> None:
        # A failed navigation, or one that became a download, never commits.
        self.started.set()
        self.ended.set()

    def on_popup(self, popup: Page) -> None:
        self.popups.append(popup)
        self.popped.set()

    def handlers(self) -> list[tuple[str, Callable[[Any], None]]]:
        return [
            ("request", self.on_request),
            ("framenavigated", self.on_navigated),
            ("requestfailed", self.on_abandoned),
            ("download", self.on_abandoned),
            ("popup", self.on_popup),
        ]

    def cdp_handlers(self) -> list[tuple[str, Callable[[Any], None]]]:
        return [
            ("Page.frameRequestedNavigation", self.on_requested),
            ("Page.windowOpen", self.on_window),
            ("Page.frameStartedNavigating", self.on_started),
            ("Page.frameStoppedLoading", self.on_stopped),
        ]


async def _within(event: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def settle(
    tabs: Tabs, page: Page, action: Coroutine[Any, Any, Any], timeout_ms: float = 30_000
) -> Any:
    """Run ``action``; if it asked for a navigation of the page, or for a new window, wait until
    the new page has loaded (see the module's docstring)."""
    try:
        cdp = await tabs.page_events(page)
        main = await (await tabs.isolated(page)).main_frame()
    except Exception:
        action.close()
        raise
    watch = _Watch(page, main)
    handlers, cdp_handlers = watch.handlers(), watch.cdp_handlers()
    for event, handler in handlers:
        page.on(event, handler)  # type: ignore[call-overload]
    for name, cdp_handler in cdp_handlers:
        cdp.on(name, cdp_handler)
    try:
        result = await action
        # Every event the action caused reaches this session before the answer to this.
        with contextlib.suppress(PlaywrightError):
            await cdp.send("Page.enable")
        timeout_s = timeout_ms / 1000
        if watch.requested and await _within(watch.started, min(_START_S, timeout_s)):
            await _within(watch.ended, timeout_s)
            if watch.committed:
                with contextlib.suppress(PlaywrightError):
                    await page.wait_for_load_state("load", timeout=timeout_ms)
        if watch.window:
            await _within(watch.popped, min(_POPUP_S, timeout_s))
        for popup in watch.popups:
            # A popup's first load is its target URL, not the about:blank it starts as.
            with contextlib.suppress(PlaywrightError):
                await popup.wait_for_load_state("load", timeout=timeout_ms)
        return result
    finally:
        for event, handler in handlers:
            page.remove_listener(event, handler)
        for name, cdp_handler in cdp_handlers:
            cdp.remove_listener(name, cdp_handler)
