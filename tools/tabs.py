"""The tabs of one session: which page is active, and which tabs or popups an action opened."""

from __future__ import annotations

from playwright.async_api import CDPSession, Page

from profiles import Session

__all__ = ["Tabs"]


class Tabs:
    """Tracks every page of a session's context; new tabs and popups become active."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.pages: list[Page] = list(session.context.pages)
        self._active = 0
        self._opened: list[Page] = []
        self._cdp: dict[Page, CDPSession] = {}
        session.context.on("page", self._on_page)

    def _on_page(self, page: Page) -> None:
        self.pages.append(page)
        self._opened.append(page)
        page.on("close", self._on_close)

    async def cdp(self, page: Page) -> CDPSession:
        """A Chrome DevTools session on ``page`` (kept for the page's life)."""
        session = self._cdp.get(page)
        if session is None:
            session = self._cdp[page] = await self.session.context.new_cdp_session(page)
        return session

    def _on_close(self, page: Page) -> None:
        self._cdp.pop(page, None)
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
