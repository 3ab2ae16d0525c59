"""Signing in to the console: an API token becomes an HttpOnly, SameSite session cookie; every
form needs the session's CSRF token; sign-out and a revoked token end the session; the sign-in
page never sends a browser to another site; pages carry a policy that runs no inline script."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from runtime import Runtime
from tests.support.console import ROOT, Console, csrf_of, served_console, sign_in


@pytest.fixture
async def console(rt: Runtime) -> AsyncIterator[Console]:
    async with served_console(rt) as served:
        yield served


async def test_signed_out_pages_go_to_sign_in_and_back(console: Console) -> None:
    async with httpx.AsyncClient(base_url=console.url) as http:
        answer = await http.get("/console/runs?x=1")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/login?next=/console/runs%3Fx%3D1"
        root = await http.get("/")
        assert root.status_code == 303 and root.headers["location"] == "/console/runs"
        form = await http.get(answer.headers["location"])
    assert form.status_code == 200
    assert 'name="next" value="/console/runs?x=1"' in form.text
    assert form.headers["content-security-policy"].startswith("default-src 'none'")
    assert "script-src 'self'" in form.headers["content-security-policy"]
    assert form.headers["x-frame-options"] == "DENY"


async def test_a_token_becomes_an_httponly_samesite_cookie(console: Console) -> None:
    async with sign_in(console.url, console.tokens["ada"]) as http:
        cookie = next(c for c in http.cookies.jar if c.name == "corral_session")
        assert cookie.path == "/console"
        assert cookie.has_nonstandard_attr("HttpOnly")
        assert (cookie.get_nonstandard_attr("SameSite") or "").lower() == "lax"
        # The cookie is not the token: the token never reaches the browser's storage.
        assert cookie.value != console.tokens["ada"] and console.tokens["ada"] not in cookie.value
        page = await http.get("/console/runs")
        assert page.status_code == 200, page.text
        assert "ada" in page.text and console.tokens["ada"] not in page.text
    # The sign-in is in the audit log, naming the token's id, never its value.
    entries = await console.rt.services.audit.list(ROOT, limit=20)
    signed = [e for e in entries if e.action == "console.sign_in"]
    assert [e.actor for e in signed] == ["ada"]


@pytest.mark.parametrize(
    "token",
    ["", "crl_not-a-token", "not even a prefix", "Bearer crl_x"],
)
async def test_a_bad_token_signs_nobody_in(console: Console, token: str) -> None:
    async with httpx.AsyncClient(base_url=console.url) as http:
        form = await http.get("/console/login")
        nonce = form.text.split('name="nonce" value="')[1].split('"')[0]
        answer = await http.post("/console/login", data={"token": token, "nonce": nonce})
        assert answer.status_code == 401
        assert "corral_session" not in answer.headers.get("set-cookie", "")
        assert (await http.get("/console/runs")).status_code == 303


async def test_a_sign_in_form_posted_from_elsewhere_is_refused(console: Console) -> None:
    # Login CSRF: without the nonce cookie the form carries, no session is made.
    async with httpx.AsyncClient(base_url=console.url) as http:
        answer = await http.post(
            "/console/login", data={"token": console.tokens["ada"], "nonce": "guessed"}
        )
    assert answer.status_code == 403
    assert "corral_session" not in answer.headers.get("set-cookie", "")


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.test/console/runs",
        "//evil.test/console/runs",
        "/\\evil.test",
        "javascript:alert(1)",
        "/api/runs",
    ],
)
async def test_sign_in_never_redirects_off_the_console(console: Console, target: str) -> None:
    async with httpx.AsyncClient(base_url=console.url) as http:
        form = await http.get("/console/login", params={"next": target})
        nonce = form.text.split('name="nonce" value="')[1].split('"')[0]
        answer = await http.post(
            "/console/login",
            data={"token": console.tokens["ada"], "nonce": nonce, "next": target},
        )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/runs"


async def test_forms_need_the_sessions_csrf_token(console: Console) -> None:
    async with sign_in(console.url, console.tokens["ada"]) as http:
        page = await http.get("/console/runs")
        token = csrf_of(page.text)
        for data in ({}, {"csrf": ""}, {"csrf": token[:-1] + ("A" if token[-1] != "A" else "B")}):
            refused = await http.post("/console/logout", data=data)
            assert refused.status_code == 403, data
        # The right token, but from another site's page: refused too.
        elsewhere = await http.post(
            "/console/logout", data={"csrf": token}, headers={"Origin": "https://evil.test"}
        )
        assert elsewhere.status_code == 403
        assert (await http.get("/console/runs")).status_code == 200  # still signed in
        out = await http.post("/console/logout", data={"csrf": token})
        assert out.status_code == 303
        # The old cookie value no longer works, even sent by hand.
        assert (await http.get("/console/runs")).status_code == 303


async def test_another_sessions_csrf_token_does_not_do(console: Console) -> None:
    async with (
        sign_in(console.url, console.tokens["ada"]) as ada,
        sign_in(console.url, console.tokens["root"]) as root,
    ):
        roots = csrf_of((await root.get("/console/runs")).text)
        assert (await ada.post("/console/logout", data={"csrf": roots})).status_code == 403


async def test_a_revoked_token_ends_its_sessions(console: Console) -> None:
    async with sign_in(console.url, console.tokens["bob"]) as http:
        assert (await http.get("/console/runs")).status_code == 200
        bob = await console.rt.services.users.actor(console.tokens["bob"])
        assert bob.token_id is not None
        await console.rt.services.users.revoke_token(ROOT, bob.token_id)
        assert (await http.get("/console/runs")).status_code == 303


async def test_the_event_stream_needs_a_session_and_ends_with_it(console: Console) -> None:
    async with httpx.AsyncClient(base_url=console.url) as anonymous:
        assert (await anonymous.get("/console/events")).status_code == 303
    async with sign_in(console.url, console.tokens["bob"]) as http:
        kinds: list[str] = []
        async with http.stream("GET", "/console/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            bob = await console.rt.services.users.actor(console.tokens["bob"])
            assert bob.token_id is not None

            async def read() -> None:
                async for line in stream.aiter_lines():
                    if line.startswith("event:"):
                        kinds.append(line.split(":", 1)[1].strip())
                        if kinds[-1] == "approvals":
                            await console.rt.services.users.revoke_token(ROOT, bob.token_id)
                        if kinds[-1] == "signed_out":
                            return

            await asyncio.wait_for(read(), 20)
        assert kinds[0] in ("approvals", "runs") and kinds[-1] == "signed_out"
