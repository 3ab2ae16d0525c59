"""Demo users, their deterministic invoices, and TOTP helpers."""

from __future__ import annotations

import base64
import random
import time
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor import InvalidToken
from cryptography.hazmat.primitives.twofactor.totp import TOTP

TOTP_STEP = 30
TOTP_DIGITS = 6

# Base32 of the 20 bytes b"Hello!\xde\xad\xbe\xef" * 2: a fixed, well-known demo secret
# (RFC 4226 recommends 160-bit keys), so authenticator apps and tests agree.
CAROL_TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@dataclass(frozen=True)
class DemoUser:
    """A portal account with fixed credentials."""

    username: str
    password: str
    full_name: str
    account_no: str
    totp_secret: str | None
    invoice_count: int


USERS: dict[str, DemoUser] = {
    u.username: u
    for u in (
        DemoUser("alice", "alice-pw-1", "Alice Anderson", "ACC-1001", None, 23),
        DemoUser("bob", "bob-pw-2", "Bob Brown", "ACC-1002", None, 87),
        DemoUser("carol", "carol-pw-3", "Carol Chen", "ACC-1003", CAROL_TOTP_SECRET, 12),
    )
}


@dataclass(frozen=True)
class Invoice:
    """One invoice as generated; `paid` is the initial status before any payments."""

    number: str
    issued: date
    due: date
    description: str
    amount_cents: int
    paid: bool


LATEST_ISSUE_DATE = date(2026, 10, 31)
MIN_UNPAID = 3
_PRODUCTS = (
    "Hosting",
    "Support plan",
    "Object storage",
    "Bandwidth",
    "Seat licenses",
    "Consulting hours",
    "Backup service",
    "Domain renewals",
)


@cache
def invoices_for(username: str) -> tuple[Invoice, ...]:
    """Return the user's invoices, newest first; identical in every process."""
    user = USERS[username]
    # str seeds are hashed with SHA-512, so this is stable regardless of PYTHONHASHSEED.
    rng = random.Random(username)
    digits = user.account_no.removeprefix("ACC-")
    # Each user gets their own product mix so descriptions differ between accounts too.
    products = rng.sample(_PRODUCTS, 3)
    issued = LATEST_ISSUE_DATE
    invoices: list[Invoice] = []
    for index in range(user.invoice_count):
        seq = user.invoice_count - index
        product = products[index % len(products)]
        invoices.append(
            Invoice(
                number=f"INV-{digits}-{seq:04d}",
                issued=issued,
                due=issued + timedelta(days=30),
                description=f"{product} - {issued:%B %Y}",
                amount_cents=rng.randint(2000, 200000),
                paid=rng.random() >= 0.3,
            )
        )
        issued -= timedelta(days=rng.randint(8, 10))
    unpaid = sum(not inv.paid for inv in invoices)
    # Top up from the newest invoices: every flow (pay, filter) needs some unpaid ones.
    for i, inv in enumerate(invoices):
        if unpaid >= MIN_UNPAID:
            break
        if inv.paid:
            invoices[i] = Invoice(
                inv.number, inv.issued, inv.due, inv.description, inv.amount_cents, False
            )
            unpaid += 1
    return tuple(invoices)


def find_invoice(username: str, number: str) -> Invoice | None:
    """Return the user's invoice with this number, or None if it is not theirs."""
    return next((inv for inv in invoices_for(username) if inv.number == number), None)


def format_usd(cents: int) -> str:
    """Format cents as "$1,234.56"."""
    return f"${cents // 100:,}.{cents % 100:02d}"


def _totp(secret_b32: str) -> TOTP:
    key = base64.b32decode(secret_b32.upper(), casefold=True)
    return TOTP(key, TOTP_DIGITS, SHA1(), TOTP_STEP)


def totp_code(secret_b32: str, at: float | None = None) -> str:
    """Return the RFC 6238 code (6 digits, 30 s, SHA1) for the secret at a Unix time."""
    return _totp(secret_b32).generate(time.time() if at is None else at).decode("ascii")


def verify_totp(secret_b32: str, code: str, at: float | None = None) -> bool:
    """Check a code against the current step and one step either side (clock skew)."""
    code = code.strip().replace(" ", "")
    if len(code) != TOTP_DIGITS or not code.isdigit():
        return False
    now = time.time() if at is None else at
    totp = _totp(secret_b32)
    for offset in (-TOTP_STEP, 0, TOTP_STEP):
        try:
            totp.verify(code.encode("ascii"), int(now + offset))
        except InvalidToken:
            continue
        return True
    return False
