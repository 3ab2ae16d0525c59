"""HTTP/1 plumbing of the egress proxy: reading a request head, the decided target, the
upstream proxy, answering, and piping bytes (see :mod:`profiles.egress` for the why).

Everything here acts only on what :class:`~profiles.egress.EgressProxy` already decided; nothing
here decides whether a host is allowed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h11

from .errors import EgressConflictError
from .hosts import normal_host, parse_port, split_authority
from .settings import ProxySettings

log = logging.getLogger("profiles.egress")

__all__ = [
    "CHUNK",
    "CONNECT_TIMEOUT_S",
    "HEAD_TIMEOUT_S",
    "HOP_BY_HOP",
    "LINGER_S",
    "MAX_HEAD",
    "MAX_URL",
    "STATUS_LINE",
    "BadRequest",
    "Target",
    "Unreachable",
    "Upstream",
    "close_writer",
    "copy_response",
    "copy_stream",
    "open_tunnel",
    "parse_request",
    "pipe",
    "refusal",
    "request_head",
    "response_bytes",
    "status_of",
]

MAX_HEAD = 64 * 1024
MAX_URL = 2048
HEAD_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
LINGER_S = 10.0
CHUNK = 64 * 1024
HOP_BY_HOP = frozenset(
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
STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?:[ \r]|\Z)")


@dataclass(frozen=True)
class Target:
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


class BadRequest(Exception):
    """The client sent something that is not a proxy request we handle."""


class Unreachable(Exception):
    """The target (or the upstream proxy) could not be reached; the text is for the browser."""


def parse_request(head: bytes) -> tuple[str, Target]:
    """The method and the upstream target of a request head; raises BadRequest."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    try:
        conn.receive_data(head)
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        raise BadRequest(str(exc)) from exc
    if not isinstance(event, h11.Request):
        raise BadRequest("incomplete request head")
    method = event.method.decode("ascii")
    try:
        target = event.target.decode("ascii")
    except UnicodeDecodeError as exc:
        raise BadRequest("non-ASCII request target") from exc
    if method == "CONNECT":
        split = split_authority(target)
        host = port = None
        if split is not None and split[1] is not None:
            host, port = normal_host(split[0]), parse_port(split[1])
        if host is None or port is None:
            raise BadRequest(f"CONNECT needs host:port, got {target[:100]!r}")
        return method, Target(host, port)
    parts = urlsplit(target)
    if parts.scheme.lower() != "http" or not parts.netloc or "@" in parts.netloc:
        raise BadRequest(f"expected an absolute http:// URL, got {target[:100]!r}")
    split = split_authority(parts.netloc)
    host = port = None
    if split is not None:
        host = normal_host(split[0])
        port = 80 if split[1] is None else parse_port(split[1])
    if host is None or port is None:
        raise BadRequest(f"bad host in {target[:100]!r}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return method, Target(host, port, event, path, parts.netloc, target)


def request_head(
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
        if key.lower() not in HOP_BY_HOP and key.lower() not in named:
            lines.append(f"{key}: {value.decode('latin-1')}")
    lines.extend(extra)
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def status_of(head: bytes) -> int | None:
    """The status code of a response head (or its first line); None if it is not HTTP/1.x."""
    match = STATUS_LINE.match(head)
    return int(match[1]) if match else None


def refusal(target: Target, status: int | None) -> str:
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
class Upstream:
    """The ``http://`` proxy that allowed traffic is chained through."""

    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)
    """``Basic ...`` for Proxy-Authorization: never logged, shown or raised."""

    @classmethod
    def parse(cls, settings: ProxySettings) -> Upstream:
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


def response_bytes(status: int, reason: str, body: str) -> bytes:
    data = body.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
    ).encode() + data


async def copy_stream(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close ``dst`` so its peer sees the end too."""
    with contextlib.suppress(OSError, RuntimeError):
        while data := await src.read(CHUNK):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()


async def copy_response(
    src: asyncio.StreamReader, dst: asyncio.StreamWriter, target: Target
) -> None:
    """:func:`copy_stream` for an upstream proxy's answer: its 407 becomes a 502, since the
    browser has no credentials for it (and would take the 407 as this proxy's own)."""
    with contextlib.suppress(
        OSError, RuntimeError, asyncio.IncompleteReadError, asyncio.LimitOverrunError
    ):
        first = await src.readuntil(b"\r\n")
        if status_of(first) == 407:
            log.info("egress: the upstream proxy refused %s with 407", target.authority)
            dst.write(response_bytes(502, "Bad Gateway", refusal(target, 407)))
            await dst.drain()
            if dst.can_write_eof():
                dst.write_eof()
            return
        dst.write(first)
    await copy_stream(src, dst)


async def pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    upstream: asyncio.StreamWriter,
    response_of: Target | None = None,
) -> None:
    """Pipe both ways until the upstream is done (or the client is, plus a grace period).

    With ``response_of``, the upstream is a proxy answering a plain-HTTP request for that target.
    """
    async with asyncio.TaskGroup() as group:
        down = group.create_task(
            copy_stream(up_reader, writer)
            if response_of is None
            else copy_response(up_reader, writer, response_of)
        )
        up = group.create_task(copy_stream(reader, upstream))
        await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
        if not down.done():
            # The client is done sending; give the upstream a while to finish answering.
            await asyncio.wait({down}, timeout=LINGER_S)
        # The upstream has finished: the exchange is over, whatever the client still sends.
        down.cancel()
        up.cancel()


async def close_writer(writer: asyncio.StreamWriter) -> None:
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        writer.transport.abort()  # shutting down: do not wait for a peer to read
        return
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 2.0)
    except (OSError, TimeoutError):
        writer.transport.abort()


async def open_tunnel(
    up_reader: asyncio.StreamReader,
    upstream: asyncio.StreamWriter,
    target: Target,
    proxy: Upstream,
) -> None:
    """Ask the upstream proxy for a tunnel to ``target``; raises Unreachable unless 2xx."""
    lines = [f"CONNECT {target.authority} HTTP/1.1", f"Host: {target.authority}"]
    upstream.write(("\r\n".join([*lines, *proxy.headers]) + "\r\n\r\n").encode("latin-1"))
    try:
        async with asyncio.timeout(HEAD_TIMEOUT_S):
            await upstream.drain()
            head = await up_reader.readuntil(b"\r\n\r\n")
    except (
        OSError,
        TimeoutError,
        asyncio.IncompleteReadError,
        asyncio.LimitOverrunError,
    ) as exc:
        log.info("egress: no tunnel from the upstream proxy to %s (%r)", target.authority, exc)
        raise Unreachable(refusal(target, None)) from None
    status = status_of(head)
    if status is None or not 200 <= status < 300:
        log.info("egress: the upstream proxy refused %s with %s", target.authority, status)
        raise Unreachable(refusal(target, status))
