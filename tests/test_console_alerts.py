"""The console's Alerts page: every kind of alert shows with what can be done about it; an admin
lifts a freeze and acknowledges an announcement through the page's forms; a user sees only the
alerts of runs on profiles granted to it and cannot lift a freeze."""

from __future__ import annotations

from datetime import UTC, datetime

from runtime import Runtime
from runtime.alerts import Alert, Runbook
from tests.support.console import ROOT, csrf_of, served_console, sign_in


def alert(alert_id: str, profile: str, then: Runbook, approval: str | None = None) -> Alert:
    return Alert(
        id=alert_id,
        run_id=f"r-{alert_id}",
        task="shop",
        profile=profile,
        kind="token_burn",
        message=f"a planner step used 50000 tokens ({alert_id})",
        then=then,
        created_at=datetime.now(UTC),
        approval_id=approval,
    )


async def test_the_alerts_page_lifts_acknowledges_and_hides_what_a_user_may_not_see(
    rt: Runtime,
) -> None:
    async with served_console(rt) as console:
        for a in (
            alert("al-freeze", "shop", "freeze"),
            alert("al-note", "shop", "continue"),
            alert("al-pause", "mine", "pause", approval="ap-123"),
        ):
            await rt.store.alerts.add(a)
        async with sign_in(console.url, console.tokens["ada"]) as http:
            page = await http.get("/console/alerts")
            assert page.status_code == 200
            for text in ("(al-freeze)", "(al-note)", "(al-pause)", "Lift the freeze"):
                assert text in page.text
            assert "/console/approvals/ap-123" in page.text
            lifted = await http.post(
                "/console/alerts/al-freeze/lift", data={"csrf": csrf_of(page.text)}
            )
            assert lifted.status_code == 303
            seen = await http.post("/console/alerts/al-note/ack", data={"csrf": csrf_of(page.text)})
            assert seen.status_code == 303
        states = {a.id: a.state for a in await rt.services.alerts.list(ROOT)}
        assert states == {"al-freeze": "lifted", "al-note": "acknowledged", "al-pause": "open"}
        await rt.store.alerts.add(alert("al-freeze-2", "mine", "freeze"))
        async with sign_in(console.url, console.tokens["bob"]) as http:
            page = await http.get("/console/alerts")
            assert "(al-pause)" in page.text and "(al-freeze-2)" in page.text
            assert "(al-note)" not in page.text  # a run on a profile bob may not see
            assert "Lift the freeze" not in page.text
            refused = await http.post(
                "/console/alerts/al-freeze-2/lift", data={"csrf": csrf_of(page.text)}
            )
            assert refused.status_code == 403
        [still] = [a for a in await rt.services.alerts.list(ROOT) if a.id == "al-freeze-2"]
        assert still.state == "open"
