"""Observation: what an agent (or a recording) sees of the active page."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import math
from collections.abc import Callable

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator, Page
from pydantic import BaseModel, ConfigDict, Field

from .clickables import probe_clickables, probe_lines
from .compact import compact_snapshot
from .execute import SECRET_MARK
from .isolated import Isolated, IsolatedError
from .snapshot import short_refs
from .tabs import Tabs

MASK_SELECTOR = _MASK = f"input[type=password], [{SECRET_MARK}]"
# The text a screenshot would show that no mask covers: the page's text, the values of fields
# that are neither password fields nor marked as holding a secret, and the same inside every
# open shadow root (a web component's text and fields).
_UNMASKED_TEXT_JS = f"""() => {{
  const out = [document.body ? document.body.innerText : ""];
  const walk = (root) => {{
    for (const el of root.querySelectorAll("input, textarea, select")) {{
      if (!el.matches({_MASK!r})) out.push(el.value);
    }}
    for (const el of root.querySelectorAll("*")) {{
      if (el.shadowRoot) {{
        out.push(el.shadowRoot.textContent);
        walk(el.shadowRoot);
      }}
    }}
  }};
  walk(document);
  return out.join("\\n");
}}"""

# What to paint over, in the document and every open shadow root in it (Playwright's mask
# locators pierce those too; a closed one is out of everyone's reach): the viewport boxes of what
# is drawn (CSS px), and the viewport's width. Run in corral's isolated world, where the page's
# own scripts cannot change what querySelectorAll or getBoundingClientRect answer.
_MASK_BOXES = f"""(() => {{
  const boxes = [];
  const walk = (root) => {{
    for (const el of root.querySelectorAll({_MASK!r})) {{
      const r = el.getBoundingClientRect();
      if (r.width > 0 && r.height > 0) boxes.push([r.left, r.top, r.right, r.bottom]);
    }}
    for (const el of root.querySelectorAll("*")) {{
      if (el.shadowRoot) walk(el.shadowRoot);
    }}
  }};
  walk(document);
  return {{width: window.innerWidth, boxes}};
}})()"""
# The same boxes read now and in each of the next two animation frames (the page's own frame
# callbacks run between them): ``still`` is false if any read differs, or if no two frames came
# within the time limit (then nothing says what the next painted frame will show). A page that
# moves a secret's field on every frame is seen moving here even when the page is too slow for
# reads made between frames to catch it (the painted frame can lag the DOM those reads see).
_MASK_BOXES_OVER_FRAMES = f"""new Promise((resolve) => {{
  const read = () => JSON.stringify({_MASK_BOXES});
  const first = read();
  let done = false;
  const finish = (still) => {{
    if (!done) {{ done = true; resolve({{boxes: JSON.parse(first), still}}); }}
  }};
  requestAnimationFrame(() => {{
    if (read() !== first) return finish(false);
    requestAnimationFrame(() => finish(read() === first));
  }});
  setTimeout(() => finish(false), 500);
}})"""
# JPEG codes the picture in blocks of 16 px (colour at half resolution): a painted box is grown
# to whole blocks, so no block that held a masked pixel survives in the picture that is kept.
_BLOCK = 16
_MASK_COLOUR = (255, 0, 255)  # Playwright's default mask colour, as on its masked screenshots


__all__ = [
    "MASK_SELECTOR",
    "Observation",
    "TabInfo",
    "mask_locators",
    "observe",
    "page_shows_secret",
    "screenshot",
]


class TabInfo(BaseModel):
    """One open tab."""

    model_config = ConfigDict(extra="forbid")
    index: int
    url: str
    title: str
    active: bool


class Observation(BaseModel):
    """The active page as text (AI aria snapshot with refs), plus an optional screenshot."""

    model_config = ConfigDict(extra="forbid")
    url: str
    title: str
    tabs: list[TabInfo]
    snapshot: str = Field(
        description="Playwright's AI aria snapshot; refs like [ref=e7] (the main frame's "
        "without their frame prefix: tools.snapshot.short_refs)"
    )
    compact: str = Field(
        description="the snapshot as compact text for a model, refs like [e7], then the icon-only "
        "controls the snapshot leaves out (tools.clickables), refs like [p1]"
    )
    screenshot: bytes | None = Field(None, repr=False, exclude=True)


async def _title(page: object) -> str:
    try:
        return await page.title()  # type: ignore[attr-defined, no-any-return]
    except PlaywrightError:
        return ""


async def observe(
    tabs: Tabs, screenshot: bool = False, redact: Callable[[str], str] | None = None
) -> Observation:
    """Observe the active page; ``redact`` scrubs text before it leaves this function."""
    page = await tabs.active()
    clean = redact or (lambda text: text)
    # The main frame's refs without their frame prefix (e7, not f4e7): what the planner sees,
    # and what tools.execute.locate maps back.
    snapshot = short_refs(page, clean(await page.aria_snapshot(mode="ai")))
    icons = probe_lines(await probe_clickables(page, Isolated(await tabs.cdp(page))))
    compact = "\n".join([compact_snapshot(snapshot), *(clean(line) for line in icons)])
    infos = [
        TabInfo(
            index=i,
            url=clean(p.url),
            title=clean(await _title(p)),
            active=i == tabs.active_index,
        )
        for i, p in enumerate(tabs.pages)
    ]
    shot = await page.screenshot(type="jpeg", quality=70) if screenshot else None
    return Observation(
        url=clean(page.url),
        title=clean(await _title(page)),
        tabs=infos,
        snapshot=snapshot,
        compact=compact.strip("\n"),
        screenshot=shot,
    )


async def mask_locators(page: Page) -> list[Locator]:
    """Password fields and anything a secret was typed into, in every frame, to paint over.

    Only frames that have such an element get a mask: a mask costs Playwright ~50 ms per
    screenshot even when it matches nothing.
    """
    masks = []
    for frame in page.frames:
        locator = frame.locator(_MASK)
        with contextlib.suppress(PlaywrightError):
            if await locator.count():
                masks.append(locator)
    return masks


async def _mask_boxes(tabs: Tabs, page: Page) -> tuple[float, list[list[float]]] | None:
    """The viewport's width and the boxes to paint over on ``page``, asked in corral's isolated
    world in one round trip; None for a page with frames (Playwright's mask covers those)."""
    if len(page.frames) != 1:
        return None
    iso = Isolated(await tabs.cdp(page))
    try:
        result = await iso.send(
            "Runtime.evaluate",
            {
                "expression": _MASK_BOXES,
                "contextId": await iso.world(await iso.main_frame()),
                "returnByValue": True,
            },
        )
    except IsolatedError:
        return None
    value = result.get("result", {}).get("value")
    if "exceptionDetails" in result or not isinstance(value, dict):
        return None
    return float(value["width"]), [[float(v) for v in box] for box in value["boxes"]]


def _painted(jpeg: bytes, width: float, boxes: list[list[float]]) -> bytes:
    """``jpeg`` with ``boxes`` (CSS px, viewport ``width`` wide) painted over, whole blocks."""
    from PIL import Image, ImageDraw  # only a masked screenshot needs it

    image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    scale = image.width / width if width > 0 else 1.0
    draw = ImageDraw.Draw(image)
    for left, top, right, bottom in boxes:
        x0 = max(0, math.floor(left * scale / _BLOCK) * _BLOCK)
        y0 = max(0, math.floor(top * scale / _BLOCK) * _BLOCK)
        x1 = min(image.width, math.ceil(right * scale / _BLOCK) * _BLOCK)
        y1 = min(image.height, math.ceil(bottom * scale / _BLOCK) * _BLOCK)
        if x1 > x0 and y1 > y0:
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=_MASK_COLOUR)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=70)
    return out.getvalue()


async def _still_over_frames(
    tabs: Tabs, page: Page, found: tuple[float, list[list[float]]]
) -> bool:
    """True if the boxes to mask are ``found`` now and in the next two animation frames."""
    iso = Isolated(await tabs.cdp(page))
    try:
        result = await iso.send(
            "Runtime.evaluate",
            {
                "expression": _MASK_BOXES_OVER_FRAMES,
                "contextId": await iso.world(await iso.main_frame()),
                "returnByValue": True,
                "awaitPromise": True,
            },
        )
    except IsolatedError:
        return False
    value = result.get("result", {}).get("value")
    if "exceptionDetails" in result or not isinstance(value, dict) or not value.get("still"):
        return False
    boxes = value["boxes"]
    seen = float(boxes["width"]), [[float(v) for v in box] for box in boxes["boxes"]]
    return seen == found


async def _stands_still(
    tabs: Tabs, page: Page, found: tuple[float, list[list[float]]], capture: asyncio.Task[bytes]
) -> bool:
    """True if the boxes to mask read ``found`` every time they are read while ``capture``
    runs (a read every few milliseconds, and at least one)."""
    while True:
        if await _mask_boxes(tabs, page) != found:
            return False
        if capture.done():
            return True
        await asyncio.sleep(0.002)


async def _capture(tabs: Tabs, page: Page, quality: int) -> bytes:
    cdp = await tabs.cdp(page)
    shot = await cdp.send("Page.captureScreenshot", {"format": "jpeg", "quality": quality})
    return base64.b64decode(shot["data"])


async def page_shows_secret(tabs: Tabs, shows_secret: Callable[[str], bool]) -> bool:
    """True if a secret is visible outside what screenshots mask (text, unmasked fields)."""
    page = await tabs.active()
    for frame in page.frames:
        if shows_secret(str(await frame.evaluate(_UNMASKED_TEXT_JS))):
            return True
    return False


async def screenshot(tabs: Tabs, shows_secret: Callable[[str], bool] | None = None) -> bytes | None:
    """A JPEG of the active tab; None if it cannot be captured, or if it would show a secret.

    ``shows_secret`` is asked about what the mask does not cover (each frame's text, and the values
    of fields that are neither password fields nor marked as holding a secret): a secret shown as
    page text cannot be masked reliably, so such a screenshot is withheld.
    """
    if tabs.session.closed_unexpectedly or not tabs.pages:
        return None
    try:
        page = await tabs.active()
        if shows_secret is not None and await page_shows_secret(tabs, shows_secret):
            return None
        # Chromium's own capture skips Playwright's screenshot preparation (fonts, caret, mask
        # overlays), about 40% faster right after a page load.
        found = await _mask_boxes(tabs, page)
        if found is not None and not found[1]:
            return await _capture(tabs, page, 70)  # nothing to paint over
        if found is not None:
            # Painted over here, where the page cannot move or remove an overlay, and only if
            # what is to be masked stood still before, during and after the capture: a page
            # that moves a secret's field meanwhile gets no screenshot (an overlay placed
            # before the capture would miss the field too).
            # Over whole animation frames too, before and after: the frame Chromium captures may
            # lag the DOM that reads between frames see.
            if not await _still_over_frames(tabs, page, found):
                return None
            capture = asyncio.create_task(_capture(tabs, page, 90))
            still = await _stands_still(tabs, page, found, capture)
            shot = await capture
            if still and await _still_over_frames(tabs, page, found):
                return await asyncio.to_thread(_painted, shot, *found)
            return None
        masks = await mask_locators(page)
        if masks:
            return await page.screenshot(type="jpeg", quality=70, timeout=5000, mask=masks)
        return await _capture(tabs, page, 70)
    except PlaywrightError:
        return None
