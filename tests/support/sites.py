"""Small fixture sites for the egress tests, served with the stdlib on 127.0.0.1.

A :class:`Site` counts every TCP connection it accepts (``connections``), before any HTTP
parsing, so "the evil site was reached zero times" means no byte of any protocol arrived.

Routes:

- ``/``: a page titled with the site's name;
- any path registered in ``site.pages``: that HTML;
- ``/redirect?to=URL``: 302 to URL;
- ``/data``: ``data from NAME`` as text, readable cross-origin (CORS ``*``);
- ``/sw.js``: a service worker that fetches ``?target=URL`` when it installs;
- ``/ws``: a WebSocket that sends ``hello from NAME`` and then waits for the client to close;
- POST anywhere: ``posted to NAME``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Site", "free_port", "js"]

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

SW = """
const target = new URL(location.href).searchParams.get("target");
self.addEventListener("install", (event) => {
  event.waitUntil(fetch(target).catch(() => null));
});
"""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # an open WebSocket must not hold up stop()

    def __init__(self, site: Site) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.site = site

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Called once per accepted connection: the count the tests assert on."""
        with self.site._lock:
            self.site.connections += 1
        return True


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 15  # a stuck client ends its thread

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read counters, not access logs."""

    def _send(
        self,
        status: int,
        body: str = "",
        content_type: str = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> None:
        site = self.server.site
        with site._lock:
            site.requests.append(f"{self.command} {self.path}")

    def do_GET(self) -> None:
        self._record()
        site = self.server.site
        parts = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        route = parts.path
        if route == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            self._websocket()
        elif route in site.pages:
            self._send(200, site.pages[route])
        elif route == "/redirect":
            self._send(302, headers={"Location": query["to"]})
        elif route == "/data":
            cors = {"Access-Control-Allow-Origin": "*"}
            self._send(200, f"data from {site.name}", "text/plain", cors)
        elif route == "/sw.js":
            self._send(200, SW, "text/javascript")
        elif route == "/":
            self._send(200, f"<!doctype html><title>{site.name}</title><h1>{site.name} home</h1>")
        else:
            self._send(404, "not found")

    def do_POST(self) -> None:
        self._record()
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        name = self.server.site.name
        self._send(200, f"<!doctype html><title>posted</title><p>posted to {name}</p>")

    def _websocket(self) -> None:
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        message = f"hello from {self.server.site.name}".encode()
        # One unmasked text frame (FIN + opcode 1), short enough for a 7-bit length.
        self.wfile.write(bytes([0x81, len(message)]) + message)
        self.wfile.flush()
        # Hold the connection until the client goes away; what it sends is not needed.
        try:
            while self.rfile.read1(4096):
                pass
        except OSError:
            pass
        self.close_connection = True


class Site:
    """One fixture site on 127.0.0.1 and a free port."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pages: dict[str, str] = {}
        """Extra routes: path -> HTML."""
        self.connections = 0
        """TCP connections accepted (any protocol)."""
        self.requests: list[str] = []
        """``METHOD /path`` of every HTTP request."""
        self._lock = threading.Lock()
        self._server = _Server(self)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"site-{name}", daemon=True
        )

    def __enter__(self) -> Site:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def url(self, host: str, path: str = "/") -> str:
        """``http://HOST:PORT/path`` for this site under the name ``host``."""
        return f"http://{host}:{self.port}{path}"

    def ws_url(self, host: str) -> str:
        """``ws://HOST:PORT/ws``, this site's WebSocket under the name ``host``."""
        return f"ws://{host}:{self.port}/ws"

    def page(self, path: str, html: str) -> str:
        """Register ``html`` at ``path``; returns ``path``."""
        self.pages[path] = html
        return path


def js(value: object) -> str:
    """A JS literal for ``value`` that cannot close a script tag."""
    return json.dumps(value).replace("</", "<\\/")


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (for upstream-failure tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
