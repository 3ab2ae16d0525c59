"""The profiles repository: profiles (settings and sealed saved state) and profile leases.

:class:`ProfileRepository` is what :class:`profiles.ProfileManager` and :func:`profiles.hold_lease`
are given (it satisfies :class:`profiles.ProfileStore`, which includes
:class:`profiles.LeaseStore`). Sealed values stay sealed here; only :meth:`reseal` touches them,
re-encrypting under the contexts defined in :mod:`profiles.crypto`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite

from profiles import (
    SEALED_PREFIX,
    LeaseHolder,
    ProfileRecord,
    ProfileSettings,
    holder_is_gone,
    proxy_context,
    state_context,
)
from runtime.store.db import Database, Reseal
from runtime.store.rows import Table, insert_sql, now

__all__ = ["OnDisplaced", "ProfileRepository"]

OnDisplaced = Callable[[list[str], str], Awaitable[object]]
"""Called inside a take-over's transaction with the displaced run ids and why (the store marks
those runs interrupted)."""

PROFILES = Table("profiles", ProfileRecord, frozenset({"settings"}))
_HOLDER_FIELDS = [f.name for f in dataclasses.fields(LeaseHolder)]


def _holder(row: aiosqlite.Row | dict[str, Any]) -> LeaseHolder:
    return LeaseHolder(**{name: row[name] for name in _HOLDER_FIELDS})


def _lease_row(profile: str, holder: LeaseHolder) -> dict[str, Any]:
    return {"profile": profile, **dataclasses.asdict(holder)}


class ProfileRepository:
    """Profiles and their leases, in the ``profiles`` and ``leases`` tables."""

    def __init__(self, db: Database, on_displaced: OnDisplaced | None = None) -> None:
        self.db = db
        self._on_displaced = on_displaced

    async def insert_profile(self, record: ProfileRecord) -> bool:
        """Insert a profile; False if the name is taken."""
        sql, row = PROFILES.insert(record, ignore=True)
        async with self.db.tx() as conn:
            cur = await conn.execute(sql, row)
            return cur.rowcount == 1

    async def get_profile(self, name: str) -> ProfileRecord | None:
        """One profile, or None."""
        row = await self.db.fetch_one("SELECT * FROM profiles WHERE name = ?", (name,))
        return PROFILES.record(row) if row else None

    async def list_profiles(self) -> list[ProfileRecord]:
        """All profiles by name."""
        rows = await self.db.fetch_all("SELECT * FROM profiles ORDER BY name")
        return [PROFILES.record(r) for r in rows]

    async def update_profile_settings(self, name: str, settings: ProfileSettings) -> bool:
        """Replace a profile's settings; False if it does not exist."""
        async with self.db.tx() as conn:
            cur = await conn.execute(
                "UPDATE profiles SET settings = ?, updated_at = ? WHERE name = ?",
                (settings.model_dump_json(), now(), name),
            )
            return cur.rowcount == 1

    async def save_profile_state(
        self, name: str, sealed: bytes | None, held: LeaseHolder | None = None
    ) -> bool:
        """Replace a profile's sealed state in one transaction (the old one stays on failure).

        ``held``: the lease a session saves under; the state is written only while that lease
        (run and token) is still the profile's, so a run that lost its lease (its host was cut
        off, and another run has taken over since) never overwrites the newer holder's state.
        False when nothing was written for that reason (or the profile is gone).
        """
        sql = "UPDATE profiles SET state = ?, state_saved_at = ?, updated_at = ? WHERE name = ?"
        args: tuple[object, ...] = (sealed, now() if sealed else None, now(), name)
        if held is not None:
            sql += (
                " AND EXISTS (SELECT 1 FROM leases WHERE profile = ? AND run_id = ? "
                "AND generation = ?)"
            )
            args += (name, held.run_id, held.generation)
        async with self.db.tx() as conn:
            cur = await conn.execute(sql, args)
            return cur.rowcount == 1

    async def delete_profile(self, name: str) -> bool:
        """Delete a profile, its lease and the grants on it; False if it did not exist."""
        async with self.db.tx() as conn:
            await conn.execute("DELETE FROM leases WHERE profile = ?", (name,))
            # A profile created later under the same name must not inherit old grants.
            await conn.execute("DELETE FROM grants WHERE profile = ?", (name,))
            cur = await conn.execute("DELETE FROM profiles WHERE name = ?", (name,))
            return cur.rowcount == 1

    # --- leases (profiles.LeaseStore) -------------------------------------------------------
    #
    # Every decision reads the store's clock inside its transaction, and every write is a
    # compare-and-set on the row it read (its token), so two takers in any processes on any
    # hosts get one winner even where the database does not serialize the whole transaction.

    async def acquire_lease(
        self, profile: str, holder: LeaseHolder, ttl_s: float
    ) -> tuple[bool, LeaseHolder]:
        """Take the lease unless a live holder has it: ``(True, our row with its token)``, or
        ``(False, the live holder)``. A holder gone by the store's clock (or by its dead pid on
        this host) is displaced, and its run is marked interrupted in the same transaction."""
        async with self.db.tx() as conn:
            while True:
                clock = await self.db.clock()
                values = {
                    **_lease_row(profile, holder),
                    "acquired_at": clock,
                    "heartbeat_at": clock,
                    "ttl_s": ttl_s,
                }
                current = await self._current(profile)
                if current is None:
                    values["generation"] = 1
                    cur = await conn.execute(insert_sql("leases", values, ignore=True), values)
                    if cur.rowcount == 1:
                        return True, _holder(values)
                    continue  # inserted by another taker meanwhile: decide again
                if current.run_id != holder.run_id and not holder_is_gone(current, clock):
                    return False, current
                values["generation"] = current.generation + 1
                sets = ", ".join(f"{k} = :{k}" for k in values if k != "profile")
                cur = await conn.execute(
                    f"UPDATE leases SET {sets} WHERE profile = :profile AND generation = :seen",
                    {**values, "seen": current.generation},
                )
                if cur.rowcount != 1:
                    continue  # taken over or released by another meanwhile: decide again
                if current.run_id != holder.run_id and self._on_displaced is not None:
                    await self._on_displaced(
                        [current.run_id],
                        f"its profile lease was taken over by run {holder.run_id}: the holder "
                        "stopped renewing it (or its process ended)",
                    )
                return True, _holder(values)

    async def take_lease(
        self, profile: str, holder: LeaseHolder, ttl_s: float
    ) -> LeaseHolder | None:
        """:meth:`acquire_lease`, answering None when taken, or the live holder."""
        won, current = await self.acquire_lease(profile, holder, ttl_s)
        return None if won else current

    async def renew_lease(self, profile: str, run_id: str, generation: int | None = None) -> bool:
        """Refresh a held lease's heartbeat to the store's clock; True only if the row still
        names ``run_id`` (and its token ``generation``, if given)."""
        async with self.db.tx() as conn:
            cur = await conn.execute(
                "UPDATE leases SET heartbeat_at = ? WHERE profile = ? AND run_id = ? "
                "AND (generation = ? OR ? = 1)",
                (await self.db.clock(), profile, run_id, generation or 0, int(generation is None)),
            )
            return cur.rowcount == 1

    async def release_lease(self, profile: str, run_id: str, generation: int | None = None) -> None:
        """Drop the lease if ``run_id`` (with token ``generation``, if given) still holds it."""
        async with self.db.tx() as conn:
            await conn.execute(
                "DELETE FROM leases WHERE profile = ? AND run_id = ? AND (generation = ? OR ? = 1)",
                (profile, run_id, generation or 0, int(generation is None)),
            )

    async def get_lease(self, profile: str) -> LeaseHolder | None:
        """The current lease row for a profile, live or not."""
        return await self._current(profile)

    async def _current(self, profile: str) -> LeaseHolder | None:
        row = await self.db.fetch_one("SELECT * FROM leases WHERE profile = ?", (profile,))
        return _holder(row) if row else None

    # --- key rotation -----------------------------------------------------------------------

    async def reseal(self, reseal: Reseal) -> int:
        """Re-encrypt every saved state and sealed proxy password; returns how many changed.

        Runs in ``tx()``: called inside a caller's transaction, it is part of that one.
        """
        count = 0
        async with self.db.tx() as conn:
            async with conn.execute(
                "SELECT name, state FROM profiles WHERE state IS NOT NULL"
            ) as cur:
                state_rows = list(await cur.fetchall())
            for row in state_rows:
                name = row["name"]
                blob = reseal(row["state"], state_context(name), f"profile '{name}' saved state")
                if blob != row["state"]:
                    await conn.execute("UPDATE profiles SET state = ? WHERE name = ?", (blob, name))
                    count += 1
            async with conn.execute("SELECT name, settings FROM profiles") as cur:
                settings_rows = list(await cur.fetchall())
            for row in settings_rows:
                # The stored JSON is edited as it is, so nothing else in it is rewritten.
                settings = json.loads(row["settings"])
                password = (settings.get("proxy") or {}).get("password") or ""
                if not password.startswith(SEALED_PREFIX):
                    continue
                name = row["name"]
                old = base64.b64decode(password.removeprefix(SEALED_PREFIX))
                new = reseal(old, proxy_context(name), f"profile '{name}' proxy password")
                if new != old:
                    settings["proxy"]["password"] = SEALED_PREFIX + base64.b64encode(new).decode()
                    await conn.execute(
                        "UPDATE profiles SET settings = ? WHERE name = ?",
                        (json.dumps(settings), name),
                    )
                    count += 1
        return count
