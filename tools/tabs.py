"""The tabs of one session: which page is active, and which tabs or popups an action opened.

Every frame of every tab is watched: one that ends up on a URL that may not be loaded
(:func:`tools.navigation.refused_scheme`: a ``blob:`` popup, a ``data:`` iframe, a page that sent
itself to ``file:``) is sent back to ``about:blank``, a popup is closed, and the refusal is kept
for the step's record (:meth:`Tabs.take_refused`).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from playwright.async_api import CDPSession, Frame, Page
from playwright.async_api import Error as PlaywrightError

from profiles import Session

from .isolated import Isolated, unawaited
from .navigation import BLANK, refused_scheme

__all__ = ["Tabs"]

_MAX_REFUSED = 100
# Chromium's own error page after a failed load: nothing of the page's, nothing to undo.
_ERROR_PAGE = "chrome-error:"


class Tabs:
    """Tracks every page of a session's context; new tabs and popups become active."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.pages: list[Page] = list(session.context.pages)
        self._active = 0
        self._opened: list[Page] = []
        self._cdp: dict[Page, CDPSession] = {}
        self._isolated: dict[Page, Isolated] = {}
        self._page_events: set[Page] = set()
        self._popups: set[Page] = set()
        self._refused: list[dict[str, Any]] = []
        self._undoing: set[asyncio.Task[None]] = set()
        for page in self.pages:
            self._watch(page)
        session.context.on("page", self._on_page)

    def _on_page(self, page: Page) -> None:
        self.pages.append(page)
        self._opened.append(page)
        self._popups.add(page)
        page.on("close", self._on_close)
        self._watch(page)
        # It may have got there before it was announced.
        self._check(page.main_frame)

    def _watch(self, page: Page) -> None:
        page.on("framenavigated", self._check)

    def _check(self, frame: Frame) -> None:
        iso = self._isolated.get(frame.page)
        if iso is not None:
            # A new document: its worlds are new too (the main frame's is made at once).
            iso.forget(main_navigated=frame == frame.page.main_frame)
        url = frame.url
        if not url or url.startswith(_ERROR_PAGE):
            return
        if frame == frame.page.main_frame and url.startswith(("http:", "https:")):
            # Playwright's script in the new document (its selector engine, the AI snapshot's)
            # is made now, while the page loads, rather than by the first read after the load.
            unawaited(frame.locator(":root").count(), PlaywrightError)
        scheme = refused_scheme(url, frame=True)
        if scheme is None:
            return
        page = frame.page
        main = frame == page.main_frame
        done = "popup closed" if main and page in self._popups else "sent to about:blank"
        if len(self._refused) < _MAX_REFUSED:
            self._refused.append(
                {
                    "url": url[:200],
                    "scheme": scheme,
                    "frame": "main" if main else "child",
                    "done": done,
                    "at": datetime.now(UTC).isoformat(),
                }
            )
        task = asyncio.get_running_loop().create_task(self._undo(page, frame, done))
        self._undoing.add(task)
        task.add_done_callback(self._undoing.discard)

    async def _undo(self, page: Page, frame: Frame, done: str) -> None:
        with contextlib.suppress(PlaywrightError):
            if done == "popup closed":
                await page.close()
            else:
                await frame.goto(BLANK)

    async def take_refused(self) -> list[dict[str, Any]]:
        """Frames that reached a refused URL since the last call, once each is undone."""
        if self._undoing:
            await asyncio.gather(*self._undoing, return_exceptions=True)
        refused, self._refused = self._refused, []
        return refused

    async def cdp(self, page: Page) -> CDPSession:
        """A Chrome DevTools session on ``page`` (kept for the page's life)."""
        session = self._cdp.get(page)
        if session is None:
            session = self._cdp[page] = await self.session.context.new_cdp_session(page)
        return session

    async def page_events(self, page: Page) -> CDPSession:
        """``page``'s CDP session with the Page domain's events on (:mod:`tools.settle`)."""
        session = await self.cdp(page)
        if page not in self._page_events:
            await session.send("Page.enable")
            self._page_events.add(page)
        return session

    async def isolated(self, page: Page) -> Isolated:
        """corral's isolated worlds in ``page`` (kept for the page's life; forgotten whenever a
        frame of it navigates, see :mod:`tools.isolated`)."""
        iso = self._isolated.get(page)
        if iso is None:
            iso = self._isolated[page] = Isolated(await self.cdp(page))
        return iso

    def _on_close(self, page: Page) -> None:
        self._cdp.pop(page, None)
        self._isolated.pop(page, None)
        self._page_events.discard(page)
        self._popups.discard(page)
        if page in self.pages:
            index = self.pages.index(page)
            self.pages.remove(page)
            if self._active >= index and self._active > 0:
                self._active -= 1

    async def active(self) -> Page:
        """The active page, opening a blank one if the session has none."""
        if not self.pages:
            page = await self.session.context.new_page()
            self._opened.clear()
            self._popups.discard(page)
            if page not in self.pages:
                self.pages.append(page)
        return self.pages[min(self._active, len(self.pages) - 1)]

    @property
    def active_index(self) -> int:
        """Index of the active tab."""
        return min(self._active, max(len(self.pages) - 1, 0))

    def switch(self, index: int) -> Page:
        """Make tab ``index`` active."""
        if not 0 <= index < len(self.pages):
            raise IndexError(f"no tab {index}: {len(self.pages)} tab(s) open")
        self._active = index
        return self.pages[index]

    def take_opened(self) -> list[Page]:
        """Tabs opened since the last call; the newest becomes active."""
        opened = [p for p in self._opened if p in self.pages]
        self._opened.clear()
        if opened:
            self._active = self.pages.index(opened[-1])
        return opened
