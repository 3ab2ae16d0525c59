"""Tests for the demo billing portal in runtime/demo/portal."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from starlette.testclient import TestClient

from runtime.demo.portal import USERS, PortalServer, create_app, totp_code
from runtime.demo.portal.data import find_invoice, invoices_for, verify_totp

if TYPE_CHECKING:
    # Starlette's TestClient is built on httpx2, so its responses are httpx2 types.
    from httpx2 import Response

COOKIE = "portal_session"


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(), follow_redirects=False) as c:
        yield c


def login(client: TestClient, username: str, next_path: str = "") -> Response:
    """Sign in through the forms, including the TOTP step when the user has one."""
    user = USERS[username]
    form = {"username": username, "password": user.password, "next": next_path}
    response = client.post("/login", data=form)
    if user.totp_secret:
        assert response.status_code == 303
        assert response.headers["location"] == "/login/code"
        response = client.post("/login/code", data={"code": totp_code(user.totp_secret)})
    assert response.status_code == 303, response.text
    return response


def table_rows(html: str) -> list[str]:
    tbody = re.search(r"<tbody>(.*?)</tbody>", html, re.S)
    assert tbody is not None
    return re.findall(r"<tr>.*?</tr>", tbody.group(1), re.S)


def first_unpaid(username: str) -> str:
    return next(inv.number for inv in invoices_for(username) if not inv.paid)


def test_root_and_protected_pages_redirect_anonymous_users(client: TestClient) -> None:
    assert client.get("/").headers["location"] == "/login"
    response = client.get("/invoices?status=unpaid")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/invoices%3Fstatus%3Dunpaid"
    assert client.get("/dashboard").headers["location"] == "/login?next=/dashboard"


def test_login_page_contract(client: TestClient) -> None:
    html = client.get("/login").text
    assert "<title>Sign in - Acme Billing</title>" in html
    assert "<h1>Sign in</h1>" in html
    assert '<label for="username">Username</label>' in html
    assert '<input id="username" name="username" autocomplete="username"' in html
    assert '<label for="password">Password</label>' in html
    assert '<input type="password" id="password" name="password"' in html
    assert '<button type="submit">Sign in</button>' in html
    assert "<nav" not in html


def test_alice_login_sets_session_cookie_and_shows_dashboard(client: TestClient) -> None:
    response = login(client, "alice")
    assert response.headers["location"] == "/dashboard"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie

    html = client.get("/dashboard").text
    unpaid = [inv for inv in invoices_for("alice") if not inv.paid]
    assert "<title>Dashboard - Acme Billing</title>" in html
    assert "<h1>Welcome, Alice Anderson</h1>" in html
    assert "Account ACC-1001" in html
    assert f"Unpaid invoices: {len(unpaid)}" in html
    assert re.search(r"Amount due: \$[\d,]+\.\d\d<", html)
    assert '<a href="/invoices?status=unpaid">View unpaid invoices</a>' in html
    assert 'localStorage.setItem("portal.lastUser", "alice")' in html
    for label in ("Dashboard", "Invoices", "Documents", "Settings"):
        assert f">{label}</a>" in html
    assert '<button type="submit">Log out</button>' in html
    # Already signed in: the login page sends the user on.
    assert client.get("/login").headers["location"] == "/dashboard"


def test_login_honours_local_next_only(client: TestClient) -> None:
    assert login(client, "alice", "/invoices?page=2").headers["location"] == "/invoices?page=2"
    client.cookies.clear()
    assert login(client, "alice", "//evil.example/x").headers["location"] == "/dashboard"


def test_wrong_password_is_rejected(client: TestClient) -> None:
    response = client.post("/login", data={"username": "alice", "password": "nope"})
    assert response.status_code == 401
    assert '<p role="alert">Invalid username or password</p>' in response.text
    assert COOKIE not in response.headers.get("set-cookie", "")
    response = client.post("/login", data={"username": "mallory", "password": "x"})
    assert response.status_code == 401


def test_totp_login_for_carol(client: TestClient) -> None:
    secret = USERS["carol"].totp_secret
    assert secret is not None
    response = client.post("/login", data={"username": "carol", "password": "carol-pw-3"})
    assert response.headers["location"] == "/login/code"
    # Password alone is not a session.
    assert client.get("/dashboard").status_code == 303
    html = client.get("/login/code").text
    assert "<title>Two-factor code - Acme Billing</title>" in html
    assert "<h1>Enter your code</h1>" in html
    assert '<label for="code">Code</label>' in html
    assert 'inputmode="numeric" autocomplete="one-time-code"' in html
    assert '<button type="submit">Verify</button>' in html

    response = client.post("/login/code", data={"code": totp_code(secret)})
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    assert "Welcome, Carol Chen" in client.get("/dashboard").text


def test_wrong_totp_code_is_rejected(client: TestClient) -> None:
    secret = USERS["carol"].totp_secret
    assert secret is not None
    client.post("/login", data={"username": "carol", "password": "carol-pw-3"})
    wrong = f"{(int(totp_code(secret)) + 1) % 1_000_000:06d}"
    response = client.post("/login/code", data={"code": wrong})
    assert response.status_code == 401
    assert '<p role="alert">Invalid code</p>' in response.text
    assert client.get("/dashboard").status_code == 303
    # The pending step survives a typo.
    assert client.post("/login/code", data={"code": totp_code(secret)}).status_code == 303


def test_totp_window_allows_one_step_of_skew() -> None:
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    now = 1_800_000_000.0
    assert verify_totp(secret, totp_code(secret, now - 30), at=now)
    assert verify_totp(secret, totp_code(secret, now + 30), at=now)
    assert not verify_totp(secret, totp_code(secret, now - 90), at=now)
    assert not verify_totp(secret, "12345", at=now)
    # RFC 6238 test vector (SHA1 secret "12345678901234567890", T=59, 6 digits).
    assert totp_code("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 59) == "287082"


def test_users_have_distinct_invoices() -> None:
    numbers = {u: {inv.number for inv in invoices_for(u)} for u in USERS}
    assert [len(numbers[u]) for u in ("alice", "bob", "carol")] == [23, 87, 12]
    assert not numbers["alice"] & numbers["bob"]
    for username in USERS:
        assert sum(not inv.paid for inv in invoices_for(username)) >= 3
    assert invoices_for("alice") == invoices_for("alice")


def test_invoice_isolation(client: TestClient) -> None:
    alice_invoice = invoices_for("alice")[0].number
    login(client, "bob")
    for suffix in ("", "/pdf", "/print", "/pay"):
        response = client.get(f"/invoices/{alice_invoice}{suffix}")
        assert response.status_code == 404, suffix
    assert client.post(f"/invoices/{alice_invoice}/pay").status_code == 404
    assert alice_invoice not in client.get("/invoices?per_page=200").text
    own = invoices_for("bob")[0].number
    html = client.get(f"/invoices/{own}").text
    assert f"<title>Invoice {own} - Acme Billing</title>" in html
    assert f'<a href="/invoices/{own}/pdf">Download PDF</a>' in html
    assert f'<a href="/invoices/{own}/print" target="_blank">Printable view</a>' in html
    assert f"<title>Print {own}</title>" in client.get(f"/invoices/{own}/print").text


def test_invoice_table_and_pagination(client: TestClient) -> None:
    login(client, "bob")
    html = client.get("/invoices").text
    assert "<title>Invoices - Acme Billing</title>" in html
    assert "<caption>Invoices</caption>" in html
    headers = re.findall(r"<th>(.*?)</th>", html)
    assert headers == ["Number", "Date", "Due", "Description", "Amount", "Status"]
    rows = table_rows(html)
    assert len(rows) == 10
    newest = invoices_for("bob")[0].number
    assert f'<a href="/invoices/{newest}">{newest}</a>' in rows[0]
    assert re.search(r">\$[\d,]+\.\d\d</td><td>(Paid|Unpaid)</td>", rows[0])
    assert "Page 1 of 9" in html
    assert ">Previous</a>" not in html
    assert '<a rel="next" href="/invoices?status=all&amp;page=2&amp;per_page=10">Next</a>' in html

    last = client.get("/invoices?page=9").text
    assert "Page 9 of 9" in last
    assert len(table_rows(last)) == 7
    assert ">Previous</a>" in last and ">Next</a>" not in last
    assert "Page 9 of 9" in client.get("/invoices?page=99").text
    assert "Page 1 of 9" in client.get("/invoices?page=-3").text

    one_page = client.get("/invoices?per_page=100").text
    assert "Page 1 of 1" in one_page
    assert len(table_rows(one_page)) == 87
    assert ">Next</a>" not in one_page

    unpaid = client.get("/invoices?status=unpaid&per_page=5").text
    unpaid_count = sum(not inv.paid for inv in invoices_for("bob"))
    assert f"Page 1 of {-(-unpaid_count // 5)}" in unpaid
    assert all("<td>Unpaid</td>" in row for row in table_rows(unpaid))
    assert "status=unpaid&amp;page=2&amp;per_page=5" in unpaid
    for label in ("All", "Unpaid", "Paid"):
        assert f">{label}</a>" in unpaid


def test_pay_flow(client: TestClient) -> None:
    login(client, "alice")
    number = first_unpaid("alice")
    invoice = find_invoice("alice", number)
    assert invoice is not None
    amount = f"${invoice.amount_cents // 100:,}.{invoice.amount_cents % 100:02d}"
    unpaid_before = sum(not inv.paid for inv in invoices_for("alice"))

    html = client.get(f"/invoices/{number}").text
    assert f'<button type="submit">Pay {amount}</button>' in html
    confirm = client.get(f"/invoices/{number}/pay").text
    assert "<title>Confirm payment - Acme Billing</title>" in confirm
    assert f"Confirm payment of {amount} for invoice {number}" in confirm
    assert '<button type="submit">Confirm payment</button>' in confirm
    assert f'<a href="/invoices/{number}">Cancel</a>' in confirm

    response = client.post(f"/invoices/{number}/pay")
    assert response.status_code == 303
    assert response.headers["location"] == f"/invoices/{number}?paid=1"
    html = client.get(response.headers["location"]).text
    assert '<p role="status">Payment received</p>' in html
    assert ">Paid</dd>" in html
    assert "Pay $" not in html
    assert f"Unpaid invoices: {unpaid_before - 1}" in client.get("/dashboard").text

    again = client.post(f"/invoices/{number}/pay")
    assert again.status_code == 409
    assert "already been paid" in again.text
    assert client.get(f"/invoices/{number}/pay").status_code == 409
    paid_already = next(inv.number for inv in invoices_for("alice") if inv.paid)
    assert client.post(f"/invoices/{paid_already}/pay").status_code == 409


def test_pdf_download(client: TestClient) -> None:
    login(client, "alice")
    number = invoices_for("alice")[3].number
    response = client.get(f"/invoices/{number}/pdf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == f'attachment; filename="{number}.pdf"'
    body = response.content
    assert body.startswith(b"%PDF-1.4")
    assert body.rstrip().endswith(b"%%EOF")
    assert number.encode() in body
    # The xref offset must point at the xref table for readers to accept the file.
    startxref = int(body.rsplit(b"startxref\n", 1)[1].split(b"\n", 1)[0])
    assert body[startxref:].startswith(b"xref")


def test_logout_ends_server_side_session(client: TestClient) -> None:
    login(client, "alice")
    sid = client.cookies[COOKIE]
    response = client.post("/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?signed_out=1"
    assert f'{COOKIE}=""' in response.headers["set-cookie"]
    html = client.get("/login?signed_out=1").text
    assert '<p role="status">You have been signed out</p>' in html
    # Replaying the old cookie does not work: the row is gone, not just the cookie.
    client.cookies.set(COOKIE, sid)
    assert client.get("/dashboard").status_code == 303


def test_delete_account_flow(client: TestClient) -> None:
    login(client, "alice")
    sid = client.cookies[COOKIE]
    settings = client.get("/settings").text
    assert "<title>Settings - Acme Billing</title>" in settings
    assert "<h1>Account settings</h1>" in settings
    assert "Alice Anderson" in settings
    assert "Danger zone" in settings
    assert '<form method="get" action="/settings/delete">' in settings
    assert '<button type="submit">Delete account</button>' in settings

    confirm = client.get("/settings/delete").text
    assert '<button type="submit">Yes, delete my account</button>' in confirm
    response = client.post("/settings/delete")
    assert response.status_code == 200
    assert "<h1>Account deleted</h1>" in response.text
    assert "<nav" not in response.text

    client.cookies.set(COOKIE, sid)
    assert client.get("/dashboard").status_code == 303
    client.cookies.clear()
    response = client.post("/login", data={"username": "alice", "password": "alice-pw-1"})
    assert response.status_code == 403
    assert '<p role="alert">Account deleted</p>' in response.text
    # Other accounts are unaffected.
    login(client, "bob")


def test_documents_upload_is_per_user(client: TestClient) -> None:
    login(client, "alice")
    html = client.get("/documents").text
    assert "<title>Documents - Acme Billing</title>" in html
    assert '<label for="document">Document</label>' in html
    assert '<input type="file" id="document" name="document">' in html
    assert '<button type="submit">Upload</button>' in html
    files = {"document": ("C:\\Users\\a\\report.pdf", b"x" * 1234, "application/pdf")}
    response = client.post("/documents", files=files)
    assert response.status_code == 303
    html = client.get(response.headers["location"]).text
    assert '<p role="status">Uploaded report.pdf</p>' in html
    assert "<td>report.pdf</td><td>1,234 bytes</td>" in html
    assert client.post("/documents", data={"x": "y"}).status_code == 400

    client.cookies.clear()
    login(client, "bob")
    assert "report.pdf" not in client.get("/documents").text


def test_display_name_is_saved(client: TestClient) -> None:
    login(client, "bob")
    response = client.post("/settings", data={"display_name": "Bobby <b>"})
    assert response.headers["location"] == "/settings?saved=1"
    html = client.get("/settings?saved=1").text
    assert '<p role="status">Settings saved</p>' in html
    assert 'value="Bobby &lt;b&gt;"' in html
    assert client.post("/settings", data={"display_name": "  "}).status_code == 400


def test_misc_pages(client: TestClient) -> None:
    assert client.get("/healthz").text == "ok"
    slow = client.get("/slow?ms=20").text
    assert "<h1>Slow page</h1>" in slow
    popup = client.get("/popup-test").text
    assert ">Open window</button>" in popup
    assert "window.open('/invoices', '_blank')" in popup
    missing = client.get("/nope")
    assert missing.status_code == 404
    assert "<title>Not found - Acme Billing</title>" in missing.text


def test_session_persists_across_app_instances(tmp_path: Path) -> None:
    db = tmp_path / "state" / "portal.sqlite3"
    number = first_unpaid("alice")
    with TestClient(create_app(db), follow_redirects=False) as first:
        login(first, "alice")
        sid = first.cookies[COOKIE]
        assert first.post(f"/invoices/{number}/pay").status_code == 303
    # A new app instance (as after a restart) accepts the cookie and remembers the payment.
    with TestClient(create_app(db), follow_redirects=False, cookies={COOKIE: sid}) as second:
        response = second.get("/dashboard")
        assert response.status_code == 200
        assert "Welcome, Alice Anderson" in response.text
        assert second.post(f"/invoices/{number}/pay").status_code == 409
    with TestClient(create_app(db), follow_redirects=False, cookies={COOKIE: "forged"}) as third:
        assert third.get("/dashboard").status_code == 303


def test_portal_server_over_loopback(tmp_path: Path) -> None:
    threads_before = set(threading.enumerate())
    with PortalServer(db_path=tmp_path / "portal.db") as server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
        assert server.port != 0
        with httpx.Client(base_url=server.url, follow_redirects=True) as http:
            assert http.get("/healthz").text == "ok"
            response = http.post("/login", data={"username": "alice", "password": "alice-pw-1"})
            assert response.status_code == 200  # httpx followed the 303
            assert str(response.url) == f"{server.url}/dashboard"
            assert "Welcome, Alice Anderson" in response.text
        port = server.port
    assert set(threading.enumerate()) <= threads_before
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
