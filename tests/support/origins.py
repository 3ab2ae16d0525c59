"""A tiny multi-origin fixture site for the vault's scope tests, served with the stdlib.

One server answers under two origins that a browser keeps apart: ``http://127.0.0.1:PORT`` and
``http://localhost:PORT``. It also answers requests sent to it as an HTTP proxy (absolute URLs in
the request line), so a profile proxied through it can load ``http://corral.test/...`` on the
default port, an origin whose ``window.origin`` carries no port.

Routes:

- ``/form``: an "API key" text input (``#key``) and a "Password" input (``#pw``).
- ``/redirect?to=URL``: 302 to URL.
- ``/frame?src=URL``: a "Host" heading and ``<iframe src=URL title="embedded">``.
- ``/popup?url=URL``: a button "Open" that does ``window.open(url)``.
- ``/echo``: an "Echo" input whose value is shown as page text in ``#out`` on every input.
- ``/spoof?as=ORIGIN``: ``/form``, on a page whose script overwrites ``window.origin``.
"""

from __future__ import annotations

import html
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

__all__ = ["ECHO", "FORM", "OriginsServer"]

FORM = """<!doctype html><title>Form</title>
<h1>Form</h1>
<label for=key>API key</label><input id=key>
<label for=pw>Password</label><input id=pw type=password>
"""

ECHO = """<!doctype html><title>Echo</title>
<h1>Echo</h1>
<input id=echo aria-label=Echo>
<p id=out></p>
<script>
document.getElementById("echo").addEventListener("input", (e) => {
  document.getElementById("out").textContent = e.target.value;
});
</script>
"""


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


def _js(value: str) -> str:
    # JSON is a JS string literal; "</" is escaped so the value cannot close the script tag.
    return json.dumps(value).replace("</", "<\\/")


class _Handler(BaseHTTPRequestHandler):
    server_version = "corral-origins/1"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read results, not access logs."""

    def _send(self, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        # A proxied request names the whole URL; a direct one only the path.
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        route = parts.path
        if route == "/form":
            self._send(200, FORM)
        elif route == "/echo":
            self._send(200, ECHO)
        elif route == "/redirect" and "to" in query:
            self._send(302, "", {"Location": query["to"]})
        elif route == "/frame" and "src" in query:
            self._send(
                200,
                "<!doctype html><title>Host</title><h1>Host</h1>"
                f'<iframe src="{_attr(query["src"])}" title="embedded" '
                'width="600" height="300"></iframe>',
            )
        elif route == "/popup" and "url" in query:
            self._send(
                200,
                "<!doctype html><title>Popup</title><h1>Popup</h1>"
                f"<button onclick='window.open({_attr(_js(query['url']))})'>Open</button>",
            )
        elif route == "/spoof" and "as" in query:
            script = f"<script>window.origin = {_js(query['as'])};</script>"
            self._send(200, FORM.replace("<h1>", script + "<h1>", 1))
        else:
            self._send(404, "<!doctype html><title>Not found</title><h1>Not found</h1>")


class OriginsServer:
    """The fixture site on 127.0.0.1 (port 0: any free port) in a daemon thread."""

    def __init__(self, port: int = 0) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._httpd.server_address[1])

    @property
    def a(self) -> str:
        """The first origin, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def b(self) -> str:
        """The second origin, ``http://localhost:PORT`` (same server, another origin)."""
        return f"http://localhost:{self.port}"

    @property
    def proxy(self) -> str:
        """The server as an HTTP proxy address."""
        return self.a

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="origins-server", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> OriginsServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
