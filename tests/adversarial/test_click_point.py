"""Where a click lands: the gate reads the node at the click's point through the browser, and a
target that is not plainly clickable right now (covered, disabled, moving, off screen) waits as
Playwright's own click would. A page that lies to the quick path (its own ``elementFromPoint``,
``contains``, ``getAnimations``) gains nothing: what is at the point is what is classified and
clicked."""

from __future__ import annotations

from runtime import Runtime
from tests.support.hostile import HostileSite, assert_asked_not_paid, run_steps

# A payment button stretched invisibly over the whole page, above everything.
_OVERLAY = (
    "<form method=post action=/pay style='position:fixed;inset:0;margin:0;z-index:9'>"
    "<button style='width:100%;height:100%;opacity:0'>Pay $100</button></form>"
)
_LIES = """<script>
Document.prototype.elementFromPoint = function () {
  return document.querySelector('#go');  // "the target is on top"
};
Node.prototype.contains = () => true;
Element.prototype.getAnimations = () => [];
</script>"""
_CONTINUE = "<button id=go onclick=\"document.title='went'\">Continue</button>"


async def click_next(hrt: Runtime, site: HostileSite, url: str) -> None:
    """Load ``url`` and click its "Next" button: the run succeeds and the click led on."""
    result = await run_steps(
        hrt, site, [{"goto": url}, {"click": {"role": "button", "name": "Next"}}]
    )
    assert result.status == "succeeded", result.error
    assert site.requests("GET", "/clicked"), "the click did not happen where the button rests"


async def test_a_covered_target_waits_and_the_cover_is_never_clicked(
    hrt: Runtime, site: HostileSite
) -> None:
    url = site.page("/cover", _CONTINUE + _OVERLAY)
    result = await run_steps(
        hrt,
        site,
        [{"goto": url}, {"click": {"role": "button", "name": "Continue"}}],
        step_timeout_s=1,
    )
    assert result.status == "failed"
    assert "did not become ready" in (result.error or ""), result.error
    assert site.posts("/pay") == []


async def test_a_page_lying_about_what_is_on_top_gets_its_cover_classified(
    hrt: Runtime, site: HostileSite
) -> None:
    # The page says "Continue" is on top; the browser's hit test says the Pay button is, so the
    # Pay button is what the gate classifies (a payment: a person is asked) and what would be
    # clicked. Nobody approves, so nothing is paid.
    url = site.page("/lie", _CONTINUE + _OVERLAY + _LIES)
    result = await run_steps(
        hrt, site, [{"goto": url}, {"click": {"role": "button", "name": "Continue"}}]
    )
    await assert_asked_not_paid(hrt, site, result, "Pay $100")


async def test_a_page_lying_about_where_its_target_is_gains_nothing(
    hrt: Runtime, site: HostileSite
) -> None:
    # The page says every element sits where its Pay button is (and that the target is on top
    # there): were its word taken, the click meant for Next would land on Pay. The browser's box
    # is what the click aims at, so Next is clicked where it is, and Pay is never touched.
    pay = (
        "<form method=post action=/pay><button id=pay style='position:fixed;left:0;top:0;"
        "width:200px;height:60px'>Pay $100</button></form>"
    )
    lies = (
        "<script>const real = Element.prototype.getBoundingClientRect;"
        "Element.prototype.getBoundingClientRect = function () {"
        "  return real.call(document.getElementById('pay')); };"
        "Document.prototype.elementFromPoint = function () {"
        "  return document.getElementById('b'); };"
        "</script>"
    )
    url = site.page(
        "/where",
        "<div style='height:300px'></div>"
        "<button id=b onclick=\"location.href='/clicked'\">Next</button>" + pay + lies,
    )
    await click_next(hrt, site, url)
    assert site.posts("/pay") == []


async def test_a_disabled_target_is_clicked_once_it_is_enabled(
    hrt: Runtime, site: HostileSite
) -> None:
    url = site.page(
        "/later",
        "<button id=b disabled onclick=\"location.href='/clicked'\">Next</button>"
        "<script>setTimeout(() => { document.getElementById('b').disabled = false; }, 400);"
        "</script>",
    )
    await click_next(hrt, site, url)  # not while it was disabled: that click does nothing


async def test_a_moving_target_is_clicked_where_it_comes_to_rest(
    hrt: Runtime, site: HostileSite
) -> None:
    url = site.page(
        "/moving",
        "<style>@keyframes slide { from { transform: translateX(600px); } to { transform: none; } }"
        "#b { animation: slide 0.5s ease-out; }</style>"
        "<button id=b onclick=\"location.href='/clicked'\">Next</button>",
    )
    await click_next(hrt, site, url)


async def test_a_target_below_the_fold_is_scrolled_to_and_clicked(
    hrt: Runtime, site: HostileSite
) -> None:
    url = site.page(
        "/long",
        "<div style='height:3000px'>tall</div>"
        "<button onclick=\"location.href='/clicked'\">Next</button>",
    )
    await click_next(hrt, site, url)


async def test_a_button_inside_a_shadow_root_is_clicked_and_classified(
    hrt: Runtime, site: HostileSite
) -> None:
    url = site.page(
        "/shadow",
        "<pay-widget></pay-widget><script>customElements.define('pay-widget', class extends "
        "HTMLElement { connectedCallback() { this.attachShadow({mode: 'open'}).innerHTML = "
        '"<form method=post action=/pay><button>Pay $100</button></form>"; } });</script>',
    )
    result = await run_steps(
        hrt, site, [{"goto": url}, {"click": {"role": "button", "name": "Pay $100"}}]
    )
    await assert_asked_not_paid(hrt, site, result, "Pay $100")
