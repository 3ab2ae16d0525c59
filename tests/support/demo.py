"""Demo-portal users as corral profiles, and their invoices."""

from __future__ import annotations

from profiles import ProfileSettings
from runtime import Runtime
from runtime.demo.portal import USERS
from runtime.demo.portal.data import Invoice, invoices_for

__all__ = ["first_unpaid", "make_demo_profiles", "usd"]


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
