"""Approval notifications: one HMAC-signed webhook POST per approval request.

The body is JSON. Headers: ``X-Corral-Timestamp`` (unix seconds) and ``X-Corral-Signature:
sha256=HEX``, the HMAC-SHA256 of ``TIMESTAMP.BODY`` under the shared secret, so a receiver can
reject forged and replayed notifications (see :func:`verify_headers` and :func:`verify`, which
return False for anything malformed and never raise). A failed delivery is logged and
recorded on the step; it never fails the run: the request is in the store either way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "Webhook", "sign", "verify", "verify_headers"]

TIMESTAMP_HEADER = "x-corral-timestamp"
SIGNATURE_HEADER = "x-corral-signature"

log = logging.getLogger(__name__)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


# Exactly what send() writes: whole unix seconds and a lowercase hex digest, ASCII only. Anything
# else (signs, spaces, exponents, "nan", Unicode digits, another digest) is not ours.
_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}", re.ASCII)
_SIGNATURE_RE = re.compile(r"sha256=[0-9a-f]{64}", re.ASCII)


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    max_age_s: float = 300,
    *,
    now: float | None = None,
) -> bool:
    """True if ``signature`` is ours for this body and the timestamp is within ``max_age_s`` of
    now; False, never an exception, for anything malformed."""
    # A receiver calls this with whatever arrived on the wire: every check is a type or format
    # check first, so no input reaches float(), encode() or compare_digest() that could raise.
    if not (isinstance(secret, str) and secret and isinstance(body, bytes)):
        return False
    if not (isinstance(timestamp, str) and _TIMESTAMP_RE.fullmatch(timestamp)):
        return False
    if not (isinstance(signature, str) and _SIGNATURE_RE.fullmatch(signature)):
        return False
    if isinstance(max_age_s, bool) or not isinstance(max_age_s, int | float):
        return False
    current = time.time() if now is None else now
    if not (math.isfinite(max_age_s) and max_age_s >= 0 and math.isfinite(current)):
        return False
    if abs(current - int(timestamp)) > max_age_s:
        return False
    try:
        expected = sign(secret, timestamp, body)
    except UnicodeEncodeError:  # a secret with lone surrogates cannot have signed anything
        return False
    return hmac.compare_digest(expected.encode(), signature.encode())


def verify_headers(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    max_age_s: float = 300,
    *,
    now: float | None = None,
) -> bool:
    """:func:`verify` with ``X-Corral-Timestamp`` and ``X-Corral-Signature`` read from
    ``headers`` in any letter case; False when either is missing or given twice."""
    if not isinstance(headers, Mapping):
        return False
    found: dict[str, list[object]] = {TIMESTAMP_HEADER: [], SIGNATURE_HEADER: []}
    try:
        items = list(headers.items())
    except Exception:  # a broken mapping from a framework is a bad request, not a crash
        return False
    for key, value in items:
        if isinstance(key, str) and key.lower() in found:
            found[key.lower()].append(value)
    timestamps, signatures = found[TIMESTAMP_HEADER], found[SIGNATURE_HEADER]
    # Two spellings of one header in a plain dict: which one was signed is ambiguous, so neither.
    if len(timestamps) != 1 or len(signatures) != 1:
        return False
    timestamp, signature = timestamps[0], signatures[0]
    if not (isinstance(timestamp, str) and isinstance(signature, str)):
        return False
    return verify(secret, timestamp, body, signature, max_age_s, now=now)


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
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            "x-corral-event": str(event.get("event", "approval.requested")),
        }
        import httpx  # loaded with the first webhook, not with every run

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
