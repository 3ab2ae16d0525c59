"""The egress allowlist: a per-session filtering HTTP proxy on 127.0.0.1.

Why a proxy: ``context.route`` sees what the page asks for, not what the network stack does; the
target of an HTTP redirect never reaches a route handler, so a redirect from an allowed host to
any other host goes through. ``--host-resolver-rules`` works below the page but only for names:
an IP literal (``http://10.0.0.5/``) needs no resolving and is never checked, and the rules are
per browser process, not per session. A proxy that the session's browser context must use sees
every connection that context opens (navigations and their redirects, popups, iframes, workers,
fetch/XHR, WebSockets, form posts, IP literals) and decides each one on the host name the browser
asked for. WebRTC's UDP is the one thing an HTTP proxy cannot see; ``BASE_ARGS`` in ``pool.py``
forbids non-proxied UDP for that reason.

The proxy speaks just enough HTTP/1.1 to route: it parses the request head (with ``h11``), then
either opens a tunnel (``CONNECT host:port``, used by Chromium for https, wss and ws) or forwards
one plain-HTTP request (``GET http://host/path``) in origin form with ``Connection: close``. After
the head it only pipes bytes, always to the one upstream it decided on: a client that reuses the
connection for another host still reaches only the first one, so a second host always needs a new
connection and a new decision. The decision comes before any lookup, so a refused name is never
resolved by the proxy either (no DNS side channel from here).

Chaining: given an ``upstream`` (the profile's own ``http://`` proxy, e.g. a corporate or
residential one), the proxy decides exactly as above and then reaches an allowed host through that
proxy instead of directly: ``CONNECT host:port`` for a tunnel (only a 2xx answer opens it; any
other answer becomes a 502 for the browser), or the plain-HTTP request in absolute form
(``GET http://host:port/path``), both with ``Proxy-Authorization: Basic`` when the upstream has a
username or password. The browser only ever sees this proxy and never holds the upstream's
credentials; a 407 from the upstream reaches it as a 502 saying so. The target sent upstream is
built from the host and port that were decided on, not copied from the request, so the upstream
cannot read it differently. With an upstream, ``host_map`` does not apply (the upstream resolves
names) and the upstream's ``bypass`` is not applied either: every allowed connection goes through
it. ``https://`` and ``socks`` upstream proxies are not supported (EgressConflictError).

Allowlist entries and how hosts match: see ``profiles.allowlist``.

Errors (both ``UserError``, exit 2)::

    UserError
    ├── InvalidAllowlistError    an allowlist or host_map entry that cannot be parsed
    └── EgressConflictError      an upstream proxy the allowlist cannot chain through
                                 (not http://)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import h11
from pydantic import BaseModel, ConfigDict, Field

from .allowlist import parse_allowlist, parse_host_map
from .errors import UserError
from .hosts import HostRule, normal_host, parse_port, split_authority
from .settings import ProxySettings

__all__ = [
    "BROWSER_SERVICE_HOSTS",
    "PROXY_BYPASS",
    "BlockedRequest",
    "EgressConflictError",
    "EgressProxy",
]

log = logging.getLogger(__name__)

BROWSER_SERVICE_HOSTS = frozenset(
    {
        "content-autofill.googleapis.com",
        "update.googleapis.com",
        "optimizationguide-pa.googleapis.com",
        "clients2.google.com",
        "accounts.google.com",
    }
)
"""Hosts Chromium itself calls (autofill, updates): blocked like any other, but not the page's
doing, so a model is not told about them (the step record still lists them)."""

PROXY_BYPASS = "<-loopback>"
"""Chromium's bypass rule that removes its implicit bypass of localhost and loopback addresses."""

_MAX_HEAD = 64 * 1024
_MAX_URL = 2048
_MAX_BLOCKED = 1000
_HEAD_TIMEOUT_S = 30.0
_CONNECT_TIMEOUT_S = 10.0
_LINGER_S = 10.0
_CHUNK = 64 * 1024
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "proxy-connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
        "host",
    }
)
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?:[ \r]|\Z)")


class EgressConflictError(UserError):
    """An egress allowlist asked for with an upstream proxy it cannot chain through."""


class BlockedRequest(BaseModel):
    """One connection or request the proxy refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    host: str = Field(description="the host the browser asked for, normalised")
    port: int
    method: str = Field(description="CONNECT for tunnels (https, wss, ws), else the HTTP method")
    url: str | None = Field(None, description=f"plain HTTP only; at most {_MAX_URL} characters")
    at: datetime


# --- the proxy --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    host: str
    """Normalised: the host the allowlist decides on."""
    port: int
    request: h11.Request | None = None
    """Plain HTTP: the browser's request; None for CONNECT."""
    path: str = ""
    """Plain HTTP: the origin-form target (path and query)."""
    netloc: str = ""
    """Plain HTTP: the URL's authority as the browser wrote it."""
    url: str | None = None

    @property
    def authority(self) -> str:
        """``host:port`` from the decided host (``:80`` left out for plain HTTP)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.request is not None and self.port == 80 else f"{host}:{self.port}"


class _BadRequest(Exception):
    """The client sent something that is not a proxy request we handle."""


class _Unreachable(Exception):
    """The target (or the upstream proxy) could not be reached; the text is for the browser."""


def _parse_request(head: bytes) -> tuple[str, _Target]:
    """The method and the upstream target of a request head; raises _BadRequest."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
    try:
        conn.receive_data(head)
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        raise _BadRequest(str(exc)) from exc
    if not isinstance(event, h11.Request):
        raise _BadRequest("incomplete request head")
    method = event.method.decode("ascii")
    try:
        target = event.target.decode("ascii")
    except UnicodeDecodeError as exc:
        raise _BadRequest("non-ASCII request target") from exc
    if method == "CONNECT":
        split = split_authority(target)
        host = port = None
        if split is not None and split[1] is not None:
            host, port = normal_host(split[0]), parse_port(split[1])
        if host is None or port is None:
            raise _BadRequest(f"CONNECT needs host:port, got {target[:100]!r}")
        return method, _Target(host, port)
    parts = urlsplit(target)
    if parts.scheme.lower() != "http" or not parts.netloc or "@" in parts.netloc:
        raise _BadRequest(f"expected an absolute http:// URL, got {target[:100]!r}")
    split = split_authority(parts.netloc)
    host = port = None
    if split is not None:
        host = normal_host(split[0])
        port = 80 if split[1] is None else parse_port(split[1])
    if host is None or port is None:
        raise _BadRequest(f"bad host in {target[:100]!r}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return method, _Target(host, port, event, path, parts.netloc, target)


def _request_head(
    event: h11.Request, target: str, authority: str, extra: Sequence[str] = ()
) -> bytes:
    """The request head to send on: ``target``, Host ``authority``, the end-to-end headers,
    ``extra`` lines, and ``Connection: close`` (one request per connection)."""
    named = {
        token.strip().lower()
        for name, value in event.headers.raw_items()
        if name.lower() == b"connection"
        for token in value.decode("latin-1").split(",")
    }
    lines = [
        f"{event.method.decode()} {target} HTTP/{event.http_version.decode()}",
        f"Host: {authority}",
    ]
    for name, value in event.headers.raw_items():
        key = name.decode("ascii")
        if key.lower() not in _HOP_BY_HOP and key.lower() not in named:
            lines.append(f"{key}: {value.decode('latin-1')}")
    lines.extend(extra)
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _status(head: bytes) -> int | None:
    """The status code of a response head (or its first line); None if it is not HTTP/1.x."""
    match = _STATUS_LINE.match(head)
    return int(match[1]) if match else None


def _refusal(target: _Target, status: int | None) -> str:
    """The browser's text for an upstream proxy that would not serve ``target``."""
    where = f"{target.host}:{target.port}"
    if status == 407:
        return (
            f"corral: the upstream proxy refused {where} with 407 Proxy Authentication Required; "
            "check the username and password of the profile's proxy"
        )
    if status is None:
        return f"corral: the upstream proxy gave no valid answer for {where}"
    return f"corral: the upstream proxy refused {where} with status {status}"


@dataclass(frozen=True)
class _Upstream:
    """The ``http://`` proxy that allowed traffic is chained through."""

    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)
    """``Basic ...`` for Proxy-Authorization: never logged, shown or raised."""

    @classmethod
    def parse(cls, settings: ProxySettings) -> _Upstream:
        """Check ``settings`` can be chained through; raises EgressConflictError (no secrets)."""
        server = settings.server.strip()
        # Playwright reads "host:port" as an http:// proxy; so does this.
        parts = urlsplit(server if "://" in server else f"http://{server}")
        scheme = parts.scheme.lower()
        if scheme != "http":
            raise EgressConflictError(
                f"the proxy is {scheme}://, and an egress allowlist can only be chained through "
                "an http:// proxy (not https:// or socks): use an http:// proxy for this "
                "profile, or remove the allowlist (allowed_domains)"
            )
        if "@" in parts.netloc:
            # Not echoed: the URL holds a password.
            raise EgressConflictError(
                "the proxy's server URL contains credentials; give them as username and password"
            )
        try:
            port = parts.port or 80
        except ValueError:
            port = 0
        if not parts.hostname or not port:
            raise EgressConflictError(f"the proxy server {server!r} is not http://host:port")
        authorization = None
        if settings.username or settings.password:
            pair = f"{settings.username or ''}:{settings.password or ''}".encode()
            authorization = "Basic " + base64.b64encode(pair).decode("ascii")
        return cls(parts.hostname, port, authorization)

    @property
    def headers(self) -> list[str]:
        """Header lines for every request to this proxy."""
        auth = self.authorization
        return [] if auth is None else [f"Proxy-Authorization: {auth}"]


def _response(status: int, reason: str, body: str) -> bytes:
    data = body.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
    ).encode() + data


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close ``dst`` so its peer sees the end too."""
    with contextlib.suppress(OSError, RuntimeError):
        while data := await src.read(_CHUNK):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()


async def _copy_response(
    src: asyncio.StreamReader, dst: asyncio.StreamWriter, target: _Target
) -> None:
    """:func:`_copy` for an upstream proxy's answer: its 407 becomes a 502, since the browser has
    no credentials for it (and would take the 407 as this proxy's own)."""
    with contextlib.suppress(
        OSError, RuntimeError, asyncio.IncompleteReadError, asyncio.LimitOverrunError
    ):
        first = await src.readuntil(b"\r\n")
        if _status(first) == 407:
            log.info("egress: the upstream proxy refused %s with 407", target.authority)
            dst.write(_response(502, "Bad Gateway", _refusal(target, 407)))
            await dst.drain()
            if dst.can_write_eof():
                dst.write_eof()
            return
        dst.write(first)
    await _copy(src, dst)


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    upstream: asyncio.StreamWriter,
    response_of: _Target | None = None,
) -> None:
    """Pipe both ways until the upstream is done (or the client is, plus a grace period).

    With ``response_of``, the upstream is a proxy answering a plain-HTTP request for that target.
    """
    async with asyncio.TaskGroup() as group:
        down = group.create_task(
            _copy(up_reader, writer)
            if response_of is None
            else _copy_response(up_reader, writer, response_of)
        )
        up = group.create_task(_copy(reader, upstream))
        await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
        if not down.done():
            # The client is done sending; give the upstream a while to finish answering.
            await asyncio.wait({down}, timeout=_LINGER_S)
        # The upstream has finished: the exchange is over, whatever the client still sends.
        down.cancel()
        up.cancel()


async def _close(writer: asyncio.StreamWriter) -> None:
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        writer.transport.abort()  # shutting down: do not wait for a peer to read
        return
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 2.0)
    except (OSError, TimeoutError):
        writer.transport.abort()


async def _open_tunnel(
    up_reader: asyncio.StreamReader,
    upstream: asyncio.StreamWriter,
    target: _Target,
    proxy: _Upstream,
) -> None:
    """Ask the upstream proxy for a tunnel to ``target``; raises _Unreachable unless 2xx."""
    lines = [f"CONNECT {target.authority} HTTP/1.1", f"Host: {target.authority}"]
    upstream.write(("\r\n".join([*lines, *proxy.headers]) + "\r\n\r\n").encode("latin-1"))
    try:
        async with asyncio.timeout(_HEAD_TIMEOUT_S):
            await upstream.drain()
            head = await up_reader.readuntil(b"\r\n\r\n")
    except (
        OSError,
        TimeoutError,
        asyncio.IncompleteReadError,
        asyncio.LimitOverrunError,
    ) as exc:
        log.info("egress: no tunnel from the upstream proxy to %s (%r)", target.authority, exc)
        raise _Unreachable(_refusal(target, None)) from None
    status = _status(head)
    if status is None or not 200 <= status < 300:
        log.info("egress: the upstream proxy refused %s with %s", target.authority, status)
        raise _Unreachable(_refusal(target, status))


class EgressProxy:
    """An allowlisting HTTP proxy for one browser session; use :meth:`start`."""

    def __init__(
        self,
        rules: Sequence[HostRule],
        host_map: Mapping[str, str] | None = None,
        upstream: ProxySettings | None = None,
        also: Sequence[HostRule] = (),
    ):
        self.rules = tuple(rules)
        self.also = tuple(also)
        """A second allowlist a host must also match (the profile's, under a task's)."""
        self.host_map = parse_host_map(host_map)
        """Fixed addresses for host names; not used with an upstream proxy (it resolves)."""
        self.blocked: deque[BlockedRequest] = deque(maxlen=_MAX_BLOCKED)
        """Refused requests since the last :meth:`drain_blocked` (the newest 1000)."""
        self.allowed_total = 0
        """Connections and requests let through since start."""
        self.blocked_total = 0
        self.port = 0
        self._upstream = None if upstream is None else _Upstream.parse(upstream)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @classmethod
    def start(
        cls,
        allowed: Sequence[str],
        host_map: Mapping[str, str] | None = None,
        upstream: ProxySettings | None = None,
        also: Sequence[str] = (),
    ) -> AbstractAsyncContextManager[EgressProxy]:
        """Serve on 127.0.0.1 (random port) for an ``async with``; closes the server and every
        tunnel on exit. With ``upstream``, allowed traffic goes through that http:// proxy.
        With ``also``, a host must be on both lists (a task's and its profile's).

        The arguments are checked at once (InvalidAllowlistError, EgressConflictError), before
        anything is served.
        """
        rules, extra = parse_allowlist(allowed), parse_allowlist(also)
        return cls(rules, host_map, upstream, extra)._serving([*allowed, *also])

    @asynccontextmanager
    async def _serving(self, allowed: Sequence[str]) -> AsyncIterator[EgressProxy]:
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0, limit=_MAX_HEAD)
        self.port = server.sockets[0].getsockname()[1]
        via = "" if self._upstream is None else f" via {self._upstream.host}:{self._upstream.port}"
        log.debug("egress proxy on %s for %s%s", self.url, list(allowed), via)
        try:
            yield self
        finally:
            await self._shutdown(server)

    async def _shutdown(self, server: asyncio.Server) -> None:
        # Not a TaskGroup around the ``yield``: on Python 3.11 it would wrap any exception of
        # the session body in an ExceptionGroup. The handler tasks are owned here instead.
        self._closing = True
        server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    @property
    def url(self) -> str:
        """The proxy's address for Playwright's ``proxy={"server": ...}``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        """Client connections currently being handled (tunnels included)."""
        return len(self._tasks)

    def allows(self, host: str, port: int) -> bool:
        """True if the allowlist lets the browser reach ``host`` on ``port``."""
        normal = normal_host(host if ":" not in host or host.startswith("[") else f"[{host}]")
        return normal is not None and self._allows(normal, port)

    def _allows(self, host: str, port: int) -> bool:
        return any(rule.matches(host, port) for rule in self.rules) and (
            not self.also or any(rule.matches(host, port) for rule in self.also)
        )

    def drain_blocked(self) -> list[BlockedRequest]:
        """What was blocked since the last call; clears the list."""
        drained = list(self.blocked)
        self.blocked.clear()
        return drained

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing:
            writer.transport.abort()
            return
        task = asyncio.create_task(self._handle(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except Exception:
            # A bug in one connection must not reach the event loop or other connections.
            log.exception("egress proxy: unexpected error")
        finally:
            await _close(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Handle one client connection: one decision, then at most one upstream."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_TIMEOUT_S)
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                await self._reject(reader, writer, 400, "Bad Request", "incomplete request head")
            return
        except asyncio.LimitOverrunError:
            await self._reject(reader, writer, 400, "Bad Request", "request head over 64 kB")
            return
        except (TimeoutError, OSError):
            return
        try:
            method, target = _parse_request(head)
        except _BadRequest as exc:
            log.debug("egress proxy: bad request: %s", exc)
            await self._reject(reader, writer, 400, "Bad Request", "not a proxy request")
            return
        if not self._allows(target.host, target.port):
            self.blocked_total += 1
            url = target.url[:_MAX_URL] if target.url is not None else None
            at = datetime.now(UTC)
            self.blocked.append(
                BlockedRequest(host=target.host, port=target.port, method=method, url=url, at=at)
            )
            # Debug, not info: Chromium's own background calls are refused here all the time;
            # callers read ``blocked`` for what matters to a run.
            log.debug("egress blocked: %s %s:%d", method, target.host, target.port)
            body = f"corral: {target.host}:{target.port} is not on this session's egress allowlist"
            await self._reject(reader, writer, 403, "Forbidden", body)
            return
        try:
            up_reader, upstream = await self._open(target)
        except _Unreachable as exc:
            await self._reject(reader, writer, 502, "Bad Gateway", str(exc))
            return
        self.allowed_total += 1
        try:
            if target.request is None:
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await _pipe(reader, writer, up_reader, upstream)
            elif self._upstream is None:
                upstream.write(_request_head(target.request, target.path, target.netloc))
                await _pipe(reader, writer, up_reader, upstream)
            else:
                # Absolute form, from the host and port decided on (not the browser's spelling).
                url = f"http://{target.authority}{target.path}"
                upstream.write(
                    _request_head(target.request, url, target.authority, self._upstream.headers)
                )
                await _pipe(reader, writer, up_reader, upstream, response_of=target)
        finally:
            await _close(upstream)

    async def _open(self, target: _Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to ``target``, or to the upstream proxy (with the tunnel open for a
        CONNECT); raises _Unreachable."""
        if self._upstream is None:
            address, port = self.host_map.get(target.host, target.host), target.port
        else:
            address, port = self._upstream.host, self._upstream.port
        try:
            up_reader, upstream = await asyncio.wait_for(
                asyncio.open_connection(address, port, limit=_MAX_HEAD), _CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError) as exc:
            via = "" if self._upstream is None else f" (upstream proxy {address}:{port})"
            log.info("egress: %s:%d unreachable%s: %s", target.host, target.port, via, exc)
            where = "the upstream proxy" if via else f"{target.host}:{target.port}"
            raise _Unreachable(f"corral: could not connect to {where}") from None
        if self._upstream is not None and target.request is None:
            try:
                await _open_tunnel(up_reader, upstream, target, self._upstream)
            except BaseException:
                await _close(upstream)
                raise
        return up_reader, upstream

    async def _reject(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        status: int,
        reason: str,
        body: str,
    ) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            writer.write(_response(status, reason, body))
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            # Read what the client still sends (a POST body, the rest of a huge head) before
            # closing: closing with unread data resets the connection and can lose the answer.
            with contextlib.suppress(TimeoutError, asyncio.LimitOverrunError, ValueError):
                async with asyncio.timeout(1.0):
                    for _ in range(16):
                        if not await reader.read(_CHUNK):
                            break
