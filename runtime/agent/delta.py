"""Delta observations: after an action that leaves the page in place, the planner reads what
changed instead of the whole page.

:func:`page_delta` compares two renderings of the same document (``render_observation``: the
redacted page text with refs) line by line. Each line of a delta is a marker and a line of the
new (or, for a removed line, the old) page text, so page text never starts a line of it:
``+`` added, ``-`` removed, ``~`` changed (the line as it is now), ``=`` the unchanged line an
addition follows (its place on the page). The refs are those of the snapshot the new page text
came from, the one actions resolve against; lines not shown are unchanged, and so are their refs
(Playwright keeps an element's ref while its role and name stay the same).

:class:`DocumentWatch` tells whether the active page is still the document last shown: the same
tab, the same URL and no main-frame navigation since (a reload or a same-URL form post counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

__all__ = ["DELTA_HEADING", "UNCHANGED", "DocumentWatch", "page_delta"]

# The markers are explained once, in the system prompt (runtime.agent.prompt).
DELTA_HEADING = "Changes to the page:"
UNCHANGED = "The page is unchanged."
# A context line is there to place an addition: its start is enough.
_CONTEXT_CHARS = 80


def _context(line: str) -> str:
    line = line.strip()
    return line if len(line) <= _CONTEXT_CHARS else line[: _CONTEXT_CHARS - 1] + "…"


def page_delta(before: str, after: str) -> str:
    """What changed from page text ``before`` to ``after``: one marked line per added, removed
    or changed line (empty when nothing did)."""
    old, new = before.splitlines(), after.splitlines()
    out: list[str] = []
    matcher = SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if tag == "replace" and i2 - i1 == j2 - j1:
            out.extend(f"~ {line.strip()}" for line in new[j1:j2])
            continue
        out.extend(f"- {line.strip()}" for line in old[i1:i2])
        if j2 > j1:
            if i1 == i2 and j1 > 0:
                out.append(f"= {_context(new[j1 - 1])}")
            out.extend(f"+ {line.strip()}" for line in new[j1:j2])
    return "\n".join(out)


@dataclass
class DocumentWatch:
    """Counts main-frame navigations of the page it watches (one page at a time)."""

    page: Any = None
    """The page watched (a Playwright ``Page``; ``runtime`` does not import Playwright)."""
    url: str = ""
    navigations: int = 0
    shown: int = -1
    """``navigations`` when the page was last shown in full or as a delta."""

    def _on_navigated(self, frame: Any) -> None:
        if frame.parent_frame is None:
            self.navigations += 1

    def close(self) -> None:
        """Stop watching (the page may outlive the run)."""
        if self.page is not None:
            self.page.remove_listener("framenavigated", self._on_navigated)
            self.page = None

    def same_document(self, page: Any, url: str) -> bool:
        """True when ``page`` at ``url`` is the document last shown; then (either way) it is the
        one shown now."""
        if page is not self.page:
            self.close()
            page.on("framenavigated", self._on_navigated)
            self.page, self.shown = page, -1
        same = self.shown == self.navigations and url == self.url
        self.url, self.shown = url, self.navigations
        return same
