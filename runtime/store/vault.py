"""The vault repository: sealed secrets, runs' credential leases and the secret-use audit rows.

:class:`VaultRepository` is what :class:`profiles.Vault` is given (it satisfies
:class:`profiles.VaultStore`). Secrets stay sealed here; only :meth:`reseal` touches them,
re-encrypting each under :func:`profiles.secret_context`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from profiles import CredentialLeaseRecord, SecretRecord, SecretUseRecord, secret_context
from runtime.store.db import Database, Reseal
from runtime.store.rows import Table, now

__all__ = ["VaultRepository"]

SECRETS = Table("secrets", SecretRecord, frozenset({"domains", "profiles", "fields"}))
CREDENTIAL_LEASES = Table(
    "credential_leases", CredentialLeaseRecord, frozenset({"secrets", "origins"})
)
SECRET_AUDIT = Table("secret_audit", SecretUseRecord)

# What a new value replaces; the creation time and last use stay.
_SECRET_UPDATE = ("kind", "domains", "profiles", "fields", "ciphertext", "updated_at")


class VaultRepository:
    """Secrets, credential leases and secret-use audit entries."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def put_secret(self, record: SecretRecord) -> None:
        """Insert or replace a secret (keeping its creation time)."""
        sql, row = SECRETS.insert(record, exclude=("last_used_at",))
        update = ", ".join(f"{name} = excluded.{name}" for name in _SECRET_UPDATE)
        async with self.db.tx() as conn:
            await conn.execute(f"{sql} ON CONFLICT (name) DO UPDATE SET {update}", row)

    async def get_secret(self, name: str) -> SecretRecord | None:
        """One secret (sealed), or None."""
        row = await self.db.fetch_one("SELECT * FROM secrets WHERE name = ?", (name,))
        return SECRETS.record(row) if row else None

    async def list_secrets(self) -> list[SecretRecord]:
        """All secrets (sealed), by name."""
        rows = await self.db.fetch_all("SELECT * FROM secrets ORDER BY name")
        return [SECRETS.record(r) for r in rows]

    async def delete_secret(self, name: str) -> bool:
        """Delete a secret; False if it did not exist."""
        async with self.db.tx() as conn:
            cur = await conn.execute("DELETE FROM secrets WHERE name = ?", (name,))
            return cur.rowcount == 1

    async def touch_secret(self, name: str) -> None:
        """Record that a secret was just used."""
        async with self.db.tx() as conn:
            await conn.execute("UPDATE secrets SET last_used_at = ? WHERE name = ?", (now(), name))

    async def grant_credential_lease(self, lease: CredentialLeaseRecord) -> None:
        """Record a run's credential lease (replacing an earlier one of the same run)."""
        sql, row = CREDENTIAL_LEASES.insert(lease, replace_on=("run_id",))
        async with self.db.tx() as conn:
            await conn.execute(sql, row)

    async def revoke_credential_lease(self, run_id: str) -> None:
        """Revoke a run's credential lease."""
        await self.revoke_credential_leases([run_id])

    async def revoke_credential_leases(self, run_ids: Sequence[str]) -> None:
        """Revoke the credential leases of these runs (those not revoked yet)."""
        async with self.db.tx() as conn:
            await conn.executemany(
                "UPDATE credential_leases SET revoked_at = ? "
                "WHERE run_id = ? AND revoked_at IS NULL",
                [(now(), run_id) for run_id in run_ids],
            )

    async def get_credential_lease(self, run_id: str) -> CredentialLeaseRecord | None:
        """A run's credential lease."""
        row = await self.db.fetch_one("SELECT * FROM credential_leases WHERE run_id = ?", (run_id,))
        return CREDENTIAL_LEASES.record(row) if row else None

    async def add_use(self, entry: SecretUseRecord) -> None:
        """Append one secret-use audit entry."""
        sql, row = SECRET_AUDIT.insert(entry)
        async with self.db.tx() as conn:
            await conn.execute(sql, row)

    async def list_uses(
        self, run_id: str | None = None, limit: int = 100, secret: str | None = None
    ) -> list[SecretUseRecord]:
        """Secret-use audit entries, newest first (of one run, of one secret)."""
        where: list[str] = []
        args: list[Any] = []
        if run_id:
            where, args = [*where, "run_id = ?"], [*args, run_id]
        if secret:
            where, args = [*where, "secret = ?"], [*args, secret]
        sql = "SELECT * FROM secret_audit" + (f" WHERE {' AND '.join(where)}" if where else "")
        rows = await self.db.fetch_all(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))
        return [SECRET_AUDIT.record(r) for r in rows]

    async def reseal(self, reseal: Reseal) -> int:
        """Re-encrypt every secret; returns how many changed.

        Runs in ``tx()``: called inside a caller's transaction, it is part of that one.
        """
        count = 0
        async with self.db.tx() as conn:
            async with conn.execute("SELECT * FROM secrets") as cur:
                rows = list(await cur.fetchall())
            for row in rows:
                name = row["name"]
                context = secret_context(SECRETS.record(row))
                blob = reseal(row["ciphertext"], context, f"secret '{name}'")
                if blob != row["ciphertext"]:
                    await conn.execute(
                        "UPDATE secrets SET ciphertext = ? WHERE name = ?", (blob, name)
                    )
                    count += 1
        return count
