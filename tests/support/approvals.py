"""The approval requests a run made, or is waiting on, and a receiver of their webhooks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from runtime import RunResult, Runtime
from runtime.approvals import ApprovalRequest
from tests.support.wait import until

__all__ = ["Received", "next_request", "requests_of", "webhook_receiver"]

Received = list[tuple[dict[str, str], bytes]]
"""What a webhook receiver got: each POST's headers (names in lower case) and body."""


async def next_request(
    rt: Runtime, timeout_s: float = 60.0, besides: ApprovalRequest | None = None
) -> ApprovalRequest:
    """The oldest pending approval request (other than ``besides``), once a run has asked
    (polls the store, as another process would)."""

    async def pending() -> list[ApprovalRequest]:
        return [
            r for r in await rt.approvals.list_requests() if besides is None or r.id != besides.id
        ]

    found = await until(pending, timeout_s, "a pending approval request")
    return found[-1]


async def requests_of(rt: Runtime, result: RunResult) -> list[ApprovalRequest]:
    """Every approval request the run made, oldest first."""
    assert result.run_id is not None
    return list(reversed(await rt.approvals.list_requests(None, str(result.run_id))))


@contextmanager
def webhook_receiver(
    hold: threading.Event | None = None,
) -> Iterator[tuple[str, Received]]:
    """A webhook receiver on 127.0.0.1 that answers 204, for the block: its URL and what it
    received. With ``hold``, the answer to each approval request's announcement waits until it
    is set (what was received is recorded at once)."""
    received: Received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            if hold is not None and b'"approval.requested"' in body:
                hold.wait(30)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/corral", received
    finally:
        server.shutdown()
        server.server_close()
