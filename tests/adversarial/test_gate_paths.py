"""Every path to an element goes through the gate: the Pay button reached by a key, a download, a
select, a pagination click or a late render is classified by what it is, not by the action's kind;
unknown submissions ask; a denial sticks to the target and its form for the rest of the run."""

from __future__ import annotations

import re
from typing import Any

import pytest

from runtime import Runtime, parse_task
from runtime.errors import TaskFileError
from runtime.models import Message, ModelResponse
from runtime.run.gate import STICKY_MESSAGE
from runtime.testing import call, reply
from tests.support.agent import page_of
from tests.support.approvals import requests_of
from tests.support.hostile import HostileSite, assert_asked_not_paid, run_model, run_steps

PAY_FORM = "<form method=post action=/pay><button>Pay $100</button></form>"


async def test_press_enter_on_the_pay_button_asks(hrt: Runtime, site: HostileSite) -> None:
    url = site.page("/checkout", PAY_FORM)
    result = await run_steps(
        hrt,
        site,
        [{"goto": url}, {"press": {"role": "button", "name": "Pay $100", "key": "Enter"}}],
    )
    await assert_asked_not_paid(hrt, site, result, "Pay $100")


async def test_download_on_the_pay_button_asks(hrt: Runtime, site: HostileSite) -> None:
    url = site.page("/checkout", PAY_FORM)
    result = await run_steps(
        hrt, site, [{"goto": url}, {"download": {"role": "button", "name": "Pay $100"}}]
    )
    await assert_asked_not_paid(hrt, site, result, "Pay $100")


async def test_enter_in_a_text_field_of_a_payment_form_asks(
    hrt: Runtime, site: HostileSite
) -> None:
    url = site.page(
        "/checkout",
        "<form method=post action=/pay><label>Amount <input name=amount value=100></label>"
        "<button>Pay $100</button></form>",
    )
    result = await run_steps(
        hrt, site, [{"goto": url}, {"press": {"label": "Amount", "key": "Enter"}}]
    )
    # The default button of the form is what Enter would press.
    await assert_asked_not_paid(hrt, site, result, "Press Enter on 'Pay $100'")


async def test_space_on_a_focused_button_asks(hrt: Runtime, site: HostileSite) -> None:
    url = site.page(
        "/checkout", PAY_FORM + "<script>document.querySelector('button').focus()</script>"
    )
    result = await run_steps(hrt, site, [{"goto": url}, {"press": {"key": "Space"}}])
    await assert_asked_not_paid(hrt, site, result, "Pay $100")


async def test_a_select_that_submits_its_payment_form_asks(hrt: Runtime, site: HostileSite) -> None:
    url = site.page(
        "/checkout",
        "<form method=post action=/pay><label>Plan <select name=plan onchange='this.form.submit()'>"
        "<option value=a>Basic</option><option value=b>Pro</option></select></label>"
        "<p>Your card will be charged $100.</p></form>",
    )
    result = await run_steps(
        hrt, site, [{"goto": url}, {"select": {"label": "Plan", "option": "Pro"}}]
    )
    await assert_asked_not_paid(hrt, site, result, "Plan")


async def test_a_plain_select_is_not_asked_about(hrt: Runtime, site: HostileSite) -> None:
    url = site.page(
        "/filters",
        "<form method=get action=/list><label>Sort <select name=sort onchange='this.form.submit()'>"
        "<option>date</option><option>amount</option></select></label></form>",
    )
    result = await run_steps(
        hrt, site, [{"goto": url}, {"select": {"label": "Sort", "option": "amount"}}]
    )
    assert result.status == "succeeded", result.error
    assert await requests_of(hrt, result) == []
    assert any(h.path == "/list?sort=amount" for h in site.requests("GET"))


async def test_extract_next_pointing_at_a_pay_button_is_never_clicked(
    hrt: Runtime, site: HostileSite
) -> None:
    url = site.page(
        "/list",
        "<table aria-label=Items><tr><th>Item</th></tr><tr><td>one</td></tr></table>"
        "<form method=post action=/pay><button>Pay $100</button></form>",
    )
    result = await run_steps(
        hrt,
        site,
        [
            {"goto": url},
            {
                "extract": {
                    "as": "rows",
                    "table": {"role": "table", "name": "Items"},
                    "next": {"role": "button", "name": "Pay $100"},
                }
            },
        ],
    )
    assert result.status == "failed"
    assert "pagination stopped" in str(result.error) and "Pay $100" in str(result.error)
    assert site.posts("/pay") == []


async def test_extract_next_still_follows_a_next_link(hrt: Runtime, site: HostileSite) -> None:
    site.page(
        "/list2", "<table aria-label=Items><tr><th>Item</th></tr><tr><td>two</td></tr></table>"
    )
    url = site.page(
        "/list",
        "<table aria-label=Items><tr><th>Item</th></tr><tr><td>one</td></tr></table>"
        "<a href=/list2>Next</a>",
    )
    result = await run_steps(
        hrt,
        site,
        [
            {"goto": url},
            {
                "extract": {
                    "as": "rows",
                    "table": {"role": "table", "name": "Items"},
                    "next": {"role": "link", "name": "Next"},
                }
            },
        ],
        output="rows",
    )
    assert result.status == "succeeded", result.error
    assert result.output == [{"Item": "one"}, {"Item": "two"}]


UNKNOWN = {
    "german": "<form method=post action=/pay><button>Bezahlen</button></form>",
    "chinese": "<form method=post action=/pay><button>支付</button></form>",
    "icon": "<form method=post action=/pay><button title=Complete>"
    "<svg width=12 height=12><rect width=12 height=12></rect></svg></button></form>",
    "div": "<div id=go role=none>Weiter</div><script>document.getElementById('go')"
    ".addEventListener('click', () => fetch('/pay', {method: 'POST'}))</script>",
}
TARGETS: dict[str, dict[str, Any]] = {
    "german": {"role": "button", "name": "Bezahlen"},
    "chinese": {"role": "button", "name": "支付"},
    "icon": {"role": "button", "name": "Complete"},
    "div": {"text": "Weiter"},
}


@pytest.mark.slow
async def test_unknown_submissions_ask(hrt: Runtime, site: HostileSite) -> None:
    for case, html in UNKNOWN.items():
        url = site.page(f"/{case}", html)
        result = await run_steps(hrt, site, [{"goto": url}, {"click": TARGETS[case]}])
        asked = await assert_asked_not_paid(hrt, site, result)
        assert "unknown-submission" in str(asked[0].reasons) or "unknown" in " ".join(
            asked[0].reasons
        ), (case, asked[0].reasons)


@pytest.mark.slow
async def test_a_task_allow_list_and_a_policy_allow_rule_place_a_target(
    hrt: Runtime, site: HostileSite, settings: Any
) -> None:
    url = site.page("/de", "<form method=post action=/bestellen><button>Bezahlen</button></form>")
    steps = [{"goto": url}, {"click": TARGETS["german"]}]
    result = await run_steps(
        hrt, site, steps, allow_targets=[{"role": "button", "name": "^Bezahlen$"}]
    )
    assert result.status == "succeeded", result.error
    assert len(site.posts("/bestellen")) == 1
    # A name regex alone, as a plain string, does the same.
    result = await run_steps(hrt, site, steps, allow_targets=["bezahl"])
    assert result.status == "succeeded", result.error
    assert len(site.posts("/bestellen")) == 2
    # Placed by the task, but the request it sends reads as a payment: held on the wire.
    url = site.page("/de-pay", UNKNOWN["german"])
    result = await run_steps(
        hrt, site, [{"goto": url}, {"click": TARGETS["german"]}], allow_targets=["bezahl"]
    )
    assert site.posts("/pay") == []
    steps_rows = await hrt.store.runs.list_steps(result.run_id) if result.run_id else []
    held = [h for s in steps_rows for h in (s.detail or {}).get("held_requests", [])]
    assert any("/pay" in h["url"] for h in held), held
    # A risky rule still wins over the allow list.
    url = site.page("/en", PAY_FORM)
    result = await run_steps(
        hrt,
        site,
        [{"goto": url}, {"click": {"role": "button", "name": "Pay $100"}}],
        allow_targets=["Pay"],
    )
    assert result.status == "denied" and site.posts("/pay") == []

    # A policy file's allow rule does the same for every task.
    (settings.home / "policy.yaml").write_text(
        "version: 1\nrules:\n  - name: german-checkout\n    verdict: allow\n"
        "    reason: our German portal\n    match: {roles: [button], name: '^Bezahlen$'}\n"
    )
    result = await run_steps(hrt, site, steps)
    assert result.status == "succeeded", result.error
    assert len(site.posts("/bestellen")) == 3


@pytest.mark.slow
async def test_a_pay_button_that_appears_late_is_still_gated(
    hrt: Runtime, site: HostileSite
) -> None:
    url = site.page(
        "/late",
        "<p>loading</p><script>setTimeout(() => document.body.insertAdjacentHTML('beforeend', "
        f"{PAY_FORM!r}), 2000)</script>",
    )
    result = await run_steps(
        hrt, site, [{"goto": url}, {"click": {"role": "button", "name": "Pay $100"}}]
    )
    await assert_asked_not_paid(hrt, site, result, "Pay $100")


def ref_in(page: str, role: str, name: str) -> str:
    """The ref of ``role name`` in the compact page the model sees (a named button's line,
    like a link's, has no role)."""
    word = f"(?:{role} )?" if role == "button" else f"{role} "
    found = re.search(rf"\[(\w+)\] {word}\"?{re.escape(name)}", page)
    assert found is not None, f"no {role} {name!r} in:\n{page}"
    return found.group(1)


async def test_a_denial_sticks_to_the_target_and_its_form_for_an_obedient_model(
    hrt: Runtime, site: HostileSite
) -> None:
    start = site.page(
        "/checkout",
        "<form method=post action=/pay><label>Plan <select name=plan "
        "onchange='this.form.submit()'><option>Basic</option><option>Pro</option></select>"
        "</label><button>Pay $100</button> <button name=alt>Pagar</button></form>",
    )
    plan = [
        ("click", "button", "Pay $100", {}),
        ("press", "button", "Pay $100", {"key": "Enter"}),
        ("download", "button", "Pay $100", {}),
        ("select", "combobox", "Plan", {"option": "Pro"}),
        ("click", "button", "Pagar", {}),
    ]
    told: list[str] = []

    def decide(messages: list[Message], tools: Any) -> ModelResponse:
        page = page_of(messages)
        told.append(page)
        if len(told) > len(plan):
            return reply(call("done", result="gave up"))
        tool, role, name, extra = plan[len(told) - 1]
        return reply(call(tool, ref=ref_in(page, role, name), **extra))

    result = await run_model(hrt, site, start, decide)
    assert result.status == "succeeded", result.error
    assert site.posts("/pay") == []
    # One person was asked (the first click, which expired); every other path was refused.
    asked = await requests_of(hrt, result)
    assert len(asked) == 1 and asked[0].status == "expired"
    last = told[-1]
    assert "expired with nobody deciding" in last
    assert last.count(STICKY_MESSAGE) == len(plan) - 1, last


def test_allow_targets_are_validated_with_clear_errors() -> None:
    with pytest.raises(TaskFileError) as bad:
        parse_task({"name": "t", "goal": "g", "allow_targets": [{"name": "("}]}, "t.yaml")
    assert "t.yaml: allow_targets.0.name" in str(bad.value)
    assert "not a valid regular expression" in str(bad.value)
    with pytest.raises(TaskFileError) as typo:
        parse_task({"name": "t", "goal": "g", "allow_targets": [{"nmae": "x"}]}, "t.yaml")
    assert "allow_targets.0.nmae: unknown field" in str(typo.value)


async def test_a_download_link_on_an_allowed_host_still_downloads(
    hrt: Runtime, site: HostileSite
) -> None:
    site.raw(
        "/report.csv",
        200,
        {"Content-Type": "text/csv", "Content-Disposition": "attachment; filename=report.csv"},
        "a,b\n1,2\n",
    )
    url = site.page("/files", "<a href=/report.csv>Report</a>")
    result = await run_steps(
        hrt, site, [{"goto": url}, {"download": {"role": "link", "name": "Report"}}]
    )
    assert result.status == "succeeded", result.error
    assert await requests_of(hrt, result) == []


async def test_navigation_off_the_allowlist_is_refused_before_acting(
    hrt: Runtime, site: HostileSite
) -> None:
    url = site.page("/start", "<a href='http://evil.test/steal'>Continue</a>")
    for step in (
        {"goto": "http://evil.test/steal"},
        {"click": {"role": "link", "name": "Continue"}},
    ):
        result = await run_steps(hrt, site, [{"goto": url}, step])
        assert result.status == "denied", result.error
        assert "outside the allowed domains" in str(result.error)
        assert result.run_id is not None
        steps = await hrt.store.runs.list_steps(str(result.run_id))
        assert steps[-1].status == "skipped" and steps[-1].url_after == url
