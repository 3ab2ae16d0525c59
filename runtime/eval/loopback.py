"""An HTTP server of the eval's own on 127.0.0.1: a free port, a thread, a ``with`` block."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable
from typing import Any, Self

__all__ = ["LoopbackServer"]


class LoopbackServer:
    """``handler`` served on 127.0.0.1 (a free port) while the ``with`` block runs."""

    def __init__(self, handler: Callable[..., Any], name: str) -> None:
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def origin(self) -> str:
        """The server's origin, e.g. ``http://127.0.0.1:41234``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
