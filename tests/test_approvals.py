"""Approval gates with the real parts: the demo portal's Pay and Delete, scripted and model runs,
decisions from other processes (the ``corral`` CLI), expiry, page changes, crashes, races, roles
and the signed webhook."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from PIL import Image

from profiles import BrowserPool, ProfileSettings
from runtime import Runtime, Settings, parse_task, run_task
from runtime.approvals import ApprovalError, ApprovalRequest
from runtime.auth import LOCAL_ACTOR, PermissionDeniedError
from runtime.demo.portal import USERS, PortalServer
from runtime.demo.portal.store import Store as PortalStore
from runtime.testing import FunctionModel, call, reply
from runtime.webhook import verify, verify_headers
from tests.support.agent import goal_task, login_then, page_of, ref_of
from tests.support.approvals import Received, next_request, webhook_receiver
from tests.support.cli import CORRAL, corral_process
from tests.support.demo import first_unpaid, make_demo_profiles, pay_task, signed_in, usd
from tests.support.wait import until

pytestmark = pytest.mark.both_backends


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


async def other_process(*args: str, env: dict[str, str] | None = None) -> Any:
    return await asyncio.to_thread(corral_process, *args, env=env)


@pytest.mark.slow
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
        record = await rt.store.runs.get_run(pay.run_id)
        assert record is not None and record.status == "waiting_approval"
        assert pay.screenshot and Path(pay.screenshot).read_bytes()[:2] == b"\xff\xd8"
        assert not paid(shop)
        listed = await other_process("approvals", "list")
        assert pay.id in listed.stdout and "Pay" in listed.stdout, listed.stdout
        done = await other_process("approvals", "approve", pay.id, "--comment", "due today")
        assert done.returncode == 0, done.stderr
        assert f"{pay.id} approved by local" in done.stdout
        confirm = await next_request(rt, besides=pay)
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
    audit = await rt.services.audit.list(LOCAL_ACTOR, action="approval.approve")
    assert sorted(a.subject for a in audit) == sorted([pay.id, confirm.id])
    assert {a.actor for a in audit} == {"local"}
    steps = await rt.store.runs.list_steps(pay.run_id)
    gated = [s for s in steps if s.detail and "approval" in s.detail]
    assert [s.detail["approval"]["status"] for s in gated if s.detail] == ["approved"] * 2
    assert all(s.status == "ok" for s in gated)


@pytest.mark.slow
async def test_a_denial_stops_a_scripted_run_with_exit_code_3(
    rt: Runtime, shop: PortalServer
) -> None:
    await make_demo_profiles(rt, shop.url, "alice")
    inv = first_unpaid()
    async with asyncio.TaskGroup() as tg:
        run = tg.create_task(run_task(rt, parse_task(pay_task(shop.url, inv), "pay.yaml"), "alice"))
        request = await next_request(rt)
        await rt.services.approvals.decide(LOCAL_ACTOR, request.id, False, "wrong invoice")
    result = run.result()
    assert (result.status, result.exit_code) == ("denied", 3)
    assert result.error and "denied by a person (local): wrong invoice" in result.error
    assert not paid(shop)
    steps = await rt.store.runs.list_steps(request.run_id)
    assert steps[-1].status == "skipped" and steps[-1].detail
    assert steps[-1].detail["approval"]["status"] == "denied"
    # A decided request cannot be decided again, in this process or another.
    with pytest.raises(ApprovalError, match="already denied by local"):
        await rt.services.approvals.decide(LOCAL_ACTOR, request.id, True)
    again = await other_process("approvals", "approve", request.id)
    assert again.returncode == 2 and "already denied" in again.stderr


@pytest.mark.slow
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


async def shown_on(pool: BrowserPool, path: str, selector: str) -> str | None:
    """The text of ``selector`` on the open page at ``path`` (read-only), if there is one."""
    browser = await pool.browser()
    for context in browser.contexts:
        for page in context.pages:
            if path in page.url:
                return await page.text_content(selector)
    return None


@pytest.mark.slow
async def test_an_approval_is_bound_to_the_page_it_was_asked_on(
    rt: Runtime, shop: PortalServer, pool: BrowserPool
) -> None:
    await make_demo_profiles(rt, shop.url, "alice")
    task = parse_task(
        signed_in(
            "upgrade",
            shop.url,
            {"goto": "/upgrade?change_ms=6000"},
            {"click": {"role": "button", "name": "Subscribe for"}},
            {"extract": {"as": "status", "text": {"role": "status"}}},
            output="status",
        ),
        "upgrade.yaml",
    )
    async with asyncio.TaskGroup() as tg:
        run = tg.create_task(run_task(rt, task, "alice"))
        first = await next_request(rt)
        assert "$10.00" in first.summary
        # The price changes 6 s after the page loaded, while the person is deciding.

        async def changed() -> bool:
            return "$30.00" in (await shown_on(pool, "/upgrade", "#subscribe") or "")

        await until(changed, 60, "the price on the page to change")
        await rt.services.approvals.decide(LOCAL_ACTOR, first.id, True, "ok at $10")
        second = await next_request(rt, besides=first)
        assert "$30.00" in second.summary
        await rt.services.approvals.decide(LOCAL_ACTOR, second.id, True, "fine, $30")
    result = run.result()
    assert result.status == "succeeded", result.error
    assert result.output == "Subscribed to Pro at $30.00/month"
    first = await rt.approvals.get(first.id)
    assert first.status == "superseded" and first.executed_at is None


@pytest.mark.slow
async def test_a_model_run_asks_and_an_approved_payment_happens_once(
    rt: Runtime, shop: PortalServer
) -> None:
    await make_demo_profiles(rt, shop.url, "alice")
    inv = first_unpaid()
    clicked: list[str] = []

    def pay(page: str) -> Any:
        for name in (f"Pay {usd(inv)}", "Confirm payment"):
            if f"] {name}" in page and name not in clicked:
                clicked.append(name)
                return reply(call("click", ref=ref_of(page, "button", name)))
        return reply(call("done", result={"unpaid": 0}))

    planner = FunctionModel(login_then(pay))
    task = goal_task(shop.url, start_url=f"{shop.url}/invoices/{inv.number}")

    async def approve_twice() -> list[str]:
        first = await next_request(rt)
        await rt.services.approvals.decide(LOCAL_ACTOR, first.id, True)
        second = await next_request(rt, besides=first)
        await rt.services.approvals.decide(LOCAL_ACTOR, second.id, True)
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


def start_run(task_file: Path, profile: str = "alice") -> subprocess.Popen[bytes]:
    """``corral run`` in its own process (the runner that will be killed)."""
    return subprocess.Popen(
        [*CORRAL, "run", str(task_file), "--profile", profile],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def task_file(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
async def test_killed_while_waiting_the_request_survives_then_closes_and_nothing_is_done(
    rt: Runtime, shop: PortalServer, tmp_path: Path
) -> None:
    await make_demo_profiles(rt, shop.url, "alice")
    inv = first_unpaid()
    proc = start_run(task_file(tmp_path, pay_task(shop.url, inv)))
    try:
        request = await next_request(rt, timeout_s=90)
    finally:
        kill(proc)
    # The request survives the crash ...
    assert (await rt.approvals.get(request.id)).status == "pending"
    # ... and the next process to open the store closes it with its run.
    late = await other_process("approvals", "approve", request.id)
    assert late.returncode == 2 and "already cancelled" in late.stderr, late.stderr
    closed = await rt.approvals.get(request.id)
    assert closed.status == "cancelled" and closed.outcome
    assert "interrupted before acting" in closed.outcome
    run = await rt.store.runs.get_run(request.run_id)
    assert run is not None and run.status == "interrupted"
    assert not paid(shop)


@pytest.mark.slow
async def test_an_approved_action_runs_once_even_when_the_runner_dies_while_acting(
    rt: Runtime, slow_shop: PortalServer, tmp_path: Path
) -> None:
    await make_demo_profiles(rt, slow_shop.url, "alice")
    inv = first_unpaid()
    proc = start_run(task_file(tmp_path, pay_task(slow_shop.url, inv)))
    try:
        pay = await next_request(rt, timeout_s=90)
        await rt.services.approvals.decide(LOCAL_ACTOR, pay.id, True)
        confirm = await next_request(rt, besides=pay)
        await rt.services.approvals.decide(LOCAL_ACTOR, confirm.id, True)

        async def claimed_and_paid() -> bool:
            claimed = (await rt.approvals.get(confirm.id)).status == "executing"
            return claimed and bool(paid(slow_shop))

        # The runner claimed the action and the portal recorded the payment; its answer is
        # 4 s away. Kill the runner now, between doing the action and confirming it.
        await until(claimed_and_paid, 60, "the action to be claimed and paid")
    finally:
        kill(proc)
    shown = await other_process("approvals", "show", confirm.id)
    assert shown.returncode == 0, shown.stderr
    assert "unconfirmed" in shown.stdout and "may have happened" in shown.stdout
    assert paid(slow_shop) == {inv.number}
    # Never silently repeated: a new request for the same action says what may have happened,
    # and no auto-approval rule may take it.
    again = await rt.approvals.create(
        run_id="later",
        step_idx=5,
        task_name=confirm.task_name,
        profile="alice",
        action=confirm.action,
        summary=confirm.summary,
        reasons=confirm.reasons,
        fingerprint=confirm.fingerprint,
        idempotency_key=confirm.idempotency_key,
        page_url=confirm.page_url,
        ttl_s=60,
    )
    assert [(p["id"], p["status"]) for p in again.prior] == [(confirm.id, "unconfirmed")]
    warned = await other_process("approvals", "show", again.id)
    assert "WARNING" in warned.stdout and confirm.run_id in warned.stdout


async def fake_request(rt: Runtime, ttl_s: float = 60) -> ApprovalRequest:
    return await rt.approvals.create(
        run_id="run-x",
        step_idx=3,
        task_name="pay-invoice",
        profile="alice",
        action={"kind": "click", "ref": "e9"},
        summary="Click 'Pay $1.00' on /invoices/1",
        reasons=["looks like a payment"],
        fingerprint="f" * 64,
        idempotency_key="k" * 64,
        page_url="http://127.0.0.1/invoices/1",
        ttl_s=ttl_s,
    )


@pytest.mark.slow
async def test_racing_approvers_in_other_processes_exactly_one_decision_wins(rt: Runtime) -> None:
    request = await fake_request(rt)
    verbs = ["approve", "deny", "approve", "deny"]
    results = await asyncio.gather(*(other_process("approvals", v, request.id) for v in verbs))
    assert sorted(r.returncode for r in results) == [0, 2, 2, 2], [r.stderr for r in results]
    losers = [r.stderr for r in results if r.returncode]
    assert all("already" in e and "nothing changed" in e for e in losers), losers
    decided = await rt.approvals.get(request.id)
    winner = verbs[[r.returncode for r in results].index(0)]
    assert decided.status == {"approve": "approved", "deny": "denied"}[winner]
    audit = [a for a in await rt.services.audit.list(LOCAL_ACTOR) if a.subject == request.id]
    assert len(audit) == 1


@pytest.mark.slow
async def test_only_admins_decide_with_valid_tokens_and_every_decision_is_audited(
    rt: Runtime,
) -> None:
    from runtime.auth import Actor

    await rt.services.users.add_user(LOCAL_ACTOR, "root", "super_admin")
    root = Actor("root", "super_admin")
    await rt.services.users.add_user(root, "ursula", "user")
    await rt.services.users.add_user(root, "adam", "admin")
    _, ursula = await rt.services.users.create_token(root, "ursula", 3600)
    adam_token, adam = await rt.services.users.create_token(root, "adam", 3600)
    request = await fake_request(rt)

    with pytest.raises(PermissionDeniedError, match="needs admin"):
        await rt.services.approvals.decide(Actor("ursula", "user"), request.id, True)
    low = await other_process("approvals", "approve", request.id, env={"CORRAL_TOKEN": ursula})
    assert low.returncode == 2 and "needs admin" in low.stderr and ursula not in low.stderr
    anonymous = await other_process("approvals", "approve", request.id)
    assert anonymous.returncode == 2 and "CORRAL_TOKEN" in anonymous.stderr
    unknown = await other_process("approvals", "approve", "ap-nothere", env={"CORRAL_TOKEN": adam})
    assert unknown.returncode == 2 and "no approval request 'ap-nothere'" in unknown.stderr
    assert (await rt.approvals.get(request.id)).status == "pending"

    ok = await other_process(
        "approvals", "deny", request.id, "--comment", "not now", env={"CORRAL_TOKEN": adam}
    )
    assert ok.returncode == 0 and f"{request.id} denied by adam" in ok.stdout, ok.stderr
    [entry] = [a for a in await rt.services.audit.list(LOCAL_ACTOR) if a.subject == request.id]
    assert (entry.actor, entry.action) == ("adam", "approval.deny")
    assert entry.detail and entry.detail["comment"] == "not now"

    await rt.services.users.revoke_token(root, adam_token.id)
    second = await fake_request(rt)
    revoked = await other_process("approvals", "approve", second.id, env={"CORRAL_TOKEN": adam})
    assert revoked.returncode == 2 and adam not in revoked.stderr
    assert (await rt.approvals.get(second.id)).status == "pending"


@pytest.fixture
def hook() -> Iterator[tuple[str, Received]]:
    """A webhook receiver: its URL and what it received."""
    with webhook_receiver() as receiver:
        yield receiver


async def test_each_request_is_announced_by_a_signed_webhook_without_secrets(
    settings: Settings,
    pool: BrowserPool,
    shop: PortalServer,
    hook: tuple[str, Received],
) -> None:
    url, received = hook
    hooked = settings.model_copy(
        update={"approval_webhook": url, "webhook_secret": "hook-signing-key"}
    )
    async with Runtime.open(hooked, pool=pool) as rt:
        await make_demo_profiles(rt, shop.url, "alice")
        inv = first_unpaid()
        password = USERS["alice"].password
        # The secret is planted where the request would carry it: in the URL of the page the
        # approval is asked on (a portal that echoes a credential into a query string).
        planted = signed_in(
            "pay-invoice",
            shop.url,
            {"goto": f"/invoices/{inv.number}?from={password}"},
            {"click": {"role": "button", "name": f"Pay {usd(inv)}"}},
        )
        async with asyncio.TaskGroup() as tg:
            run = tg.create_task(run_task(rt, parse_task(planted, "pay.yaml"), "alice"))
            request = await next_request(rt)
            await rt.services.approvals.decide(LOCAL_ACTOR, request.id, False, "no")
        assert run.result().exit_code == 3
        steps = await rt.store.runs.list_steps(request.run_id)
    [(headers, body)] = received
    assert verify_headers("hook-signing-key", headers, body)
    assert verify(
        "hook-signing-key", headers["x-corral-timestamp"], body, headers["x-corral-signature"]
    )
    assert not verify(
        "another-key", headers["x-corral-timestamp"], body, headers["x-corral-signature"]
    )
    assert not verify(
        "hook-signing-key",
        headers["x-corral-timestamp"],
        body + b" ",
        headers["x-corral-signature"],
    )
    event = json.loads(body)
    assert event["event"] == "approval.requested" and event["id"] == request.id
    assert event["summary"] == request.summary and event["approve"].endswith(request.id)
    # The page URL was delivered, with the planted password replaced in every form.
    assert f"/invoices/{inv.number}?from=" in event["page_url"]
    assert password not in event["page_url"]
    for form in (password, quote(password), json.dumps(password)[1:-1]):
        assert form.encode() not in body
    assert steps[-1].detail and steps[-1].detail["approval"]["webhook"] == "delivered: 204"
    # A webhook without a signing key is refused before the run starts.
    unsigned = settings.model_copy(update={"approval_webhook": url})
    async with Runtime.open(unsigned, pool=pool) as rt:
        result = await run_task(rt, parse_task(pay_task(shop.url, inv), "pay.yaml"), "alice")
    assert result.exit_code == 2 and result.error and "CORRAL_WEBHOOK_SECRET" in result.error


@pytest.mark.slow
async def test_a_policy_may_auto_approve_a_repeat_a_person_approved_before(
    rt: Runtime, shop: PortalServer, tmp_path: Path
) -> None:
    await make_demo_profiles(rt, shop.url, "alice")
    uploads = tmp_path / "outbox"
    uploads.mkdir()
    (uploads / "report.txt").write_text("daily numbers\n")
    (rt.settings.home / "policy.yaml").write_text(
        "auto_approve:\n  - {name: daily-report, rules: [uploads], after_approvals: 1}\n"
    )
    task = parse_task(
        signed_in(
            "daily-upload",
            shop.url,
            {"goto": "/documents"},
            {"upload": {"label": "Document", "files": ["report.txt"]}},
            {"click": {"role": "button", "name": "Upload"}},
            upload_dir=str(uploads),
        ),
        "upload.yaml",
    )
    async with asyncio.TaskGroup() as tg:
        first = tg.create_task(run_task(rt, task, "alice"))
        request = await next_request(rt)
        assert request.summary == "Upload a file to 'Document' on /documents"
        await rt.services.approvals.decide(LOCAL_ACTOR, request.id, True, "the daily report")
    assert first.result().status == "succeeded", first.result().error
    # The same upload again: the policy approves it, nobody is asked.
    second = await run_task(rt, task, "alice")
    assert second.status == "succeeded", second.error
    [auto] = await rt.approvals.list_requests(None, second.run_id)
    assert (auto.status, auto.decided_by) == ("executed", "policy:daily-report")
    assert [
        a.actor for a in await rt.services.audit.list(LOCAL_ACTOR, action="approval.auto_approve")
    ] == ["policy:daily-report"]


@pytest.mark.slow
async def test_deleting_the_account_is_gated_in_scripted_and_model_runs(
    rt: Runtime, shop: PortalServer
) -> None:
    await make_demo_profiles(rt, shop.url, "alice")
    scripted = parse_task(
        signed_in(
            "delete-account",
            shop.url,
            {"goto": "/settings/delete"},
            {"click": {"role": "button", "name": "Yes, delete my account"}},
        ),
        "delete.yaml",
    )
    async with asyncio.TaskGroup() as tg:
        run = tg.create_task(run_task(rt, scripted, "alice"))
        request = await next_request(rt)
        assert "confirms an irreversible step" in request.reasons
        assert "looks like a deletion" in request.reasons
        await rt.services.approvals.decide(LOCAL_ACTOR, request.id, False, "keep it")
    assert run.result().exit_code == 3

    tried: list[str] = []

    def delete(page: str) -> Any:
        if "] Delete account" in page and not tried:
            tried.append(page)
            return reply(call("click", ref=ref_of(page, "button", "Delete account")))
        return reply(call("done", result={"unpaid": 0}))

    planner = FunctionModel(login_then(delete))
    model_task = goal_task(shop.url, start_url=f"{shop.url}/settings")
    async with asyncio.TaskGroup() as tg:
        model_run = tg.create_task(run_task(rt, model_task, "alice", models={"planner": [planner]}))
        asked = await next_request(rt)
        await rt.services.approvals.decide(LOCAL_ACTOR, asked.id, False, "never")
    assert model_run.result().status == "succeeded"
    assert asked.summary == "Click 'Delete account' on /settings"
    told = page_of(planner.requests[-1].messages)
    assert "denied by a person (local): never" in told
    # The account is still there: alice's saved session still opens her dashboard.
    check = parse_task(
        {
            "name": "still-there",
            "start_url": f"{shop.url}/dashboard",
            "steps": [{"extract": {"as": "account", "text": {"test_id": "account"}}}],
            "output": "account",
        },
        "check.yaml",
    )
    still = await run_task(rt, check, "alice")
    assert still.status == "succeeded" and still.output == "Account ACC-1001", still.error


@pytest.mark.slow
async def test_corral_run_exits_3_when_a_person_denies(
    rt: Runtime, shop: PortalServer, tmp_path: Path
) -> None:
    await make_demo_profiles(rt, shop.url, "alice")
    path = task_file(tmp_path, pay_task(shop.url, first_unpaid()))
    runner = asyncio.create_task(other_process("run", str(path), "--profile", "alice", "--json"))
    request = await next_request(rt, timeout_s=90)
    denied = await other_process("approvals", "deny", request.id, "--comment", "no")
    assert denied.returncode == 0, denied.stderr
    finished = await runner
    assert finished.returncode == 3, finished.stderr
    [result] = json.loads(finished.stdout)
    assert result["status"] == "denied" and "denied by a person (local): no" in result["error"]


@pytest.mark.slow
async def test_a_persons_time_does_not_count_against_the_runs_time_limit(
    rt: Runtime, shop: PortalServer
) -> None:
    await make_demo_profiles(rt, shop.url, "alice")
    inv = first_unpaid()
    # The budget is generous for the run's own work (on a busy machine too); the person
    # takes longer than all of it.
    task = parse_task({**pay_task(shop.url, inv), "budget": {"timeout_s": 10}}, "pay.yaml")
    async with asyncio.TaskGroup() as tg:
        run = tg.create_task(run_task(rt, task, "alice"))
        pay = await next_request(rt)
        await asyncio.sleep(10.5)  # the person's time: longer than the whole run may take
        await rt.services.approvals.decide(LOCAL_ACTOR, pay.id, True)
        confirm = await next_request(rt, besides=pay)
        await rt.services.approvals.decide(LOCAL_ACTOR, confirm.id, True)
    assert run.result().status == "succeeded", run.result().error


async def test_a_run_cancelled_while_its_request_is_announced_closes_it(
    settings: Settings, pool: BrowserPool, shop: PortalServer
) -> None:
    # The webhook receiver holds its answer: the run is cancelled in the middle of announcing
    # the request, before it waits for anyone. The request must not stay pending.
    answer = threading.Event()
    with webhook_receiver(hold=answer) as (url, received):
        hooked = settings.model_copy(
            update={"approval_webhook": url, "webhook_secret": "hook-signing-key"}
        )
        async with Runtime.open(hooked, pool=pool) as rt:
            await make_demo_profiles(rt, shop.url, "alice")
            run = asyncio.create_task(
                run_task(rt, parse_task(pay_task(shop.url, first_unpaid()), "pay.yaml"), "alice")
            )
            request = await next_request(rt)
            await until(
                lambda: any(b"approval.requested" in body for _, body in received),
                30,
                "the announcement",
            )
            run.cancel()
            with pytest.raises(asyncio.CancelledError):
                await run
            answer.set()
            assert (await rt.approvals.get(request.id)).status == "cancelled"
    assert not paid(shop)


async def test_a_run_cancelled_right_after_its_request_is_stored_closes_it(
    rt: Runtime, shop: PortalServer
) -> None:
    # The request's row is written, and the run is cancelled before it begins to wait (here:
    # while the request's earlier attempts are read). The request must not stay pending.
    await make_demo_profiles(rt, shop.url, "alice")
    stored = asyncio.Event()
    real_prior = rt.approvals.prior

    async def prior_then_stall(key: str, exclude: str | None = None) -> Any:
        stored.set()
        await asyncio.sleep(3600)

    rt.approvals.prior = prior_then_stall  # type: ignore[method-assign]
    try:
        run = asyncio.create_task(
            run_task(rt, parse_task(pay_task(shop.url, first_unpaid()), "pay.yaml"), "alice")
        )
        await asyncio.wait_for(stored.wait(), 60)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
    finally:
        rt.approvals.prior = real_prior  # type: ignore[method-assign]
    [request] = await rt.approvals.list_requests(status=None)
    assert request.status == "cancelled", request
    assert not paid(shop)


async def test_cancelling_a_waiting_run_closes_its_request(rt: Runtime, shop: PortalServer) -> None:
    await make_demo_profiles(rt, shop.url, "alice")
    run = asyncio.create_task(
        run_task(rt, parse_task(pay_task(shop.url, first_unpaid()), "pay.yaml"), "alice")
    )
    request = await next_request(rt)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    closed = await rt.approvals.get(request.id[:6])  # a unique prefix is enough
    assert (closed.id, closed.status) == (request.id, "cancelled")
    record = await rt.store.runs.get_run(request.run_id)
    assert record is not None and record.status == "cancelled"
    with pytest.raises(ApprovalError, match="already cancelled"):
        await rt.services.approvals.decide(LOCAL_ACTOR, request.id, True)
    assert not paid(shop)


async def test_a_policy_deny_stops_a_script_without_asking_anyone(
    rt: Runtime, shop: PortalServer
) -> None:
    await make_demo_profiles(rt, shop.url, "alice")
    rt.settings.policy_path.write_text(
        "rules:\n  - {name: no-logout, match: {roles: [button], name: '^log out$'},"
        " verdict: deny, reason: keep the session}\n"
    )
    task = parse_task(
        signed_in("log-out", shop.url, {"click": {"role": "button", "name": "Log out"}}),
        "logout.yaml",
    )
    result = await run_task(rt, task, "alice")
    assert (result.status, result.exit_code) == ("denied", 3)
    assert result.error and "denied by policy (keep the session)" in result.error
    assert await rt.approvals.list_requests(None) == []
    steps = await rt.store.runs.list_steps(str(result.run_id))
    assert steps[-1].status == "skipped" and steps[-1].detail
    assert steps[-1].detail["policy"]["rules"] == ["no-logout"]
    # A malformed global policy is bad input: exit 2, naming the file and the field.
    rt.settings.policy_path.write_text("rules:\n  - {name: x, verdict: maybe}\n")
    bad = await run_task(rt, task, "alice")
    assert bad.exit_code == 2 and bad.error and "policy.yaml" in bad.error
    assert "rules.0" in bad.error


# --- auto-approval's negative paths: it approves only what it names, as often as it says ----------


@pytest.fixture
async def quick(settings: Settings, pool: BrowserPool) -> AsyncIterator[Runtime]:
    """A runtime whose requests expire after 1 s: one nobody approves ends its run denied."""
    quick_settings = settings.model_copy(update={"approval_ttl_s": 1.0})
    async with Runtime.open(quick_settings, pool=pool) as runtime:
        yield runtime


def upload_task(portal: str, uploads: Path, times: int = 1, name: str = "daily-upload") -> Any:
    """Upload report.txt ``times`` times (each upload is gated by the ``uploads`` rule)."""
    steps = [{"upload": {"label": "Document", "files": ["report.txt"]}}] * times
    data = signed_in(name, portal, {"goto": "/documents"}, *steps, upload_dir=str(uploads))
    return parse_task(data, "upload.yaml")


def decisions(requests: list[ApprovalRequest]) -> list[tuple[str, str | None]]:
    """(status, decided_by) of each request, oldest first."""
    return [(r.status, r.decided_by) for r in sorted(requests, key=lambda r: r.created_at)]


def set_policy(rt: Runtime, *auto_approve: str) -> None:
    rt.settings.policy_path.write_text(
        "auto_approve:\n" + "".join(f"  - {entry}\n" for entry in auto_approve)
    )


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    """A folder uploads may come from, with one file."""
    folder = tmp_path / "outbox"
    folder.mkdir()
    (folder / "report.txt").write_text("daily numbers\n")
    return folder


@pytest.mark.slow
async def test_an_auto_approval_for_one_kind_never_approves_another(
    quick: Runtime, shop: PortalServer, uploads: Path
) -> None:
    rt = quick
    await make_demo_profiles(rt, shop.url, "alice")
    # Payments may be auto-approved, even without any earlier approval by a person.
    set_policy(rt, "{name: pay-ok, rules: [payments], after_approvals: 0}")
    inv = first_unpaid()
    pay = await run_task(rt, parse_task(pay_task(shop.url, inv), "pay.yaml"), "alice")
    # The Pay button is a payment only: approved by the policy. "Confirm payment" is a payment
    # and a confirmation: the policy does not name confirmations, so a person is asked.
    assert decisions(await rt.approvals.list_requests(None, pay.run_id)) == [
        ("executed", "policy:pay-ok"),
        ("expired", "expiry"),
    ]
    assert pay.status == "denied" and not paid(shop)
    # A deletion and an upload are other kinds: asked, never approved by the payments rule.
    delete = signed_in(
        "delete-account",
        shop.url,
        {"goto": "/settings/delete"},
        {"click": {"role": "button", "name": "Yes, delete my account"}},
    )
    for task in (parse_task(delete, "delete.yaml"), upload_task(shop.url, uploads)):
        result = await run_task(rt, task, "alice")
        assert (result.status, result.exit_code) == ("denied", 3), result.error
        [asked] = await rt.approvals.list_requests(None, result.run_id)
        assert (asked.status, asked.decided_by) == ("expired", "expiry")
    assert [
        a.actor for a in await rt.services.audit.list(LOCAL_ACTOR, action="approval.auto_approve")
    ] == ["policy:pay-ok"]


@pytest.mark.slow
async def test_auto_approval_keeps_to_its_tasks_profiles_and_max_per_run(
    quick: Runtime, shop: PortalServer, uploads: Path
) -> None:
    rt = quick
    await make_demo_profiles(rt, shop.url, "alice")
    entry = "{name: uploads-ok, rules: [uploads], after_approvals: 0, max_per_run: 1"
    # Another task's rule, another profile's rule: a person is asked.
    for scope in ("tasks: [weekly-upload]", "profiles: [bob]"):
        set_policy(rt, f"{entry}, {scope}}}")
        result = await run_task(rt, upload_task(shop.url, uploads), "alice")
        assert result.status == "denied", (scope, result.error)
        assert decisions(await rt.approvals.list_requests(None, result.run_id)) == [
            ("expired", "expiry")
        ]
    # This task and profile: the first upload is approved by the policy; the second in the same
    # run is past max_per_run, so a person is asked.
    set_policy(rt, f"{entry}, tasks: [daily-upload], profiles: [alice]}}")
    twice = await run_task(rt, upload_task(shop.url, uploads, times=2), "alice")
    assert twice.status == "denied", twice.error
    assert decisions(await rt.approvals.list_requests(None, twice.run_id)) == [
        ("executed", "policy:uploads-ok"),
        ("expired", "expiry"),
    ]
    # max_per_run counts per run: the next run may use it once again.
    once = await run_task(rt, upload_task(shop.url, uploads), "alice")
    assert once.status == "succeeded", once.error
    assert decisions(await rt.approvals.list_requests(None, once.run_id)) == [
        ("executed", "policy:uploads-ok")
    ]


# --- approval screenshots mask what a secret was typed into -------------------------------------

# A PIN field that turns itself into a plain text field once typed into, so the value would show in
# clear, and a Pay button to ask about. Fixed positions: the test knows where the field is drawn.
PIN_PAGE = b"""<!doctype html><html><head><style>
body { margin: 0; background: #fff; }
#pin { position: absolute; left: 40px; top: 40px; width: 480px; height: 80px; font: 48px monospace;
       border: 0; background: #fff; color: #000; padding: 0; }
#pay { position: absolute; left: 40px; top: 300px; }
</style></head><body>
<form method="post" action="/pay">
<label for="pin" style="position: absolute; left: 40px; top: 10px">PIN</label>
<input id="pin" name="pin" type="password" autocomplete="current-password">
<button id="pay" type="submit">Pay $100</button>
</form>
<script>
document.getElementById("pin").addEventListener("input", (e) => { e.target.type = "text"; });
</script>
</body></html>"""
PIN_BOX = (40, 40, 520, 120)


class _PinSite(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PIN_PAGE)))
        self.end_headers()
        self.wfile.write(PIN_PAGE)

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def pin_site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PinSite)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


async def test_the_approval_screenshot_masks_a_secret_typed_earlier_in_the_run(
    quick: Runtime, pin_site: str
) -> None:
    rt = quick
    await rt.profiles.create("alice", ProfileSettings())
    await rt.vault.set("alice.pin", "4711-secret-pin", [pin_site], ["alice"])
    task = parse_task(
        {
            "name": "pin-pay",
            "start_url": f"{pin_site}/",
            "secrets": ["alice.pin"],
            "steps": [
                {"fill": {"label": "PIN", "value": "{{secret:alice.pin}}"}},
                {"click": {"role": "button", "name": "Pay $100"}},
            ],
        },
        "pin.yaml",
    )
    result = await run_task(rt, task, "alice")
    assert result.status == "denied", result.error
    [request] = await rt.approvals.list_requests(None, result.run_id)
    assert request.screenshot, "the approval request has no screenshot"
    # What the form will send is shown with the secret as its placeholder, never its value.
    fields = {f["name"]: f for f in request.fields or []}
    assert fields["pin"]["value"] == "{{secret:alice.pin}}"
    assert "4711-secret-pin" not in request.model_dump_json()
    assert request.target == {"role": "button", "name": "Pay $100"}
    image = Image.open(Path(request.screenshot)).convert("RGB")
    # The field (now type=text, its value in clear) is painted over in Playwright's mask colour
    # (#FF00FF) edge to edge: no glyph of the PIN is drawn.
    left, top, right, bottom = PIN_BOX
    inner = image.crop((left + 4, top + 4, right - 4, bottom - 4))
    raw = inner.tobytes()
    pixels = [tuple(raw[i : i + 3]) for i in range(0, len(raw), 3)]
    off = [p for p in pixels if not (p[0] > 200 and p[1] < 80 and p[2] > 200)]
    assert len(off) < len(pixels) / 100, f"{len(off)} of {len(pixels)} pixels are not the mask"
    # Outside the field the page is drawn normally (the mask is not the whole picture).
    outside = image.getpixel((10, 200))
    assert isinstance(outside, tuple) and outside == pytest.approx((255, 255, 255), abs=12)
