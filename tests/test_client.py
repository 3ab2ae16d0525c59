"""The typed client against a served API: records back, and every error answer raised as the
corral error the service raised (so the CLI's exit codes stay those of local mode); runs started,
decided and waited for through it; a user sees and cancels only what is theirs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from profiles import ProfileNotFoundError, UserError
from runtime import Runtime
from runtime.api import RunPending, create_app
from runtime.auth import LOCAL_ACTOR, Actor
from runtime.client import ApiClient
from runtime.demo.portal import USERS, PortalServer
from runtime.demo.portal.data import Invoice
from runtime.errors import (
    ApprovalError,
    ApprovalNotFoundError,
    AuthError,
    PermissionDeniedError,
    RunNotFoundError,
    ServerDrainingError,
    TaskFileError,
    exit_code_for,
)
from runtime.serve import WorkerPool
from tests.support.api import serving
from tests.support.approvals import next_request
from tests.support.demo import first_unpaid, make_demo_profiles, pay_task, usd
from tests.support.sites import free_port
from tests.support.wait import until

ROOT = Actor("root", "super_admin")


@dataclass
class Served:
    rt: Runtime
    pool: WorkerPool
    url: str
    ada: ApiClient
    bob: ApiClient


@pytest.fixture
async def served(rt: Runtime, portal: str) -> AsyncIterator[Served]:
    """The API with ada (admin) and bob (user, granted ``bob``); demo profiles alice and bob."""
    await make_demo_profiles(rt, portal, "alice", "bob")
    users = rt.services.users
    await users.add_user_with_token(LOCAL_ACTOR, "root", "super_admin")
    ada = (await users.add_user_with_token(ROOT, "ada", "admin")).value
    bob = (await users.add_user_with_token(ROOT, "bob", "user")).value
    await users.grant(ROOT, "bob", "bob")
    pool = WorkerPool(rt, 2)
    async with (
        serving(create_app(rt, pool)) as url,
        ApiClient(url, ada) as ada_client,
        ApiClient(url, bob) as bob_client,
    ):
        yield Served(rt, pool, url, ada_client, bob_client)
        await pool.drain(0)


def dashboard_task(portal: str) -> str:
    """A short scripted task: sign in and read the dashboard's heading."""
    return yaml.safe_dump(
        {
            "name": "dashboard",
            "start_url": f"{portal}/login",
            "secrets": ["{{var:user}}.password"],
            "steps": [
                {"fill": {"label": "Username", "value": "{{var:user}}"}},
                {"fill": {"label": "Password", "value": "{{secret:{{var:user}}.password}}"}},
                {"click": {"role": "button", "name": "Sign in"}},
                {"extract": {"as": "greeting", "text": {"role": "heading", "name": "Welcome"}}},
            ],
            "output": "greeting",
        }
    )


def stuck_task(portal: str) -> str:
    return yaml.safe_dump(
        {
            "name": "stuck",
            "start_url": f"{portal}/login",
            "step_timeout_s": 600,
            "steps": [{"wait_for": {"text": "a text that never appears", "timeout_s": 600}}],
        }
    )


async def test_errors_become_the_services_errors_with_their_exit_codes(served: Served) -> None:
    async with ApiClient(served.url, "crl_wrong") as stranger:
        with pytest.raises(AuthError, match="not a valid API token") as auth:
            await stranger.whoami()
    assert "crl_wrong" not in str(auth.value)
    with pytest.raises(PermissionDeniedError, match=r"^bob \(user\)"):
        await served.bob.delete_profile("alice")
    with pytest.raises(RunNotFoundError):
        await served.ada.show_run("nope")
    with pytest.raises(ProfileNotFoundError):
        await served.ada.show_profile("nope")
    with pytest.raises(TaskFileError, match=r"^t.yaml: nmae: unknown field") as bad:
        await served.ada.start_runs("nmae: x\nsteps: [{goto: /}]\n", "t.yaml", ["alice"])
    assert exit_code_for(bad.value) == 2
    with pytest.raises(UserError, match=r"body.lease_timeout_s"):
        await served.ada.start_runs("name: x\n", "t.yaml", lease_timeout_s=-1)
    await served.rt.approvals.create(
        run_id="r",
        step_idx=0,
        task_name="t",
        profile="alice",
        action={"kind": "click"},
        summary="Click",
        reasons=["r"],
        fingerprint="f",
        idempotency_key="k",
        page_url=None,
        ttl_s=600,
        request_id="ap-12345678",
    )
    await served.ada.deny("ap-12345678", "no")
    with pytest.raises(ApprovalError, match="already denied by ada"):
        await served.ada.approve("ap-12345678")
    await served.pool.drain(0)
    with pytest.raises(ServerDrainingError) as draining:
        await served.ada.start_runs("name: x\nsteps: [{goto: /}]\n", "t.yaml", ["alice"])
    assert exit_code_for(draining.value) == 1


async def test_an_unreachable_server_is_a_user_error_naming_it() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with ApiClient(url, "crl_x") as client:
        with pytest.raises(UserError, match=f"cannot reach CORRAL_SERVER={url}"):
            await client.health()


async def test_a_transport_can_be_given(rt: Runtime) -> None:
    app = create_app(rt, WorkerPool(rt, 1))
    async with ApiClient("http://corral.test", None, transport=httpx.ASGITransport(app)) as c:
        assert (await c.health()).draining is False
        with pytest.raises(AuthError):
            await c.list_profiles()


@pytest.mark.slow
async def test_a_scripted_run_through_the_api_finishes_with_its_result(
    served: Served, portal: str
) -> None:
    [run] = await served.bob.start_runs(dashboard_task(portal), "dashboard.yaml", ["bob"])
    assert run.profile == "bob"
    result = await served.bob.wait_result(run.run_id, poll_s=0.1)
    assert result.status == "succeeded", result.error
    assert result.run_id == run.run_id
    assert result.output == f"Welcome, {USERS['bob'].full_name}"
    detail = await served.bob.show_run(run.run_id)
    assert detail.run.status == "succeeded" and len(detail.steps) == 5
    assert [r.id for r in await served.bob.list_runs()] == [run.run_id]
    # ada's run on alice is not bob's to see, nor to wait for
    [other] = await served.ada.start_runs(dashboard_task(portal), "dashboard.yaml", ["alice"])
    with pytest.raises(RunNotFoundError):
        await served.bob.result(other.run_id)
    assert (await served.ada.wait_result(other.run_id, poll_s=0.1)).status == "succeeded"
    with pytest.raises(RunNotFoundError):
        await served.bob.show_run(other.run_id)
    assert [r.id for r in await served.bob.list_runs()] == [run.run_id]
    assert {r.id for r in await served.ada.list_runs()} == {run.run_id, other.run_id}
    uses = await served.ada.secret_uses(run_id=run.run_id, secret="bob.password")
    assert uses and all(u.secret == "bob.password" and u.allowed for u in uses)


@pytest.mark.slow
async def test_a_run_needing_approval_is_decided_through_the_api_and_finishes(
    served: Served, tmp_path: Path
) -> None:
    inv = first_unpaid()
    with PortalServer(port=0, db_path=tmp_path / "portal.db") as shop:  # payments stay here
        await served.rt.vault.set("alice.password", USERS["alice"].password, [shop.url], ["alice"])
        await _pay_through_the_api(served, shop, inv)


async def _pay_through_the_api(served: Served, shop: PortalServer, inv: Invoice) -> None:
    task = yaml.safe_dump(pay_task(shop.url, inv))
    [run] = await served.ada.start_runs(task, "pay.yaml", ["alice"])
    pay = await next_request(served.rt)
    assert pay.run_id == run.run_id
    pending = await served.ada.result(run.run_id)
    assert isinstance(pending, RunPending) and pending.status == "waiting_approval"
    [listed] = await served.ada.list_approvals(run_id=run.run_id)
    assert listed.summary == f"Click 'Pay {usd(inv)}' on /invoices/{inv.number}"
    # bob has no grant on alice: her waiting request is not his to see.
    assert await served.bob.list_approvals(run_id=run.run_id) == []
    with pytest.raises(ApprovalNotFoundError):
        await served.bob.show_approval(pay.id)
    with pytest.raises(PermissionDeniedError):
        await served.bob.approve(pay.id)
    decided = await served.ada.approve(pay.id, "due today")
    assert (decided.status, decided.decided_by) == ("approved", "ada")
    confirm = await next_request(served.rt, besides=pay)
    await served.ada.approve(confirm.id)
    result = await served.ada.wait_result(run.run_id, poll_s=0.1)
    assert (result.status, result.output) == ("succeeded", "Paid")
    audit = await served.rt.services.audit.list(ROOT, action="approval.approve")
    assert sorted(a.subject for a in audit) == sorted([pay.id, confirm.id])
    assert {a.actor for a in audit} == {"ada"}


@pytest.mark.slow
async def test_cancel_is_for_the_starter_or_an_admin_and_saves_the_run(
    served: Served, portal: str
) -> None:
    [mine] = await served.bob.start_runs(stuck_task(portal), "stuck.yaml", ["bob"])
    [hers] = await served.ada.start_runs(stuck_task(portal), "stuck.yaml", ["alice"])
    for run in (mine, hers):
        await until(lambda r=run: served.rt.store.runs.list_steps(r.run_id), 60, "a page")
        assert await served.rt.store.profiles.get_lease(run.profile) is not None
    with pytest.raises(RunNotFoundError):
        await served.bob.cancel_run(hers.run_id)  # not granted: not even visible
    await served.rt.services.users.grant(ROOT, "bob", "alice")
    with pytest.raises(PermissionDeniedError, match="cancel runs others started"):
        await served.bob.cancel_run(hers.run_id)
    assert (await served.bob.cancel_run(mine.run_id, "wrong invoice")).cancelled
    mine_result = await served.bob.wait_result(mine.run_id, poll_s=0.1)
    assert (mine_result.status, mine_result.error) == (
        "cancelled",
        "cancelled by bob: wrong invoice",
    )
    assert (await served.ada.cancel_run(hers.run_id)).cancelled
    assert (await served.ada.wait_result(hers.run_id, poll_s=0.1)).status == "cancelled"
    again = await served.ada.cancel_run(hers.run_id)
    assert (again.cancelled, again.status) == (False, "cancelled")
    for profile in ("alice", "bob"):
        assert await served.rt.store.profiles.get_lease(profile) is None
    audit = await served.rt.services.audit.list(ROOT, action="run.cancel")
    assert sorted((a.actor, a.subject) for a in audit) == sorted(
        [("bob", mine.run_id), ("ada", hers.run_id)]
    )
