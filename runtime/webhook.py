"""Approval notifications: one HMAC-signed webhook POST per approval request.

The body is JSON. Headers: ``X-Corral-Timestamp`` (unix seconds) and ``X-Corral-Signature:
sha256=HEX``, the HMAC-SHA256 of ``TIMESTAMP.BODY`` under the shared secret, so a receiver can
reject forged and replayed notifications (see :func:`verify`). A failed delivery is logged and
recorded on the step; it never fails the run: the request is in the store either way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

import httpx

__all__ = ["Webhook", "sign", "verify"]

log = logging.getLogger(__name__)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str, timestamp: str, body: bytes, signature: str, max_age_s: float = 300
) -> bool:
    """True if ``signature`` is ours for this body and the timestamp is recent."""
    try:
        fresh = abs(time.time() - float(timestamp)) <= max_age_s
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


class Webhook:
    """Where approval requests are announced."""

    def __init__(
        self,
        url: str,
        secret: str,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self.url = url
        self._secret = secret
        self._transport = transport
        self._timeout = timeout_s

    async def send(self, event: dict[str, Any]) -> str:
        """POST ``event``; returns what happened, for the step record ("delivered: 200", ...)."""
        body = json.dumps(event, sort_keys=True, default=str).encode()
        timestamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "x-corral-timestamp": timestamp,
            "x-corral-signature": sign(self._secret, timestamp, body),
            "x-corral-event": str(event.get("event", "approval.requested")),
        }
        try:
            # The transport's retries cover connection failures; a slow receiver costs timeout_s.
            transport = self._transport or httpx.AsyncHTTPTransport(retries=2)
            async with httpx.AsyncClient(transport=transport, timeout=self._timeout) as client:
                response = await client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("approval webhook to %s failed: %s", self.url, type(exc).__name__)
            return f"failed: {type(exc).__name__}"
        if response.status_code >= 300:
            log.warning("approval webhook to %s answered %s", self.url, response.status_code)
            return f"rejected: {response.status_code}"
        return f"delivered: {response.status_code}"
