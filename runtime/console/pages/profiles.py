"""The console's profiles and secrets: names, scopes and last use; never a value.

A profile shows what is not secret about it (mode, allowed domains, the names of its
variables, whether it has saved state, who holds it now) and its latest run. A secret shows
its name, kind, domains, profiles, fields and when it was set and last used: its value stays
sealed in the vault, and nothing here asks for it. A ``user`` sees the profiles granted to it
and the secrets usable on them (a secret for any profile, or one naming a granted profile);
admins see every one, and where each secret was last used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from profiles import LeaseHolder, ProfileRecord, SecretRecord, SecretUseRecord
from runtime.console.web import Viewing, page
from runtime.records import RunRecord

__all__ = ["ProfileRow", "SecretRow", "router"]

router = APIRouter()


@dataclass(frozen=True)
class ProfileRow:
    """A profile as the page shows it."""

    record: ProfileRecord
    lease: LeaseHolder | None
    last_run: RunRecord | None

    @property
    def var_names(self) -> list[str]:
        """The names of the profile's variables (values are not shown)."""
        return sorted(self.record.settings.vars)

    @property
    def held_since(self) -> datetime | None:
        """When the run holding the profile took it."""
        if self.lease is None:
            return None
        return datetime.fromtimestamp(self.lease.acquired_at, UTC)


@dataclass(frozen=True)
class SecretRow:
    """A secret as the page shows it: its scope (the profiles the viewer may see) and its last
    use (admins)."""

    record: SecretRecord
    profiles: list[str]
    last_use: SecretUseRecord | None


@router.get("/profiles", response_class=HTMLResponse)
async def profiles_page(viewer: Viewing) -> HTMLResponse:
    """The profiles and secrets the viewer may see."""
    services, actor = viewer.rt.services, viewer.actor
    rows = []
    for entry in await services.profiles.list(actor):
        name = entry.record.name
        if not await services.runs.may_see(actor, name):
            continue
        latest = await services.runs.list(actor, 1, name)
        rows.append(ProfileRow(entry.record, entry.lease, next(iter(latest), None)))
    visible = {r.record.name for r in rows}
    secrets = []
    for secret in await services.secrets.list(actor):
        shown = [p for p in secret.profiles if p in visible]
        if secret.profiles and not shown and not viewer.is_admin:
            continue
        uses = []
        if viewer.is_admin:
            uses = await services.secrets.list_uses(actor, None, 1, secret=secret.name)
        secrets.append(
            SecretRow(secret, secret.profiles if viewer.is_admin else shown, next(iter(uses), None))
        )
    return page(viewer, "profiles.html.j2", section="profiles", rows=rows, secrets=secrets)
