"""Demo-portal users as corral profiles, and their invoices."""

from __future__ import annotations

from typing import Any

from profiles import ProfileSettings
from runtime import Runtime
from runtime.demo.portal import USERS
from runtime.demo.portal.data import Invoice, invoices_for

__all__ = [
    "LOGIN",
    "first_unpaid",
    "make_demo_profiles",
    "pay_task",
    "signed_in",
    "usd",
]


async def make_demo_profiles(rt: Runtime, portal: str, *names: str) -> None:
    """Profiles for demo users: the username as a var, the password in the vault (scoped)."""
    for name in names:
        user = USERS[name]
        await rt.profiles.create(name, ProfileSettings(vars={"user": user.username}))
        await rt.vault.set(f"{name}.password", user.password, [portal], [name])


def first_unpaid(user: str = "alice") -> Invoice:
    """The user's first unpaid invoice in the portal's seed data."""
    return next(i for i in invoices_for(user) if not i.paid)


def usd(inv: Invoice) -> str:
    """The invoice's amount as the portal shows it, e.g. ``$1,234.50``."""
    return f"${inv.amount_cents / 100:,.2f}"


ON_LOGIN = {"url_contains": "/login"}
LOGIN = [
    {"fill": {"label": "Username", "value": "{{var:user}}"}, "when": ON_LOGIN},
    {"fill": {"label": "Password", "value": "{{secret:{{var:user}}.password}}"}, "when": ON_LOGIN},
    {"click": {"role": "button", "name": "Sign in"}, "when": ON_LOGIN},
]


def signed_in(name: str, portal: str, *steps: Any, **extra: Any) -> dict[str, Any]:
    """A task (as data) that signs in to ``portal`` when needed, then does ``steps``."""
    return {
        "name": name,
        "start_url": f"{portal}/login",
        "secrets": ["{{var:user}}.password"],
        "steps": [*LOGIN, *steps],
        **extra,
    }


def pay_task(portal: str, inv: Invoice) -> dict[str, Any]:
    return signed_in(
        "pay-invoice",
        portal,
        {"goto": f"/invoices/{inv.number}"},
        {"click": {"role": "button", "name": f"Pay {usd(inv)}"}},
        {"click": {"role": "button", "name": "Confirm payment"}},
        {"extract": {"as": "status", "text": {"test_id": "invoice-status"}}},
        output="status",
    )
