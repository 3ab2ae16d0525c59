"""Step screenshots paint over what a secret was typed into, wherever the field is: in the
document, or inside a web component's open shadow root (where a lookup of the document alone
finds nothing and would let the screenshot through unmasked)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from profiles import ProfileSettings
from runtime import Runtime
from runtime.records import StepRecord
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


async def type_token(
    hrt: Runtime, site: HostileSite, url: str, value: str = TYPED
) -> tuple[dict[str, StepRecord], Path]:
    """Load ``url`` and type ``value`` into its Token field (by default the secret, bound to
    fields named "token": a text field, where a password would go only into a password
    input); the run's steps by kind, and its folder."""
    secrets = []
    if value == TYPED:
        await hrt.profiles.create("victim", ProfileSettings())
        await hrt.vault.set("api.token", SECRET, [site.url], ["victim"], fields=["token"])
        secrets = ["api.token"]
    result = await run_steps(
        hrt,
        site,
        [{"goto": url}, {"fill": {"label": "Token", "value": value}}],
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
