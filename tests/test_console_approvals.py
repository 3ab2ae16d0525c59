"""The console's approvals inbox and a request's page, over real HTTP: what a person sees before
deciding, who may see and decide, escaping and redaction of what came from pages, the
screenshot kept inside its run's folder, decisions (CSRF, admins only, exactly one), and the
approval webhook's link to the request's page (in-process and from ``corral serve``)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from PIL import Image

from profiles import BrowserPool, UserError
from runtime import Runtime, parse_task
from runtime.approvals import ApprovalRequest
from runtime.demo.portal import USERS, PortalServer
from runtime.records import RunRecord
from runtime.run.runner import new_run_id
from runtime.settings import Settings
from runtime.webhook import verify_headers
from tests.support.approvals import Received, webhook_receiver
from tests.support.cli import CORRAL
from tests.support.console import (
    ROOT,
    Console,
    console_users,
    csrf_of,
    served_console,
    sign_in,
)
from tests.support.demo import first_unpaid, pay_task, usd
from tests.support.inbox import console_profiles
from tests.support.leaks import leak_forms
from tests.support.sites import free_port
from tests.support.wait import until

PAYLOADS = (
    "<script>window.__pwned=1</script>",
    "<img src=x onerror=window.__pwned=1>",
    '"><svg onload=window.__pwned=1>',
)
HOSTILE = " ".join(PAYLOADS)


# --- set-up -----------------------------------------------------------------------------------


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[PortalServer]:
    """A portal of this test's own: payments here change no other test's portal."""
    with PortalServer(port=0, db_path=tmp_path / "portal.db") as server:
        yield server


@pytest.fixture
async def console(rt: Runtime) -> AsyncIterator[Console]:
    async with served_console(rt) as served:
        yield served


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


async def asked(
    rt: Runtime,
    profile: str,
    *,
    screenshot: str | Path | None = "inside",
    ttl_s: float = 900,
    **given: Any,
) -> ApprovalRequest:
    """A run waiting on ``profile`` and its pending request, written to the store as a run
    writes them (``screenshot="inside"``: a JPEG in the run's folder; a path: that path)."""
    run_id = new_run_id()
    run_dir = rt.settings.runs_dir / run_id
    (run_dir / "approvals").mkdir(parents=True)
    await rt.store.runs.create_run(
        RunRecord(
            id=run_id,
            task_name=given.pop("task_name", "pay-invoice"),
            task_path="pay.yaml",
            profile=profile,
            status="waiting_approval",
            started_at=datetime.now(UTC),
            run_dir=str(run_dir),
            pid=os.getpid(),
        )
    )
    request_id = "ap-" + run_id[-6:] + "00"
    if screenshot == "inside":
        shot = run_dir / "approvals" / f"{request_id}.jpg"
        shot.write_bytes(jpeg())
        screenshot = shot
    fields: dict[str, Any] = {
        "step_idx": 3,
        "task_name": "pay-invoice",
        "action": {"kind": "click", "role": "button", "name": "Pay $120.00", "exact": False},
        "summary": "Click 'Pay $120.00' on /invoices/INV-7",
        "reasons": ["looks like a payment"],
        "fingerprint": "f-" + run_id,
        "idempotency_key": "k-" + run_id,
        "page_url": "http://portal.test/invoices/INV-7",
        "target": {"role": "button", "name": "Pay $120.00", "ref": "e12"},
        "fields": [
            {"name": "Note", "kind": "text", "value": "for October"},
            {"name": "Card PIN", "kind": "password", "value": "(hidden: password field)"},
            {"name": "Account", "kind": "text", "value": "{{secret:acme.account}}"},
        ],
        **given,
    }
    return await rt.approvals.create(
        request_id=request_id,
        run_id=run_id,
        profile=profile,
        ttl_s=ttl_s,
        screenshot=str(screenshot) if screenshot else None,
        **fields,
    )


def decide_form(html: str, decision: str, comment: str = "") -> dict[str, str]:
    return {"csrf": csrf_of(html), "decision": decision, "comment": comment}


# --- the inbox and a request's page -------------------------------------------------------------


async def test_the_inbox_shows_what_a_person_needs_and_filters_decided_ones(
    console: Console,
) -> None:
    rt = console.rt
    waiting = await asked(rt, "shop")
    done = await asked(rt, "shop", summary="Click 'Delete account' on /settings")
    await rt.services.approvals.decide(ROOT, done.id, False, "not today")
    async with sign_in(console.url, console.tokens["ada"]) as http:
        inbox = await http.get("/console/approvals")
        assert inbox.status_code == 200, inbox.text
        text = inbox.text
        # The live part: swapped in place when the approvals event says the list changed.
        assert re.search(r'<div id="approval-list" data-refresh="approvals"', text)
        assert f'href="/console/approvals/{waiting.id}"' in text
        assert "Click &#39;Pay $120.00&#39; on /invoices/INV-7" in text
        assert "looks like a payment" in text and "pay-invoice" in text and ">shop<" in text
        assert f'href="/console/runs/{waiting.run_id}"' in text
        assert " ago " in text and "Expires" in text and "expiry means deny" in text
        assert done.id not in text  # decided: not waiting
        decided = (await http.get("/console/approvals", params={"show": "decided"})).text
        assert done.id in decided and waiting.id not in decided
        assert "denied" in decided and "not today" in decided
        every = (await http.get("/console/approvals", params={"show": "all"})).text
        assert done.id in every and waiting.id in every
        bad = await http.get("/console/approvals", params={"show": "everything"})
        assert bad.status_code == 422 and "expected waiting, decided or all" in bad.text


async def test_a_requests_page_shows_the_action_its_form_values_run_and_history(
    console: Console,
) -> None:
    rt = console.rt
    request = await asked(rt, "shop")
    # The same action ran before, approved by ada: the page says so.
    earlier = await asked(rt, "shop", idempotency_key=request.idempotency_key)
    await rt.store.approvals.move(
        earlier.id, "pending", "executed", decided_by="ada", outcome="paid: receipt R-1"
    )
    async with sign_in(console.url, console.tokens["ada"]) as http:
        answer = await http.get(f"/console/approvals/{request.id}")
        assert answer.status_code == 200, answer.text
        text = answer.text
    assert (
        '<h1 class="approval-summary">Click &#39;Pay $120.00&#39; on /invoices/INV-7</h1>' in text
    )
    assert "looks like a payment" in text
    assert "button <strong>Pay $120.00</strong>" in text and "(ref e12)" in text
    assert "http://portal.test/invoices/INV-7" in text
    # The form values that will be sent: secrets as placeholders, a password never.
    assert "for October" in text and "{{secret:acme.account}}" in text
    assert "(hidden: password field)" in text
    # The action exactly as it will run, as JSON text.
    assert "&#34;name&#34;: &#34;Pay $120.00&#34;" in text
    assert f'href="/console/runs/{request.run_id}"' in text and "waiting_approval" in text
    assert "waiting for this decision" in text
    # The earlier run of the same action, and how it went.
    assert earlier.id in text and "executed" in text and "paid: receipt R-1" in text
    # The screenshot, with the target outlined, from the request's own route.
    assert f'src="/console/approvals/{request.id}/screenshot"' in text
    # An admin sees the buttons.
    assert 'value="approve"' in text and 'value="deny"' in text


async def test_an_admin_decides_once_and_the_page_shows_who_when_and_why(
    console: Console,
) -> None:
    rt = console.rt
    request = await asked(rt, "shop")
    async with sign_in(console.url, console.tokens["ada"]) as http:
        page = (await http.get(f"/console/approvals/{request.id}")).text
        answer = await http.post(
            f"/console/approvals/{request.id}/decide",
            data=decide_form(page, "approve", "  due today  "),
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == f"/console/approvals/{request.id}"
        shown = (await http.get(answer.headers["location"])).text
        assert "approved</span>" in shown and "<strong>ada</strong>" in shown
        assert "Comment: due today" in shown
        assert 'value="approve"' not in shown  # decided: no buttons any more
        stored = await rt.approvals.get(request.id)
        assert (stored.status, stored.decided_by, stored.comment) == (
            "approved",
            "ada",
            "due today",
        )
        # A second decision (a stale page, another admin) is refused, naming the first.
        again = await http.post(
            f"/console/approvals/{request.id}/decide", data=decide_form(page, "deny", "no")
        )
        assert again.status_code == 409
        assert re.search(r"already approved by ada at \d\d:\d\d:\d\d UTC", again.text)
        assert (await rt.approvals.get(request.id)).status == "approved"
        audit = await rt.services.audit.list(ROOT, action="approval.approve")
        assert [(e.actor, e.subject) for e in audit] == [("ada", request.id)]
        # A decision that is neither, or a comment too long, changes nothing.
        other = await asked(rt, "shop")
        page = (await http.get(f"/console/approvals/{other.id}")).text
        for form in (decide_form(page, "maybe"), decide_form(page, "deny", "x" * 2001)):
            refused = await http.post(f"/console/approvals/{other.id}/decide", data=form)
            assert refused.status_code == 422, refused.text
        assert (await rt.approvals.get(other.id)).status == "pending"


async def test_a_request_past_its_expiry_says_so_and_cannot_be_approved(
    console: Console,
) -> None:
    late = await asked(console.rt, "shop", ttl_s=0)  # nobody decided in time
    async with sign_in(console.url, console.tokens["ada"]) as http:
        page = (await http.get(f"/console/approvals/{late.id}")).text
        assert "expired at" in page and "in -" not in page
        answer = await http.post(
            f"/console/approvals/{late.id}/decide", data=decide_form(page, "approve")
        )
        assert answer.status_code == 409 and "expiry means deny" in answer.text
        assert late.id not in (await http.get("/console/approvals")).text
        decided = (await http.get("/console/approvals", params={"show": "decided"})).text
        assert late.id in decided and "by expiry" in decided
    assert (await console.rt.approvals.get(late.id)).status == "expired"


async def test_a_decision_needs_the_sessions_csrf_token_and_this_site(console: Console) -> None:
    request = await asked(console.rt, "shop")
    async with sign_in(console.url, console.tokens["ada"]) as http:
        page = (await http.get(f"/console/approvals/{request.id}")).text
        url = f"/console/approvals/{request.id}/decide"
        for form in (
            {"decision": "approve"},
            {"decision": "approve", "csrf": ""},
            {"decision": "approve", "csrf": csrf_of(page)[:-2]},
        ):
            assert (await http.post(url, data=form)).status_code == 403, form
        elsewhere = await http.post(
            url, data=decide_form(page, "approve"), headers={"Origin": "https://evil.test"}
        )
        assert elsewhere.status_code == 403
    async with sign_in(console.url, console.tokens["root"]) as root:
        # Another admin's token, with ada's form: not theirs.
        answer = await root.post(url, data=decide_form(page, "approve"))
        assert answer.status_code == 403
    assert (await console.rt.approvals.get(request.id)).status == "pending"


async def test_a_user_sees_requests_of_granted_profiles_only_and_never_decides(
    console: Console,
) -> None:
    rt = console.rt
    theirs = await asked(rt, "mine", summary="Click 'Pay $5.00' on /invoices/INV-B")
    other = await asked(rt, "shop", summary="Click 'Pay $9,999.00' on /invoices/INV-A")
    async with sign_in(console.url, console.tokens["bob"]) as bob:
        for show in ("waiting", "all"):
            inbox = (await bob.get("/console/approvals", params={"show": show})).text
            assert theirs.id in inbox and other.id not in inbox and "9,999" not in inbox
        # Another profile's request is not found, nor its screenshot, nor its run.
        for path in (f"/console/approvals/{other.id}", f"/console/approvals/{other.id}/screenshot"):
            hidden = await bob.get(path)
            assert hidden.status_code == 404 and "9,999" not in hidden.text, path
        # His own profile's request: he sees it all, but no buttons...
        page = await bob.get(f"/console/approvals/{theirs.id}")
        assert page.status_code == 200 and "Pay $5.00" in page.text
        assert 'value="approve"' not in page.text and "Only an admin can approve" in page.text
        # ...and a decision he crafts himself (his session, his CSRF token) is refused.
        for ref in (theirs.id, other.id):
            answer = await bob.post(
                f"/console/approvals/{ref}/decide", data=decide_form(page.text, "approve", "mine")
            )
            assert answer.status_code == 403, answer.text
            assert "Not allowed" in answer.text and "needs admin" in answer.text
    assert {r.status for r in (await rt.approvals.list_requests(None))} == {"pending"}
    assert await rt.services.audit.list(ROOT, action="approval.approve") == []


async def test_texts_from_pages_are_escaped_everywhere_they_are_shown(console: Console) -> None:
    rt = console.rt
    request = await asked(
        rt,
        "shop",
        summary=f"Click 'Pay {HOSTILE}' on /invoices/{HOSTILE}",
        reasons=[f"looks like a payment: {HOSTILE}"],
        page_url=f"http://portal.test/?q={HOSTILE}",
        target={"role": "button", "name": HOSTILE, "ref": "e1"},
        fields=[{"name": HOSTILE, "kind": "text", "value": HOSTILE}],
        action={"kind": "click", "role": "button", "name": HOSTILE},
    )
    async with sign_in(console.url, console.tokens["ada"]) as http:
        page = (await http.get(f"/console/approvals/{request.id}")).text
        await http.post(
            f"/console/approvals/{request.id}/decide", data=decide_form(page, "deny", HOSTILE)
        )
        pages = [
            (await http.get(f"/console/approvals/{request.id}")).text,
            (await http.get("/console/approvals", params={"show": "all"})).text,
        ]
    for text in pages:
        assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in text
        assert "&lt;img src=x onerror=window.__pwned=1&gt;" in text
        for payload in (*PAYLOADS, "<script>window", "<img src=x", "<svg"):
            assert payload not in text


async def test_stored_secrets_are_redacted_once_more_before_they_are_shown(
    console: Console,
) -> None:
    rt = console.rt
    await rt.vault.set("acme.account", "ACCT-9911-secret", ["http://portal.test"], ["shop"])
    # A text written before anyone knew it was secret: the page still never shows it.
    request = await asked(
        rt,
        "shop",
        summary="Click 'Pay' on /pay?acct=ACCT-9911-secret",
        fields=[{"name": "Account", "kind": "text", "value": "ACCT-9911-secret"}],
    )
    async with sign_in(console.url, console.tokens["ada"]) as http:
        texts = [
            (await http.get(f"/console/approvals/{request.id}")).text,
            (await http.get("/console/approvals")).text,
        ]
    for text in texts:
        assert "{{secret:acme.account}}" in text
        for form in leak_forms("ACCT-9911-secret"):
            assert form.decode(errors="replace") not in text


async def test_the_screenshot_is_served_only_from_inside_its_run_folder(
    console: Console, tmp_path: Path
) -> None:
    rt = console.rt
    inside = await asked(rt, "shop")
    outside_file = tmp_path / "elsewhere.jpg"
    outside_file.write_bytes(jpeg())
    outside = await asked(rt, "shop", screenshot=outside_file)
    # A path that climbs out of the run folder, and a link inside it that points outside.
    climbing = await asked(rt, "shop", screenshot=None)
    run_dir = rt.settings.runs_dir / climbing.run_id
    climbing_path = run_dir / "approvals" / ".." / ".." / ".." / ".." / outside_file.name
    linked = await asked(rt, "shop", screenshot=None)
    link = rt.settings.runs_dir / linked.run_id / "approvals" / "shot.jpg"
    link.symlink_to(outside_file)
    not_a_jpeg = await asked(rt, "shop", screenshot=None)
    notes = rt.settings.runs_dir / not_a_jpeg.run_id / "approvals" / "notes.txt"
    notes.write_text("not an image")
    async with rt.store.tx() as db:
        for request, path in ((climbing, climbing_path), (linked, link), (not_a_jpeg, notes)):
            await db.execute(
                "UPDATE approvals SET screenshot = ? WHERE id = ?", (str(path), request.id)
            )
    async with sign_in(console.url, console.tokens["ada"]) as http:
        good = await http.get(f"/console/approvals/{inside.id}/screenshot")
        assert good.status_code == 200 and good.content[:2] == b"\xff\xd8"
        assert good.headers["content-type"] == "image/jpeg"
        assert good.headers["x-content-type-options"] == "nosniff"
        for request in (outside, climbing, linked, not_a_jpeg):
            refused = await http.get(f"/console/approvals/{request.id}/screenshot")
            assert refused.status_code == 404, request.screenshot
            assert refused.content[:2] != b"\xff\xd8"
            page = (await http.get(f"/console/approvals/{request.id}")).text
            assert "/screenshot" not in page and "No screenshot" in page


async def test_signed_out_a_request_link_goes_through_sign_in_and_back(
    console: Console,
) -> None:
    request = await asked(console.rt, "shop")
    async with httpx.AsyncClient(base_url=console.url) as http:
        answer = await http.get(f"/console/approvals/{request.id}")
        assert answer.status_code == 303
        assert answer.headers["location"] == (
            f"/console/login?next=/console/approvals/{request.id}"
        )
        shot = await http.get(f"/console/approvals/{request.id}/screenshot")
        assert shot.status_code == 303 and not shot.content.startswith(b"\xff\xd8")


# --- a real run waiting on the console ------------------------------------------------------------


@pytest.mark.slow
async def test_a_real_gated_payment_waits_and_goes_on_once_approved_in_the_console(
    rt: Runtime, shop: PortalServer
) -> None:
    await console_profiles(rt, shop.url)
    inv = first_unpaid()
    task = parse_task(pay_task(shop.url, inv), "pay.yaml")
    async with served_console(rt) as console, sign_in(console.url, console.tokens["ada"]) as http:
        [run] = await console.pool.submit(ROOT, task, ["shop"])

        async def waiting() -> list[ApprovalRequest]:
            return await rt.services.approvals.list(ROOT, "pending", run.run_id)

        for comment in ("due today", "confirmed"):
            [request] = await until(waiting, 60, "the run to ask")
            page = await http.get(f"/console/approvals/{request.id}")
            text = page.text
            assert f"Pay {usd(inv)}" in text or "Confirm payment" in text
            assert "waiting_approval" in text
            # The run so far, in words: it signed in (the password as its placeholder).
            assert "Fill &#39;Password&#39; with &#39;{{secret:alice.password}}&#39;" in text
            for form in leak_forms(USERS["alice"].password):
                assert form.decode(errors="replace") not in text
            shot = await http.get(f"/console/approvals/{request.id}/screenshot")
            assert shot.status_code == 200 and shot.content[:2] == b"\xff\xd8"
            decided = await http.post(
                f"/console/approvals/{request.id}/decide",
                data=decide_form(text, "approve", comment),
            )
            assert decided.status_code == 303
            await until(lambda r=request: _gone_from(rt, r), 60, "the decision to be taken up")
        result = await console.pool.wait(run.run_id)
        assert result is not None and result.status == "succeeded", result.error
        assert result.output == "Paid"
        requests = await rt.approvals.list_requests(None, run.run_id)
        assert sorted((r.status, r.comment) for r in requests) == [
            ("executed", "confirmed"),
            ("executed", "due today"),
        ]
        final = (await http.get(f"/console/approvals/{requests[-1].id}")).text
        assert "executed</span>" in final and "Comment: due today" in final
        assert "succeeded" in final


async def _gone_from(rt: Runtime, request: ApprovalRequest) -> bool:
    return (await rt.approvals.get(request.id)).status not in ("pending", "approved")


# --- the webhook's link -------------------------------------------------------------------------


@pytest.fixture
def hook() -> Iterator[tuple[str, Received]]:
    """A webhook receiver: its URL and what it received."""
    with webhook_receiver() as receiver:
        yield receiver


SECRET = "hook-signing-key"


def announced(received: Received) -> list[dict[str, Any]]:
    events = []
    for headers, body in received:
        assert verify_headers(SECRET, headers, body)
        events.append(json.loads(body))
    return [e for e in events if e.get("event") == "approval.requested"]


@pytest.mark.slow
async def test_the_webhook_links_to_the_requests_page_which_a_signed_in_admin_opens(
    settings: Settings,
    shop: PortalServer,
    hook: tuple[str, Received],
    pool: BrowserPool,
) -> None:
    url, received = hook
    hooked = settings.model_copy(update={"approval_webhook": url, "webhook_secret": SECRET})
    inv = first_unpaid()
    task = parse_task(pay_task(shop.url, inv), "pay.yaml")
    async with Runtime.open(hooked, pool=pool) as rt:
        await console_profiles(rt, shop.url)
        async with served_console(rt) as console:
            # Without a public URL the notice carries no link (nowhere known to send a person).
            [plain] = await console.pool.submit(ROOT, task, ["shop"])
            first = await until(lambda: announced(received), 60, "the first notice")
            assert "url" not in first[0] and first[0]["run_id"] == plain.run_id
            console.pool.cancel(plain.run_id, "next")
            await console.pool.wait(plain.run_id)
            # As `corral serve` does at start: the console's address is known.
            rt.settings = rt.settings.model_copy(update={"public_url": console.url})
            [linked] = await console.pool.submit(ROOT, task, ["shop"])
            events = await until(lambda: announced(received)[1:], 60, "the second notice")
            event = events[0]
            assert event["run_id"] == linked.run_id
            assert event["url"] == f"{console.url}/console/approvals/{event['id']}"
            async with sign_in(console.url, console.tokens["ada"]) as http:
                page = await http.get(event["url"].removeprefix(console.url))
            assert page.status_code == 200
            assert f"Pay {usd(inv)}" in page.text and 'value="approve"' in page.text


def corral_serve(log: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """``corral serve`` as a process of its own (one worker, no grace), stderr to ``log``."""
    with log.open("w") as err:
        return subprocess.Popen(
            [*CORRAL, "serve", "--workers", "1", "--grace", "0", *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            start_new_session=True,
        )


@pytest.mark.slow
@pytest.mark.parametrize("flag", [True, False], ids=["--public-url", "own-address"])
async def test_corral_serve_links_webhooks_to_its_console(
    rt: Runtime,
    shop: PortalServer,
    hook: tuple[str, Received],
    tmp_path: Path,
    flag: bool,
) -> None:
    url, received = hook
    await console_profiles(rt, shop.url)
    token = (await console_users(rt))["ada"]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "CORRAL_PUBLIC_URL"}
    env.update(CORRAL_APPROVAL_WEBHOOK=url, CORRAL_WEBHOOK_SECRET=SECRET)
    if flag:
        env["CORRAL_PUBLIC_URL"] = "https://env.invalid"  # the flag wins over the environment
    public = f"http://localhost:{port}/" if flag else f"http://127.0.0.1:{port}"
    args = ["--public-url", public] if flag else []
    log = tmp_path / "serve.log"
    proc = corral_serve(log, env, "--port", str(port), *args)
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:

            async def started() -> httpx.Response | None:
                try:
                    return await api.post(
                        "/api/runs",
                        headers={"Authorization": f"Bearer {token}"},
                        json={
                            "task_yaml": yaml.safe_dump(pay_task(shop.url, first_unpaid())),
                            "profiles": ["shop"],
                        },
                    )
                except httpx.TransportError:
                    assert proc.poll() is None, log.read_text()
                    return None

            answer = await until(started, 60, "serve to take a run")
            assert answer.status_code in (200, 201, 202), answer.text
            [event] = await until(lambda: announced(received), 90, "the webhook")
        link = f"{public.rstrip('/')}/console/approvals/{event['id']}"
        assert event["url"] == link
        assert "env.invalid" not in json.dumps(event)
        # The link opens the request's page (once signed in) on that very server.
        async with sign_in(base, token) as http:
            page = await http.get(link.split(str(port), 1)[1])
        assert page.status_code == 200 and event["summary"].split("'")[1] in page.text
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 90)


def test_a_public_url_must_be_an_http_address(tmp_path: Path) -> None:
    home = {"CORRAL_HOME": str(tmp_path)}
    settings = Settings.from_env({**home, "CORRAL_PUBLIC_URL": " https://corral.example/team/ "})
    assert settings.public_url == "https://corral.example/team"
    assert Settings.from_env(home).public_url is None
    for bad in ("corral.example", "ftp://corral.example", "https://", "https://x/?a=1"):
        with pytest.raises(UserError, match="CORRAL_PUBLIC_URL: expected the http"):
            Settings.from_env({**home, "CORRAL_PUBLIC_URL": bad})
    refused = subprocess.run(
        [*CORRAL, "serve", "--port", "0", "--public-url", "javascript:alert(1)"],
        capture_output=True,
        text=True,
        env={**os.environ, "CORRAL_HOME": str(tmp_path)},
        timeout=60,
    )
    assert refused.returncode == 2, refused.stderr
    assert "--public-url: expected the http" in refused.stderr
    assert "javascript" not in refused.stderr
