"""Screenshots with numbered marks: a box and its ref drawn on every interactive element.

The boxes come from Playwright's AI snapshot (``boxes=True``), so a vision model can answer with a
ref the planner can act on. Drawing happens on the image (Pillow), never in the page.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image, ImageDraw

from .observe import screenshot
from .snapshot import short_refs, snapshot_elements
from .tabs import Tabs

__all__ = ["INTERACTIVE_ROLES", "marked_screenshot", "parse_boxes"]

INTERACTIVE_ROLES = frozenset(
    {
        "button",
        "link",
        "textbox",
        "checkbox",
        "radio",
        "combobox",
        "option",
        "menuitem",
        "tab",
        "searchbox",
        "spinbutton",
        "slider",
        "switch",
        "listbox",
    }
)
"""Roles that get a mark."""


def parse_boxes(snapshot: str) -> list[tuple[str, int, int, int, int]]:
    """(ref, x, y, w, h) of every interactive element with a visible box."""
    out = []
    for node in snapshot_elements(snapshot):
        box = node.box
        if node.role in INTERACTIVE_ROLES and node.ref and box and box[2] > 0 and box[3] > 0:
            out.append((node.ref, *box))
    return out


async def marked_screenshot(
    tabs: Tabs, shows_secret: Callable[[str], bool] | None = None
) -> tuple[bytes | None, list[str]]:
    """A JPEG of the viewport with each interactive element boxed and labelled by its ref.

    Secrets are masked as in step screenshots; None if the page shows a secret as text.
    """
    page = await tabs.active()
    # Labelled with the refs the planner reads (tools.snapshot.short_refs).
    snapshot = short_refs(page, await page.aria_snapshot(mode="ai", boxes=True))
    shot = await screenshot(tabs, shows_secret)
    if shot is None:
        return None, []
    image = Image.open(io.BytesIO(shot)).convert("RGB")
    # The boxes are CSS px; the picture is device px.
    scale = image.width / (page.viewport_size or {"width": image.width})["width"]
    draw = ImageDraw.Draw(image)
    refs = []
    for ref, *css in parse_boxes(snapshot):
        x, y, w, h = (round(v * scale) for v in css)
        if x > image.width or y > image.height:
            continue
        refs.append(ref)
        draw.rectangle((x, y, x + w, y + h), outline=(255, 0, 64), width=2)
        label_w = 7 * len(ref) + 4
        draw.rectangle((x, max(y - 12, 0), x + label_w, max(y - 12, 0) + 12), fill=(255, 0, 64))
        draw.text((x + 2, max(y - 12, 0)), ref, fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=70)
    return out.getvalue(), refs
