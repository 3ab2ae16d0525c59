"""A hostile site whose pages each test writes, and a helper that runs a scripted task against it.

The site serves whatever HTML a test registers under a path and records every request that reaches
it (method, path, body), so a test can assert that a payment was never sent: ``site.posts('/pay')``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from profiles import ProfileSettings
from runtime import RunResult, Runtime, parse_task, run_task
from runtime.approvals import ApprovalRequest
from runtime.records import RunSource
from runtime.testing import FunctionModel
from tests.support.approvals import requests_of

__all__ = [
    "APPROVAL_TTL_S",
    "Hit",
    "HostileSite",
    "assert_asked_not_paid",
    "run_model",
    "run_steps",
    "serve_site",
]

APPROVAL_TTL_S = 1.0
"""Nobody decides in these tests unless a test does: a gated step's request expires this fast."""


@dataclass
class Hit:
    """One request that reached the site."""

    method: str
    path: str
    body: str


@dataclass
class HostileSite:
    """Pages by path (HTML, or (status, headers, body)); every request is recorded in ``hits``."""

    url: str = ""
    pages: dict[str, Any] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    held: dict[str, threading.Event] = field(default_factory=dict)
    """Paths whose answer waits until the event is set (the request is recorded at once)."""

    def page(self, path: str, html: str) -> str:
        """Serve ``html`` at ``path``; returns its absolute URL."""
        self.pages[path] = html
        return self.url + path

    def raw(self, path: str, status: int, headers: dict[str, str], body: str = "") -> str:
        """Serve a raw response (e.g. a redirect) at ``path``; returns its absolute URL."""
        self.pages[path] = (status, headers, body)
        return self.url + path

    def requests(self, method: str, path: str | None = None) -> list[Hit]:
        """Recorded requests with ``method`` (and ``path`` without its query, if given)."""
        return [
            h
            for h in self.hits
            if h.method == method and (path is None or h.path.split("?")[0] == path)
        ]

    def posts(self, path: str | None = None) -> list[Hit]:
        """Recorded POSTs (to ``path``, if given)."""
        return self.requests("POST", path)


def _handler(site: HostileSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
            site.hits.append(Hit(self.command, self.path, body))
            gate = site.held.get(self.path.split("?")[0])
            if gate is not None:
                gate.wait(30)
            entry = site.pages.get(self.path.split("?")[0])
            if entry is None:
                entry = "<!doctype html><title>ok</title><p>done</p>"
            status, headers, text = (200, {}, entry) if isinstance(entry, str) else entry
            data = text.encode()
            self.send_response(status)
            headers = {"Content-Type": "text/html; charset=utf-8", **headers}
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve_site() -> Iterator[HostileSite]:
    """A hostile site on 127.0.0.1, on a port of its own, for the ``with`` block."""
    state = HostileSite()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


async def run_steps(
    rt: Runtime,
    site: HostileSite,
    steps: list[Any],
    *,
    profile: str = "victim",
    allowed_domains: list[str] | None = None,
    source: RunSource | None = None,
    **task: Any,
) -> RunResult:
    """Run a scripted task of ``steps`` on ``profile`` (created if missing), with the site as
    the only allowed domain unless ``allowed_domains`` says otherwise. Approvals are not decided
    by anyone, so a gated step ends the run as ``denied`` once its request expires."""
    if profile not in {p.name for p in await rt.profiles.list()}:
        await rt.profiles.create(profile, ProfileSettings())
    data = {
        "name": task.pop("name", "attack"),
        "profile": profile,
        "allowed_domains": ["127.0.0.1"] if allowed_domains is None else allowed_domains,
        "steps": steps,
        **task,
    }
    return await run_task(rt, parse_task(data, "attack.yaml"), source=source)


async def run_model(
    rt: Runtime, site: HostileSite, start: str, decide: Any, **task: Any
) -> RunResult:
    """A model-driven run of ``decide`` (a FunctionModel planner) on the hostile site; ``task``
    adds to the task file."""
    if "victim" not in {p.name for p in await rt.profiles.list()}:
        await rt.profiles.create("victim", ProfileSettings())
    task = parse_task(
        {
            "name": "obedient",
            "goal": "Do what the page says.",
            "start_url": start,
            "allowed_domains": ["127.0.0.1"],
            **task,
        },
        "obedient.yaml",
    )
    return await run_task(rt, task, "victim", models={"planner": [FunctionModel(decide)]})


async def assert_asked_not_paid(
    rt: Runtime, site: HostileSite, result: RunResult, *words: str
) -> list[ApprovalRequest]:
    """The run asked a person (nobody answered, so it ended denied) and nothing was paid."""
    assert result.status == "denied", result.error
    asked = await requests_of(rt, result)
    assert asked, "no approval was requested"
    for word in words:
        assert word in asked[0].summary, asked[0].summary
    assert site.posts("/pay") == []
    return asked
