"""Injected provider failures: an HTTP client for the model SDKs that answers a deterministic
share of the requests to one provider with a 503, so the router's fallback has to recover."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx2

__all__ = ["FAULT_MESSAGE", "FaultTransport", "fault_client", "primary_planner_url"]

FAULT_MESSAGE = "corral eval: injected provider failure"
_DEFAULT_URLS = {"openai": "https://api.openai.com/", "anthropic": "https://api.anthropic.com/"}


class FaultTransport(httpx2.AsyncBaseTransport):
    """Sends requests on, except a share of those under ``prefix``: those get a 503."""

    def __init__(self, prefix: str, share: float, seed: str) -> None:
        self.prefix = prefix
        self.share = share
        self.seed = seed
        self.seen = 0
        self.injected = 0
        self._inner = httpx2.AsyncHTTPTransport()

    def _fails(self) -> bool:
        self.seen += 1
        digest = hashlib.sha256(f"{self.seed}:{self.seen}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.share

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """A 503 for a chosen request to the faulted provider, else the real answer."""
        if str(request.url).startswith(self.prefix) and self._fails():
            self.injected += 1
            return httpx2.Response(
                503, json={"error": {"message": FAULT_MESSAGE, "type": "server_error"}}
            )
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the real transport."""
        await self._inner.aclose()


def fault_client(prefix: str, share: float, seed: str) -> tuple[httpx2.AsyncClient, FaultTransport]:
    """A client for ``run_task(http_client=...)`` and its transport (which counts)."""
    transport = FaultTransport(prefix, share, seed)
    return httpx2.AsyncClient(transport=transport, follow_redirects=True), transport


def primary_planner_url(home: Path, config: Path | None) -> str:
    """The base URL of the first planner's provider in a model config (where faults go)."""
    from runtime.models.config import load_models_config

    models = load_models_config(home, config)
    provider = models.roles["planner"][0].partition(":")[0]
    cfg = models.providers[provider]
    return cfg.base_url or _DEFAULT_URLS[cfg.type]
