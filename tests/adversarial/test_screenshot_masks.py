"""Step screenshots paint over what a secret was typed into, wherever the field is: in the
document, inside a web component's open shadow root (where a lookup of the document alone
finds nothing and would let the screenshot through unmasked), or inside a frame (then every frame
of the page is painted over whole, wherever the page moves the field)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from PIL import Image

from profiles import ProfileSettings
from runtime import Runtime, parse_task, run_task
from runtime.models.types import ImagePart, Message, ModelResponse, ToolSpec
from runtime.records import StepRecord
from runtime.testing import FunctionModel, call, reply
from tests.support.agent import page_of, ref_of
from tests.support.hostile import HostileSite, run_steps

SECRET = "tok-7c1d-secret-value"
# A text field (the value shows in clear) at a fixed place, so the test knows where it is drawn.
_FIELD = "position:fixed;left:40px;top:40px;width:480px;height:80px;font:40px monospace;border:0"
LIGHT = f"<label>Token <input name=token style='{_FIELD}'></label>"
SHADOW = (
    "<token-box></token-box><script>customElements.define('token-box', class extends "
    "HTMLElement { connectedCallback() { this.attachShadow({mode: 'open'}).innerHTML = "
    f'"<label>Token <input name=token style=\\"{_FIELD}\\"></label>"; }} }});</script>'
)
BOX = (40, 40, 520, 120)


def masked_share(path: Path) -> float:
    """The share of the field's pixels in the mask's colour (#FF00FF)."""
    left, top, right, bottom = BOX
    inner = Image.open(path).convert("RGB").crop((left + 4, top + 4, right - 4, bottom - 4))
    raw = inner.tobytes()
    pixels = [raw[i : i + 3] for i in range(0, len(raw), 3)]
    return sum(p[0] > 200 and p[1] < 80 and p[2] > 200 for p in pixels) / len(pixels)


TYPED = "{{secret:api.token}}"


IN_FRAME = {"css": "iframe >> nth=0 >> internal:control=enter-frame >> [name=token]"}


async def type_token(
    hrt: Runtime,
    site: HostileSite,
    url: str,
    value: str = TYPED,
    target: dict[str, str] | None = None,
) -> tuple[dict[str, StepRecord], Path]:
    """Load ``url`` and type ``value`` into its Token field (by default the secret, bound to
    fields named "token": a text field, where a password would go only into a password
    input; by default the field labelled Token, else ``target``); the run's steps by kind, and
    its folder."""
    secrets = []
    if value == TYPED:
        await hrt.profiles.create("victim", ProfileSettings())
        await hrt.vault.set("api.token", SECRET, [site.url], ["victim"], fields=["token"])
        secrets = ["api.token"]
    result = await run_steps(
        hrt,
        site,
        [{"goto": url}, {"fill": {**(target or {"label": "Token"}), "value": value}}],
        secrets=secrets,
    )
    assert result.status == "succeeded", result.error
    steps = await hrt.store.runs.list_steps(str(result.run_id))
    return {s.kind: s for s in steps}, hrt.settings.runs_dir / str(result.run_id)


@pytest.mark.parametrize("where", ["document", "shadow root"])
async def test_a_field_holding_a_secret_is_painted_over_in_step_screenshots(
    hrt: Runtime, site: HostileSite, where: str
) -> None:
    url = site.page("/token", LIGHT if where == "document" else SHADOW)
    steps, folder = await type_token(hrt, site, url)
    assert steps["fill"].screenshot, "the fill step has no screenshot"
    assert masked_share(folder / steps["fill"].screenshot) > 0.99


async def test_a_field_without_a_secret_is_drawn_as_it_is(hrt: Runtime, site: HostileSite) -> None:
    # The control: the same shadow field typed into with a plain value is not painted over.
    url = site.page("/plain", SHADOW)
    steps, folder = await type_token(hrt, site, url, "just text")
    assert steps["fill"].screenshot
    assert masked_share(folder / steps["fill"].screenshot) < 0.01


async def test_a_secret_a_page_copies_into_a_shadow_field_withholds_the_screenshot(
    hrt: Runtime, site: HostileSite
) -> None:
    # The page copies what is typed into the marked field into an unmarked field of its own,
    # inside a shadow root, where the mask does not reach: the screenshot is not kept.
    url = site.page(
        "/copy",
        "<label>Token <input name=token></label><mirror-box></mirror-box><script>"
        "customElements.define('mirror-box', class extends HTMLElement { connectedCallback() {"
        " this.attachShadow({mode: 'open'}).innerHTML = '<input id=m>'; } });"
        "document.querySelector('[name=token]').addEventListener('input', (e) => {"
        " document.querySelector('mirror-box').shadowRoot.getElementById('m').value ="
        " e.target.value; });</script>",
    )
    steps, _ = await type_token(hrt, site, url)
    assert steps["navigate"].screenshot, "the page before the secret was typed is shown"
    assert steps["fill"].screenshot is None, "a screenshot showing the copied secret was kept"


def dark_share(path: Path, box: tuple[int, int, int, int]) -> float:
    """The share of pixels in ``box`` dark enough to be the field's text."""
    raw = Image.open(path).convert("RGB").crop(box).tobytes()
    pixels = [raw[i : i + 3] for i in range(0, len(raw), 3)]
    return sum(max(p) < 90 for p in pixels) / len(pixels)


async def test_a_field_that_keeps_moving_is_never_captured_unmasked(
    hrt: Runtime, site: HostileSite
) -> None:
    # The secret's field jumps between two places every frame, so a mask placed where it was
    # read would miss it where it is drawn: the screenshot is withheld, or (if the field happened
    # to stand still) painted over; its text never shows in either place.
    url = site.page(
        "/jiggle",
        "<label>Token <input name=token style='position:fixed;left:40px;top:40px;width:480px;"
        "height:80px;font:40px monospace;border:0;color:#000;background:#fff'></label><script>"
        "const f = document.querySelector('[name=token]'); let n = 0;"
        "const hop = () => { f.style.top = (n++ % 2 ? 400 : 40) + 'px';"
        " requestAnimationFrame(hop); };"
        "f.addEventListener('input', () => requestAnimationFrame(hop));</script>",
    )
    steps, folder = await type_token(hrt, site, url)
    if steps["fill"].screenshot is not None:
        shot = folder / steps["fill"].screenshot
        for top in (40, 400):
            assert dark_share(shot, (44, top + 4, 516, top + 76)) < 0.005, top


def frame_page(site: HostileSite, name: str, inner: str, outer: str = "") -> str:
    """A page whose one frame, at the Token field's place and size, shows ``inner``."""
    site.page(f"/{name}-inner", f"<body style='margin:0'>{inner}</body>")
    frame = f"<iframe src='/{name}-inner' style='{_FIELD};border:0'></iframe>"
    return site.page(f"/{name}", f"<body style='margin:0'>{frame}{outer}</body>")


FRAME_FIELD = (
    "<input name=token style='position:absolute;left:0;top:0;width:480px;"
    "height:80px;font:40px monospace;border:0;color:#000;background:#fff'>"
)


async def test_a_field_holding_a_secret_inside_a_frame_is_painted_over(
    hrt: Runtime, site: HostileSite
) -> None:
    url = frame_page(site, "framed", FRAME_FIELD)
    steps, folder = await type_token(hrt, site, url, target=IN_FRAME)
    assert steps["fill"].screenshot, "the fill step has no screenshot"
    assert masked_share(folder / steps["fill"].screenshot) > 0.99


async def test_a_frame_without_a_secret_is_drawn_as_it_is(hrt: Runtime, site: HostileSite) -> None:
    url = frame_page(site, "framed-plain", FRAME_FIELD)
    steps, folder = await type_token(hrt, site, url, "just text", target=IN_FRAME)
    assert steps["fill"].screenshot
    assert masked_share(folder / steps["fill"].screenshot) < 0.01


async def test_a_field_moving_inside_a_frame_is_never_captured_unmasked(
    hrt: Runtime, site: HostileSite
) -> None:
    # Inside the frame the field jumps every frame, where the top document's boxes do not
    # change: the whole frame is painted over, so wherever the field is drawn it is covered.
    site.page(
        "/hop-inner",
        f"<body style='margin:0'>{FRAME_FIELD}<script>"
        "const f = document.querySelector('[name=token]'); let n = 0;"
        "const hop = () => { f.style.top = (n++ % 2 ? 0 : 40) + 'px';"
        " requestAnimationFrame(hop); };"
        "f.addEventListener('input', () => requestAnimationFrame(hop));</script></body>",
    )
    url = site.page(
        "/hop",
        "<body style='margin:0'><iframe src='/hop-inner' style='position:fixed;left:40px;"
        "top:40px;width:480px;height:160px;border:0'></iframe></body>",
    )
    steps, folder = await type_token(hrt, site, url, target=IN_FRAME)
    shot = steps["fill"].screenshot
    assert shot is not None, "a frame holding the field stood still, so its picture is kept"
    for top in (40, 80):
        assert dark_share(folder / shot, (44, top + 4, 516, top + 76)) < 0.005, top


async def test_a_secret_moved_into_another_frame_stays_painted_over(
    hrt: Runtime, site: HostileSite
) -> None:
    # The page moves the field holding the secret out of the frame it was typed in, into a
    # second frame of the same origin that held nothing to mask: every frame is painted over.
    site.page("/mover-a", f"<body style='margin:0'>{FRAME_FIELD}</body>")
    site.page("/mover-b", "<body style='margin:0'></body>")
    url = site.page(
        "/mover",
        "<body style='margin:0'><iframe id=a src='/mover-a' style='position:fixed;left:600px;"
        "top:300px;width:480px;height:80px;border:0'></iframe><iframe id=b src='/mover-b' "
        f"style='{_FIELD}'></iframe><script>"
        "document.getElementById('a').addEventListener('load', () => {"
        " const f = document.getElementById('a').contentDocument.querySelector('[name=token]');"
        " f.addEventListener('change', () => {"
        "  document.getElementById('b').contentDocument.body.appendChild(f); }); });</script>"
        "</body>",
    )
    steps, folder = await type_token(hrt, site, url, target=IN_FRAME)
    shot = steps["fill"].screenshot
    if shot is not None:
        assert masked_share(folder / shot) > 0.99


@pytest.mark.parametrize("where", ["document", "frame"])
async def test_the_vision_model_gets_the_secret_painted_over(
    hrt: Runtime, site: HostileSite, where: str
) -> None:
    # The marked screenshot a `look` sends to the vision role is masked like a step's.
    if where == "document":
        url = site.page("/look", LIGHT)
    else:
        url = frame_page(
            site, "look-framed", FRAME_FIELD.replace("<input", "<input aria-label=Token")
        )
    await hrt.profiles.create("victim", ProfileSettings())
    await hrt.vault.set("api.token", SECRET, [site.url], ["victim"], fields=["token"])

    def decide(messages: list[Message], tools: list[ToolSpec]) -> ModelResponse:
        done = sum(len(m.tool_calls) for m in messages)
        if done == 0:
            return reply(
                call("fill", ref=ref_of(page_of(messages), "textbox", "Token"), value=TYPED)
            )
        if done == 1:
            return reply(call("look", question="What is shown?"))
        return reply(call("done", result="seen"))

    vision = FunctionModel(lambda m, t: reply(text="A form."), name="eyes")
    task = parse_task(
        {
            "name": "look",
            "start_url": url,
            "goal": "Look.",
            "secrets": ["api.token"],
            "allowed_domains": ["127.0.0.1"],
        },
        "look.yaml",
    )
    result = await run_task(
        hrt, task, "victim", models={"planner": [FunctionModel(decide)], "vision": [vision]}
    )
    assert result.status == "succeeded", result.error
    [asked] = vision.requests
    [image] = [p for m in asked.messages for p in m.content if isinstance(p, ImagePart)]
    picture = Path(hrt.settings.home) / "look.jpg"
    picture.write_bytes(base64.b64decode(image.data_b64))
    # Painted over, but for the red marks drawn on top (no glyph of the field's text is left).
    assert masked_share(picture) > 0.9
    assert dark_share(picture, (44, 44, 516, 116)) < 0.005
