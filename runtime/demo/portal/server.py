"""Run the portal with uvicorn on a background thread (for tests, demos and benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType

import uvicorn

from runtime.demo.portal.app import COLLECTOR_URL, create_app

_HOST = "127.0.0.1"


class PortalServer:
    """The portal served on 127.0.0.1; port 0 picks a free port."""

    def __init__(
        self,
        port: int = 0,
        db_path: str | Path | None = None,
        pay_delay_s: float = 0.0,
        collector_url: str | None = None,
    ) -> None:
        self._requested_port = port
        self.db_path = db_path
        self.pay_delay_s = pay_delay_s
        self.collector_url = collector_url
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. "http://127.0.0.1:43121" (valid once started)."""
        return f"http://{_HOST}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start serving and return once the server accepts connections."""
        if self._thread is not None:
            raise RuntimeError("PortalServer is already running")
        # Binding here (not inside uvicorn) makes a busy port fail loudly in the caller and
        # tells us the real port when 0 was requested.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this: without it, every request after the first on a
        # keep-alive connection stalls ~40 ms (Nagle against delayed ACKs).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((_HOST, self._requested_port))
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(True)
        self._sock = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.db_path, self.pay_delay_s, self.collector_url or COLLECTOR_URL),
            log_level="warning",
            access_log=False,
            # Leave the host process's logging configuration alone.
            log_config=None,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="portal-server", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("portal server failed to start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the serving thread to finish."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
            if self._thread.is_alive():
                # Graceful shutdown stalled (e.g. a hung request); stop waiting on it.
                assert self._server is not None
                self._server.force_exit = True
                self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> PortalServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
