"""The last redaction before a model provider: every request body the SDKs send passes through
the run's redactor on the wire, whatever built it.

The SDKs take an injected ``httpx2`` client; :func:`redacting_client` gives them one whose
transport rewrites each body and then hands the request to the real client (the one passed in, in
tests a ``MockTransport`` one, else a default client). JSON bodies are redacted string by string
and re-encoded, so a replacement can never break the JSON; other bodies byte by byte. Inline image
data (``data:image/...`` URLs and base64 image sources) is left alone: it holds pixels, not text,
and screenshots are masked before they are taken.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx2

__all__ = ["RedactingTransport", "redact_body", "redacting_client"]

Redact = Callable[[str], str]
_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/=\s]{256,}")


def _is_image_data(text: str) -> bool:
    if text.startswith("data:image/"):
        return True
    return len(text) >= 256 and _BASE64_BLOB.fullmatch(text) is not None


def _walk(value: Any, redact: Redact) -> Any:
    if isinstance(value, str):
        return value if _is_image_data(value) else redact(value)
    if isinstance(value, list):
        return [_walk(item, redact) for item in value]
    if isinstance(value, dict):
        return {redact(str(k)): _walk(v, redact) for k, v in value.items()}
    return value


def redact_body(
    body: bytes, content_type: str, redact: Redact, redact_bytes: Callable[[bytes], bytes]
) -> bytes:
    """``body`` with every secret replaced; JSON stays valid JSON."""
    if not body:
        return body
    if "json" in content_type.lower():
        try:
            parsed = json.loads(body)
        except ValueError:
            return redact_bytes(body)
        cleaned = _walk(parsed, redact)
        if cleaned == parsed:
            return body
        return json.dumps(cleaned, ensure_ascii=False, separators=(",", ":")).encode()
    return redact_bytes(body)


class RedactingTransport(httpx2.AsyncBaseTransport):
    """Redacts each request body, then sends it with ``inner`` (a client)."""

    def __init__(
        self,
        inner: httpx2.AsyncClient,
        redact: Redact,
        redact_bytes: Callable[[bytes], bytes],
        owns_inner: bool,
    ) -> None:
        self.inner = inner
        self.redact = redact
        self.redact_bytes = redact_bytes
        self.owns_inner = owns_inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request`` with its body redacted."""
        body = await request.aread()
        clean = redact_body(
            body, request.headers.get("content-type", ""), self.redact, self.redact_bytes
        )
        if clean is not body:
            headers = [(k, v) for k, v in request.headers.multi_items() if k != "content-length"]
            request = httpx2.Request(
                request.method,
                request.url,
                headers=headers,
                content=clean,
                extensions=request.extensions,
            )
        return await self.inner.send(request, stream=True)

    async def aclose(self) -> None:
        """Close the inner client if this transport made it."""
        if self.owns_inner:
            await self.inner.aclose()


def redacting_client(
    redact: Redact, redact_bytes: Callable[[bytes], bytes], inner: object = None
) -> httpx2.AsyncClient:
    """A client for the SDKs that redacts every request body before ``inner`` sends it."""
    owns = inner is None
    if inner is None:
        # The SDKs' own defaults: follow redirects, many connections (timeouts come per request).
        inner = httpx2.AsyncClient(
            follow_redirects=True,
            limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=100),
        )
    if not isinstance(inner, httpx2.AsyncClient):
        raise TypeError(f"http_client must be an httpx2.AsyncClient, not {type(inner).__name__}")
    return httpx2.AsyncClient(transport=RedactingTransport(inner, redact, redact_bytes, owns))
