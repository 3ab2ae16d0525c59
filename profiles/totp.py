"""TOTP one-time codes (RFC 6238) from a secret's base32 seed: checking a seed, making a code."""

from __future__ import annotations

import base64
import binascii
import time

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP

from .errors import UserError

__all__ = ["totp_now", "totp_seed"]


def totp_seed(value: str) -> bytes:
    """The seed bytes of a base32 TOTP secret; a ``UserError`` if it is not one."""
    cleaned = value.replace(" ", "").upper()
    try:
        seed = base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except binascii.Error as exc:
        raise UserError(
            "a TOTP secret must be the base32 seed (as shown under the QR code)"
        ) from exc
    if len(seed) < 10:
        raise UserError("a TOTP seed must be at least 80 bits (16 base32 characters)")
    return seed


def totp_now(seed_b32: str, at: float | None = None) -> str:
    """The current RFC 6238 code (6 digits, 30 s, SHA-1) for a base32 seed."""
    totp = TOTP(totp_seed(seed_b32), 6, SHA1(), 30, enforce_key_length=False)
    return totp.generate(int(time.time() if at is None else at)).decode()
