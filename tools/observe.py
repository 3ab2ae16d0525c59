"""Observation: what an agent (or a recording) sees of the active page."""

from __future__ import annotations

import asyncio
import base64
import io
import math
from collections.abc import Callable
from dataclasses import dataclass

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page
from pydantic import BaseModel, ConfigDict, Field

from .clickables import probe_clickables, probe_lines
from .compact import compact_snapshot
from .execute import SECRET_MARK
from .isolated import Isolated, IsolatedError
from .snapshot import short_refs
from .tabs import Tabs

MASK_SELECTOR = _MASK = f"input[type=password], [{SECRET_MARK}]"
_EMPTY_UNLESS = f"input[type=password]:not([{SECRET_MARK}])"
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

# What to paint over, in the document and every open shadow root in it (a closed one is out of
# everyone's reach): the viewport boxes of what is drawn (CSS px), and the viewport's width. With
# ``frames``, also every frame the page embeds (whole: a frame's content is drawn inside its box,
# wherever in it a field moves, and in whichever of the page's frames it is moved). Run in corral's
# isolated world, where the page's own scripts cannot change what querySelectorAll or
# getBoundingClientRect answer. An empty password field corral typed nothing into shows nothing:
# it is left out (its value read through the prototype's getter), so a sign-in page's screenshot
# before the password is typed takes the quick path.
_READ_BOXES = f"""(frames) => {{
  const boxes = [];
  const selector = frames ? {_MASK + ", iframe, frame, object, embed"!r} : {_MASK!r};
  const value = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').get;
  const empty = (el) => el.matches({_EMPTY_UNLESS!r}) && value.call(el) === '';
  const walk = (root) => {{
    for (const el of root.querySelectorAll(selector)) {{
      if (empty(el)) continue;
      const r = el.getBoundingClientRect();
      if (r.width > 0 && r.height > 0) boxes.push([r.left, r.top, r.right, r.bottom]);
    }}
    for (const el of root.querySelectorAll("*")) {{
      if (el.shadowRoot) walk(el.shadowRoot);
    }}
  }};
  walk(document);
  return {{width: window.innerWidth, boxes}};
}}"""
_MASK_BOXES = f"function (frames) {{ return ({_READ_BOXES})(frames); }}"
# The same boxes read now and in each of the next two animation frames (the page's own frame
# callbacks run between them): ``still`` is false if any read differs, or if no two frames came
# within the time limit (then nothing says what the next painted frame will show). A page that
# moves a secret's field on every frame is seen moving here even when the page is too slow for
# reads made between frames to catch it (the painted frame can lag the DOM those reads see).
_MASK_BOXES_OVER_FRAMES = f"""function (frames) {{ return new Promise((resolve) => {{
  const read = () => JSON.stringify(({_READ_BOXES})(frames));
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
}}); }}"""
# JPEG codes the picture in blocks of 16 px (colour at half resolution): a painted box is grown
# to whole blocks, so no block that held a masked pixel survives in the picture that is kept.
_BLOCK = 16
_MASK_COLOUR = (255, 0, 255)  # Playwright's default mask colour, as on its masked screenshots


__all__ = [
    "MASK_SELECTOR",
    "Observation",
    "TabInfo",
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
    iso = await tabs.isolated(page)
    pages = list(tabs.pages)
    # Three reads of the page at once (each only reads): the AI snapshot, the icon probe and the
    # tabs' titles.
    raw, probed, titles = await asyncio.gather(
        page.aria_snapshot(mode="ai", boxes=True),
        probe_clickables(page, iso),
        asyncio.gather(*(_title(p) for p in pages)),
    )
    # The main frame's refs without their frame prefix (e7, not f4e7): what the planner sees,
    # and what tools.execute.locate maps back. Where each was is kept for the gate's check
    # (tools.snapshot.ref_spot), not shown.
    snapshot = short_refs(page, clean(raw), keep_boxes=False)
    icons = probe_lines(probed)
    compact = "\n".join([compact_snapshot(snapshot), *(clean(line) for line in icons)])
    infos = [
        TabInfo(index=i, url=clean(p.url), title=clean(title), active=i == tabs.active_index)
        for i, (p, title) in enumerate(zip(pages, titles, strict=True))
    ]
    title = titles[pages.index(page)] if page in pages else await _title(page)
    shot = await page.screenshot(type="jpeg", quality=70) if screenshot else None
    return Observation(
        url=clean(page.url),
        title=clean(title),
        tabs=infos,
        snapshot=snapshot,
        compact=compact.strip("\n"),
        screenshot=shot,
    )


async def _frames_hold_masks(page: Page) -> bool:
    """True if a frame other than the main one has a password field or a field a secret was
    typed into (asked where Playwright's selector engine runs, out of the page's reach), or
    cannot be asked."""
    for frame in page.frames:
        if frame is page.main_frame:
            continue
        try:
            if await frame.locator(_MASK).count():
                return True
        except PlaywrightError:
            return True
    return False


Boxes = tuple[float, list[list[float]]]
"""The viewport's width and the boxes to paint over (CSS px)."""


@dataclass(frozen=True)
class _Masks:
    """What to paint over on one page, read in corral's isolated world of its main frame.

    ``frames``: every frame the page embeds is painted over whole, because one of them holds
    something to mask (a field inside a frame is then covered wherever it moves, between frames
    too; only the top document's boxes are read, and they cannot be forged from inside).
    """

    iso: Isolated
    frames: bool

    async def _call(self, function: str, wait: bool) -> object:
        result = await self.iso.in_world(
            None,
            "Runtime.callFunctionOn",
            {
                "functionDeclaration": function,
                "arguments": [{"value": self.frames}],
                "returnByValue": True,
                "awaitPromise": wait,
            },
        )
        if "exceptionDetails" in result:
            return None
        return result.get("result", {}).get("value")

    async def read(self) -> Boxes | None:
        """The boxes now; None if they cannot be read."""
        try:
            return _boxes(await self._call(_MASK_BOXES, wait=False))
        except IsolatedError:
            return None

    async def still_over_frames(self, found: Boxes) -> bool:
        """True if the boxes are ``found`` now and in the next two animation frames."""
        try:
            value = await self._call(_MASK_BOXES_OVER_FRAMES, wait=True)
        except IsolatedError:
            return False
        if not isinstance(value, dict) or not value.get("still"):
            return False
        return _boxes(value.get("boxes")) == found

    async def stand_still(self, found: Boxes, capture: asyncio.Task[bytes]) -> bool:
        """True if the boxes read ``found`` every time they are read while ``capture`` runs
        (a read every few milliseconds, and at least one)."""
        while True:
            if await self.read() != found:
                return False
            if capture.done():
                return True
            await asyncio.sleep(0.002)


def _boxes(value: object) -> Boxes | None:
    if not isinstance(value, dict):
        return None
    return float(value["width"]), [[float(v) for v in box] for box in value["boxes"]]


async def _masks(tabs: Tabs, page: Page) -> _Masks:
    """The page's masks (whose reads say None if its isolated world cannot be reached)."""
    frames = len(page.frames) > 1 and await _frames_hold_masks(page)
    return _Masks(await tabs.isolated(page), frames)


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
        masks = await _masks(tabs, page)
        found = await masks.read()
        if found is None:
            return None  # what to mask is unknown
        if not found[1]:
            return await _capture(tabs, page, 70)  # nothing to paint over
        # Painted over here, where the page cannot move or remove an overlay, and only if what
        # is to be masked stood still before, during and after the capture: a page that moves a
        # secret's field meanwhile gets no screenshot (an overlay placed before the capture
        # would miss the field too). Over whole animation frames too, before and after: the
        # frame Chromium captures may lag the DOM that reads between frames see.
        if not await masks.still_over_frames(found):
            return None
        capture = asyncio.create_task(_capture(tabs, page, 90))
        still = await masks.stand_still(found, capture)
        shot = await capture
        if still and await masks.still_over_frames(found):
            return await asyncio.to_thread(_painted, shot, *found)
        return None
    except PlaywrightError:
        return None
