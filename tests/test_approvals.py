"""Approval gates with the real parts: the demo portal's Pay and Delete, scripted and model runs,
decisions from other processes (the ``corral`` CLI), expiry, page changes, crashes, races, roles
and the signed webhook."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.portal import PortalServer
from examples.portal.data import Invoice, invoices_for
from examples.portal.store import Store as PortalStore
from profiles import BrowserPool
from runtime import Runtime, Settings, parse_task, run_task
from runtime.approvals import ApprovalError, ApprovalRequest
from runtime.auth import LOCAL_ACTOR
from runtime.testing import FunctionModel, call, reply
from tests.conftest import CORRAL, make_demo_profiles, next_request
from tests.test_agent import goal_task, login_then, ref_of

LOGIN = [
    {"fill": {"label": "Username", "value": "{{var:user}}"}},
    {"fill": {"label": "Password", "value": "{{secret:{{var:user}}.password}}"}},
    {"click": {"role": "button", "name": "Sign in"}},
]


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[PortalServer]:
    """A portal of this test's own: payments here do not change the shared portal."""
    with PortalServer(port=0, db_path=tmp_path / "portal.db") as server:
        yield server


@pytest.fixture
def slow_shop(tmp_path: Path) -> Iterator[PortalServer]:
    """A portal that records a payment, then takes 4 s to answer."""
    with PortalServer(port=0, db_path=tmp_path / "portal.db", pay_delay_s=4) as server:
        yield server


def paid(server: PortalServer, user: str = "alice") -> frozenset[str]:
    return PortalStore(server.db_path).paid_numbers(user)


def first_unpaid(user: str = "alice") -> Invoice:
    return next(i for i in invoices_for(user) if not i.paid)


def usd(inv: Invoice) -> str:
    return f"${inv.amount_cents / 100:,.2f}"


def pay_task(portal: str, inv: Invoice) -> dict[str, Any]:
    return {
        "name": "pay-invoice",
        "start_url": f"{portal}/login",
        "secrets": ["{{var:user}}.password"],
        "steps": [
            *LOGIN,
            {"goto": f"/invoices/{inv.number}"},
            {"click": {"role": "button", "name": f"Pay {usd(inv)}"}},
            {"click": {"role": "button", "name": "Confirm payment"}},
            {"extract": {"as": "status", "text": {"test_id": "invoice-status"}}},
        ],
        "output": "status",
    }


def corral(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI in another process (the approver's)."""
    return subprocess.run(
        [*CORRAL, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


async def other_process(*args: str, env: dict[str, str] | None = None) -> Any:
    return await asyncio.to_thread(corral, *args, env=env)


async def next_other(rt: Runtime, seen: ApprovalRequest) -> ApprovalRequest:
    """The next pending request that is not ``seen``."""
    async with asyncio.timeout(60):
        while True:
            pending = [r for r in await rt.approvals.list_requests() if r.id != seen.id]
            if pending:
                return pending[-1]
            await asyncio.sleep(0.05)


async def test_scripted_payment_waits_and_a_second_process_approves_each_gated_step(
    rt: Runtime, shop: PortalServer
) -> None:
    await make_demo_profiles(rt, shop.url, "alice")
    inv = first_unpaid()
    task = parse_task(pay_task(shop.url, inv), "pay.yaml")
    async with asyncio.TaskGroup() as tg:
        run = tg.create_task(run_task(rt, task, "alice"))
        pay = await next_request(rt)
        assert pay.summary == f"Click 'Pay {usd(inv)}' on /invoices/{inv.number}"
        assert "looks like a payment" in pay.reasons
        assert pay.action == {
            "kind": "click",
            "role": "button",
            "name": f"Pay {usd(inv)}",
            "exact": False,
        }
        record = await rt.store.get_run(pay.run_id)
        assert record is not None and record.status == "waiting_approval"
        assert pay.screenshot and Path(pay.screenshot).read_bytes()[:2] == b"\xff\xd8"
        assert not paid(shop)
        listed = await other_process("approvals", "list")
        assert pay.id in listed.stdout and "Pay" in listed.stdout, listed.stdout
        done = await other_process("approvals", "approve", pay.id, "--comment", "due today")
        assert done.returncode == 0, done.stderr
        assert f"{pay.id} approved by local" in done.stdout
        confirm = await next_other(rt, pay)
        assert confirm.summary == f"Click 'Confirm payment' on /invoices/{inv.number}/pay"
        assert not paid(shop)  # the confirmation page is not the payment
        done = await other_process("approvals", "approve", confirm.id)
        assert done.returncode == 0, done.stderr
    result = run.result()
    assert result.status == "succeeded", result.error
    assert result.output == "Paid"
    assert paid(shop) == {inv.number}
    both = await rt.approvals.list_requests(None, pay.run_id)
    assert {r.status for r in both} == {"executed"} and {r.outcome for r in both} == {"ok"}
    audit = await rt.auth.list_audit(action="approval.approve")
    assert sorted(a.subject for a in audit) == sorted([pay.id, confirm.id])
    assert {a.actor for a in audit} == {"local"}
    steps = await rt.store.list_steps(pay.run_id)
    gated = [s for s in steps if s.detail and "approval" in s.detail]
    assert [s.detail["approval"]["status"] for s in gated if s.detail] == ["approved"] * 2
    assert all(s.status == "ok" for s in gated)


async def test_a_denial_stops_a_scripted_run_with_exit_code_3(
    rt: Runtime, shop: PortalServer
) -> None:
    await make_demo_profiles(rt, shop.url, "alice")
    inv = first_unpaid()
    async with asyncio.TaskGroup() as tg:
        run = tg.create_task(run_task(rt, parse_task(pay_task(shop.url, inv), "pay.yaml"), "alice"))
        request = await next_request(rt)
        await rt.approvals.decide(LOCAL_ACTOR, request.id, False, "wrong invoice")
    result = run.result()
    assert (result.status, result.exit_code) == ("denied", 3)
    assert result.error and "denied by a person (local): wrong invoice" in result.error
    assert not paid(shop)
    steps = await rt.store.list_steps(request.run_id)
    assert steps[-1].status == "skipped" and steps[-1].detail
    assert steps[-1].detail["approval"]["status"] == "denied"
    # A decided request cannot be decided again, in this process or another.
    with pytest.raises(ApprovalError, match="already denied by local"):
        await rt.approvals.decide(LOCAL_ACTOR, request.id, True)
    again = await other_process("approvals", "approve", request.id)
    assert again.returncode == 2 and "already denied" in again.stderr


async def test_expiry_means_deny(settings: Settings, pool: BrowserPool, shop: PortalServer) -> None:
    quick = settings.model_copy(update={"approval_ttl_s": 1.0})
    async with Runtime.open(quick, pool=pool) as rt:
        await make_demo_profiles(rt, shop.url, "alice")
        inv = first_unpaid()
        result = await run_task(rt, parse_task(pay_task(shop.url, inv), "pay.yaml"), "alice")
        assert (result.status, result.exit_code) == ("denied", 3)
        assert result.error and "expired with nobody deciding" in result.error
        [request] = await rt.approvals.list_requests(None)
        assert request.status == "expired" and request.decided_by == "expiry"
    late = await other_process("approvals", "approve", request.id)
    assert late.returncode == 2 and "already expired" in late.stderr
    assert not paid(shop)


async def test_an_approval_is_bound_to_the_page_it_was_asked_on(
    rt: Runtime, shop: PortalServer
) -> None:
    await make_demo_profiles(rt, shop.url, "alice")
    task = parse_task(
        {
            "name": "upgrade",
            "start_url": f"{shop.url}/login",
            "secrets": ["{{var:user}}.password"],
            "steps": [
                *LOGIN,
                {"goto": "/upgrade?change_ms=1500"},
                {"click": {"role": "button", "name": "Subscribe for"}},
                {"extract": {"as": "status", "text": {"role": "status"}}},
            ],
            "output": "status",
        },
        "upgrade.yaml",
    )
    async with asyncio.TaskGroup() as tg:
        run = tg.create_task(run_task(rt, task, "alice"))
        first = await next_request(rt)
        assert "$10.00" in first.summary
        # The price changes 1.5 s after the page loaded, while the person is deciding.
        await asyncio.sleep(2.5)
        await rt.approvals.decide(LOCAL_ACTOR, first.id, True, "ok at $10")
        second = await next_other(rt, first)
        assert "$30.00" in second.summary
        await rt.approvals.decide(LOCAL_ACTOR, second.id, True, "fine, $30")
    result = run.result()
    assert result.status == "succeeded", result.error
    assert result.output == "Subscribed to Pro at $30.00/month"
    first = await rt.approvals.get(first.id)
    assert first.status == "superseded" and first.executed_at is None


async def test_a_model_run_asks_and_an_approved_payment_happens_once(
    rt: Runtime, shop: PortalServer
) -> None:
    await make_demo_profiles(rt, shop.url, "alice")
    inv = first_unpaid()
    clicked: list[str] = []

    def pay(page: str) -> Any:
        for name in (f"Pay {usd(inv)}", "Confirm payment"):
            if f"button {name}" in page and name not in clicked:
                clicked.append(name)
                return reply(call("click", ref=ref_of(page, "button", name)))
        return reply(call("done", result={"unpaid": 0}))

    planner = FunctionModel(login_then(pay))
    task = goal_task(shop.url, start_url=f"{shop.url}/invoices/{inv.number}")

    async def approve_twice() -> list[str]:
        first = await next_request(rt)
        await rt.approvals.decide(LOCAL_ACTOR, first.id, True)
        second = await next_other(rt, first)
        await rt.approvals.decide(LOCAL_ACTOR, second.id, True)
        return [first.summary, second.summary]

    async with asyncio.TaskGroup() as tg:
        asked = tg.create_task(approve_twice())
        result = await run_task(rt, task, "alice", models={"planner": [planner]})
    assert result.status == "succeeded", result.error
    assert asked.result() == [
        f"Click 'Pay {usd(inv)}' on /invoices/{inv.number}",
        f"Click 'Confirm payment' on /invoices/{inv.number}/pay",
    ]
    assert paid(shop) == {inv.number}
    requests = await rt.approvals.list_requests(None, result.run_id)
    assert [r.status for r in requests] == ["executed", "executed"]
