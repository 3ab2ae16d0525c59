"""Masks painted onto a captured screenshot cover whole JPEG blocks: no 16-px block that held a
pixel of a masked box keeps anything of it, at any device scale; the rest is left alone."""

from __future__ import annotations

import io

from PIL import Image

from tools.observe import _painted


def _jpeg(width: int, height: int) -> bytes:
    image = Image.new("RGB", (width, height), (255, 255, 255))
    for x in range(0, width, 3):  # fine detail everywhere: text-like strokes
        for y in range(height):
            image.putpixel((x, y), (0, 0, 0))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def _is_mask(pixel: tuple[int, ...]) -> bool:
    return pixel[0] > 200 and pixel[1] < 80 and pixel[2] > 200


def test_a_box_is_painted_out_to_whole_blocks() -> None:
    shot = _painted(_jpeg(320, 200), 320, [[21.5, 37.2, 90.1, 61.9]])
    image = Image.open(io.BytesIO(shot)).convert("RGB")
    # The box grown to the 16-px grid: x 16..96, y 32..64, all of it the mask's colour.
    for x in range(16 + 2, 96 - 2):
        for y in range(32 + 2, 64 - 2):
            assert _is_mask(image.getpixel((x, y))), (x, y)
    # Outside the grown box the picture is as captured (no mask colour).
    for x, y in [(8, 8), (120, 40), (50, 90), (300, 190)]:
        assert not _is_mask(image.getpixel((x, y))), (x, y)


def test_boxes_scale_with_the_picture_and_stop_at_its_edges() -> None:
    # A 2x device scale: CSS px (viewport 160 wide) map to twice as many picture pixels.
    shot = _painted(_jpeg(320, 200), 160, [[150.0, 90.0, 170.0, 120.0]])
    image = Image.open(io.BytesIO(shot)).convert("RGB")
    assert image.size == (320, 200)
    for x in range(290, 320):
        for y in range(178, 200):
            assert _is_mask(image.getpixel((x, y))), (x, y)
    assert not _is_mask(image.getpixel((200, 100)))
