"""Profiles: create, list, show, update, delete, clear, export and import."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from profiles import (
    InvalidProfileError,
    LeaseHolder,
    ProfileRecord,
    ProfileSettings,
    StateDecryptError,
    UserError,
)
from runtime.auth import Actor
from runtime.services.base import Service, Supplier, supply

__all__ = ["ProfileEntry", "ProfileService", "bundle_needs_passphrase"]


class ProfileEntry(NamedTuple):
    """A profile as listed: its record and the run holding its lease, if any."""

    record: ProfileRecord
    lease: LeaseHolder | None


def bundle_needs_passphrase(data: bytes) -> bool:
    """Whether an export bundle holds a part sealed under a passphrase (saved state or a proxy
    password); False for anything that is not a bundle (importing it reports why)."""
    try:
        bundle = json.loads(data)
    except ValueError:
        return False
    if not isinstance(bundle, dict):
        return False
    return bool(bundle.get("state")) or bool(bundle.get("proxy_password"))


class ProfileService(Service):
    """Profiles as an actor manages them (admin+ for every change)."""

    async def create(
        self, actor: Actor, name: str, settings: ProfileSettings | None = None
    ) -> ProfileRecord:
        """Create a profile."""
        self._authz.require(actor, "admin", "create profiles")
        async with self._store.tx() as db:
            record = await self._rt.profiles.create(name, settings)
            await self._audit(db, actor, "profile.create", name, {"mode": record.settings.mode})
        return record

    async def list(self, actor: Actor) -> list[ProfileEntry]:
        """Every profile with its lease holder (no saved cookies)."""
        del actor  # any authenticated actor may list profiles
        return [
            ProfileEntry(r, await self._store.profiles.get_lease(r.name))
            for r in await self._rt.profiles.list()
        ]

    async def show(self, actor: Actor, name: str) -> ProfileEntry:
        """One profile with its lease holder."""
        del actor  # any authenticated actor may look at a profile's settings
        record = await self._rt.profiles.get(name)
        return ProfileEntry(record, await self._store.profiles.get_lease(name))

    async def update(self, actor: Actor, name: str, settings: ProfileSettings) -> None:
        """Replace a profile's settings."""
        self._authz.require(actor, "admin", "update profiles")
        async with self._store.tx() as db:
            await self._rt.profiles.update(name, settings)
            await self._audit(db, actor, "profile.update", name, {"mode": settings.mode})

    async def delete(
        self, actor: Actor, name: str, confirm: Callable[[], object] | None = None
    ) -> None:
        """Delete a profile, its saved state and its user-data archive. ``confirm`` is called
        once the actor may delete (so nobody confirms just to be refused); it raises to stop."""
        self._authz.require(actor, "admin", "delete profiles")
        if confirm is not None:
            confirm()
        async with self._store.tx() as db:
            await self._rt.profiles.get(name)
            # The row first: the files go last, once nothing else can fail but the commit.
            await self._audit(db, actor, "profile.delete", name)
            await self._rt.profiles.delete(name)

    async def clear(self, actor: Actor, name: str) -> None:
        """Forget a profile's saved state: its next run starts logged out."""
        self._authz.require(actor, "admin", "clear profiles")
        async with self._store.tx() as db:
            await self._rt.profiles.get(name)
            await self._audit(db, actor, "profile.clear", name)
            await self._rt.profiles.clear_state(name)

    async def export(
        self, actor: Actor, name: str, output: Path, passphrase: str | Supplier | None = None
    ) -> None:
        """Write a profile's bundle to ``output`` (0600): its settings, and with a passphrase its
        saved state and proxy password sealed under it."""
        self._authz.require(actor, "admin", "export profiles")
        phrase = supply(passphrase)
        if passphrase is not None and not phrase:
            raise UserError("an empty passphrase is not allowed")
        async with self._store.tx() as db:
            data = await self._rt.profiles.export(name, phrase)
            output.write_bytes(data)
            output.chmod(0o600)
            await self._audit(
                db, actor, "profile.export", name, {"with_state": passphrase is not None}
            )

    async def import_(
        self,
        actor: Actor,
        data: bytes,
        source: str,
        passphrase: str | Supplier | None = None,
        name: str | None = None,
    ) -> ProfileRecord:
        """Create a profile from an export bundle. The passphrase is asked for (a supplier is
        called) only when the bundle holds a sealed part; missing or wrong, nothing is imported.
        """
        self._authz.require(actor, "admin", "import profiles")
        phrase = None
        if bundle_needs_passphrase(data):
            phrase = supply(passphrase)
            if not phrase:
                raise InvalidProfileError(
                    f"{source}: the bundle holds sealed data (saved state or a proxy password); "
                    "a passphrase is needed"
                )
        async with self._store.tx() as db:
            try:
                record = await self._rt.profiles.import_(data, source, phrase, name)
            except StateDecryptError as exc:
                # A wrong passphrase is the user's mistake, not a failed run.
                raise InvalidProfileError(str(exc)) from exc
            await self._audit(db, actor, "profile.import", record.name, {"bundle": source})
        return record
