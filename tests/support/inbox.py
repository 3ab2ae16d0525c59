"""What the console's approval tests share: the console's profiles as demo-portal users."""

from __future__ import annotations

from profiles import ProfileSettings
from runtime import Runtime
from runtime.demo.portal import USERS

__all__ = ["PROFILE_USERS", "console_profiles"]

PROFILE_USERS = {"shop": "alice", "mine": "bob"}
"""The console's profiles (tests.support.console) and the portal user each signs in as."""


async def console_profiles(rt: Runtime, portal: str) -> None:
    """Create ``shop`` and ``mine`` as portal users (username as a var, password in the vault,
    scoped to the portal and the profile), before the console's users are made."""
    for profile, user in PROFILE_USERS.items():
        await rt.profiles.create(profile, ProfileSettings(vars={"user": user}))
        await rt.vault.set(f"{user}.password", USERS[user].password, [portal], [profile])
