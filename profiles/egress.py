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
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from .allowlist import parse_allowlist, parse_host_map
from .errors import EgressConflictError
from .hosts import HostRule, normal_host
from .proxy_http import (
    CHUNK,
    CONNECT_TIMEOUT_S,
    HEAD_TIMEOUT_S,
    MAX_HEAD,
    MAX_URL,
    BadRequest,
    Target,
    Unreachable,
    Upstream,
    close_writer,
    open_tunnel,
    parse_request,
    pipe,
    request_head,
    response_bytes,
)
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

_MAX_BLOCKED = 1000


class BlockedRequest(BaseModel):
    """One connection or request the proxy refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    host: str = Field(description="the host the browser asked for, normalised")
    port: int
    method: str = Field(description="CONNECT for tunnels (https, wss, ws), else the HTTP method")
    url: str | None = Field(None, description=f"plain HTTP only; at most {MAX_URL} characters")
    at: datetime


# --- the proxy --------------------------------------------------------------------------------


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
        self._upstream = None if upstream is None else Upstream.parse(upstream)
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
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0, limit=MAX_HEAD)
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
            await close_writer(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Handle one client connection: one decision, then at most one upstream."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
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
            method, target = parse_request(head)
        except BadRequest as exc:
            log.debug("egress proxy: bad request: %s", exc)
            await self._reject(reader, writer, 400, "Bad Request", "not a proxy request")
            return
        if not self._allows(target.host, target.port):
            self.blocked_total += 1
            url = target.url[:MAX_URL] if target.url is not None else None
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
        except Unreachable as exc:
            await self._reject(reader, writer, 502, "Bad Gateway", str(exc))
            return
        self.allowed_total += 1
        try:
            if target.request is None:
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await pipe(reader, writer, up_reader, upstream)
            elif self._upstream is None:
                upstream.write(request_head(target.request, target.path, target.netloc))
                await pipe(reader, writer, up_reader, upstream)
            else:
                # Absolute form, from the host and port decided on (not the browser's spelling).
                url = f"http://{target.authority}{target.path}"
                upstream.write(
                    request_head(target.request, url, target.authority, self._upstream.headers)
                )
                await pipe(reader, writer, up_reader, upstream, response_of=target)
        finally:
            await close_writer(upstream)

    async def _open(self, target: Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to ``target``, or to the upstream proxy (with the tunnel open for a
        CONNECT); raises Unreachable."""
        if self._upstream is None:
            address, port = self.host_map.get(target.host, target.host), target.port
        else:
            address, port = self._upstream.host, self._upstream.port
        try:
            up_reader, upstream = await asyncio.wait_for(
                asyncio.open_connection(address, port, limit=MAX_HEAD), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError) as exc:
            via = "" if self._upstream is None else f" (upstream proxy {address}:{port})"
            log.info("egress: %s:%d unreachable%s: %s", target.host, target.port, via, exc)
            where = "the upstream proxy" if via else f"{target.host}:{target.port}"
            raise Unreachable(f"corral: could not connect to {where}") from None
        if self._upstream is not None and target.request is None:
            try:
                await open_tunnel(up_reader, upstream, target, self._upstream)
            except BaseException:
                await close_writer(upstream)
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
            writer.write(response_bytes(status, reason, body))
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            # Read what the client still sends (a POST body, the rest of a huge head) before
            # closing: closing with unread data resets the connection and can lose the answer.
            with contextlib.suppress(TimeoutError, asyncio.LimitOverrunError, ValueError):
                async with asyncio.timeout(1.0):
                    for _ in range(16):
                        if not await reader.read(CHUNK):
                            break
