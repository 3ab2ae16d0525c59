"""A screenshot with one element outlined: what a person approving an action looks at."""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image, ImageDraw
from playwright.async_api import Error as PlaywrightError

from .actions import AnyAction, action_target
from .execute import locate
from .observe import screenshot
from .tabs import Tabs

__all__ = ["highlighted_screenshot"]

_COLOR = (255, 0, 64)


async def highlighted_screenshot(
    tabs: Tabs, action: AnyAction, shows_secret: Callable[[str], bool] | None = None
) -> bytes | None:
    """A JPEG of the viewport with the action's target boxed; secrets masked as in step
    screenshots; None if the page shows a secret as text or cannot be captured."""
    box = None
    target = action_target(action)
    if target is not None and tabs.pages:
        page = await tabs.active()
        element = locate(page, target).first
        try:
            await element.scroll_into_view_if_needed(timeout=2000)
            box = await element.bounding_box(timeout=2000)
        except PlaywrightError:
            box = None  # the picture still shows the page; the summary names the target
    shot = await screenshot(tabs, shows_secret)
    if shot is None or box is None:
        return shot
    image = Image.open(io.BytesIO(shot)).convert("RGB")
    draw = ImageDraw.Draw(image)
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    for grow in (2, 4):  # a double outline stays visible on any background
        draw.rectangle((x - grow, y - grow, x + w + grow, y + h + grow), outline=_COLOR, width=2)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=75)
    return out.getvalue()
