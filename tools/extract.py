"""Extraction: tables into rows keyed by header (following pagination), text into strings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from playwright.async_api import Locator, Page

from .actions import Extract, Locate

__all__ = ["extract_value"]

# Header cells come from <thead>, else from a first row made only of <th>; a header-less table
# gets col1..colN. Each body row becomes {header: cell text}.
_TABLE_JS = """
(table) => {
  const text = (el) => (el.innerText || el.textContent || "").replace(/\\s+/g, " ").trim();
  const rows = Array.from(table.rows);
  let header = [];
  let body = rows;
  if (table.tHead && table.tHead.rows.length) {
    header = Array.from(table.tHead.rows[table.tHead.rows.length - 1].cells).map(text);
    body = rows.filter((r) => r.parentElement !== table.tHead);
  } else if (rows.length && Array.from(rows[0].cells).every((c) => c.tagName === "TH")) {
    header = Array.from(rows[0].cells).map(text);
    body = rows.slice(1);
  }
  return body
    .filter((r) => r.parentElement !== table.tFoot)
    .map((r) => {
      const out = {};
      Array.from(r.cells).forEach((c, i) => { out[header[i] || `col${i + 1}`] = text(c); });
      return out;
    })
    .filter((o) => Object.keys(o).length);
}
"""


async def extract_value(
    page: Page,
    action: Extract,
    locate: Any,
    timeout_ms: float,
    click_next: Callable[[Page, Locate], Awaitable[None]],
) -> Any:
    """Run one extract action on ``page``; ``locate`` builds locators, ``click_next`` follows
    the ``next`` control (checked like any click: it raises, ending the step, if refused)."""
    if action.text is not None:
        target: Locator = locate(page, action.text)
        if action.all:
            await target.first.wait_for(timeout=timeout_ms)
            return [t.strip() for t in await target.all_inner_texts()]
        return (await target.inner_text(timeout=timeout_ms)).strip()
    assert action.table is not None
    rows: list[dict[str, str]] = []
    for _ in range(action.max_pages):
        table = locate(page, action.table)
        rows.extend(await table.evaluate(_TABLE_JS, timeout=timeout_ms))
        if action.next is None:
            break
        nxt = locate(page, action.next)
        # A last page shows no "next", hides it, or disables it (disabled or aria-disabled).
        if not await nxt.count() or not await nxt.first.is_visible():
            break
        if not await nxt.first.is_enabled() or await nxt.first.get_attribute("aria-disabled") in (
            "true",
        ):
            break
        first = (
            action.next
            if action.next.nth is not None
            else action.next.model_copy(update={"nth": 0})
        )
        await click_next(page, first)
    return rows
