"""The credential vault: scoped, encrypted secrets, leased to runs, typed only where allowed.

A secret is sealed with the master key under associated data that binds its name, kind and scope,
so a ciphertext copied to another record, or a scope widened in the database, fails to decrypt.
A run gets a :class:`CredentialLease` naming the secrets its task lists; the lease resolves
``{{secret:NAME}}`` at typing time, only on allowed origins and profiles and only as the whole
value of a field that suits the secret (see :func:`field_refusal`), audits every use, and knows
every value it handed out (and every TOTP code it issued) so they can be redacted.

Where a secret may be typed (password inputs, named fields, one-time-code fields) is decided in
``profiles.secret_fields``; TOTP codes are made in ``profiles.totp``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from .crypto import secret_context
from .errors import SecretNotAvailableError, UnknownSecretError, UserError
from .hosts import origin_allowed, origin_of, parse_domain
from .keys import KeyRing
from .redact import MIN_SECRET_LENGTH, Redactor
from .secret_fields import FieldFacts, field_refusal
from .totp import totp_now, totp_seed

__all__ = [
    "SECRET_RE",
    "CredentialLease",
    "CredentialLeaseRecord",
    "SecretNotAvailableError",
    "SecretRecord",
    "SecretUseRecord",
    "UnknownSecretError",
    "Vault",
    "VaultStore",
]

SECRET_RE = re.compile(r"\{\{\s*secret:([A-Za-z0-9_.-]+)\s*\}\}")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class SecretRecord(BaseModel):
    """A stored secret: its scope and sealed value (never decrypted outside a lease)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    kind: Literal["value", "totp"]
    domains: list[str]
    profiles: list[str] = Field(default_factory=list, description="empty: any profile")
    fields: list[str] = Field(
        default_factory=list,
        description="labels or names of the fields it may be typed into; a value secret "
        "without fields is a password (password inputs only)",
    )
    ciphertext: bytes = Field(repr=False)
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None = None


class CredentialLeaseRecord(BaseModel):
    """What a run may use: granted at its start, revoked at its end (or when it dies)."""

    model_config = ConfigDict(extra="forbid")
    run_id: str
    profile: str
    secrets: list[str]
    origins: list[str]
    pid: int
    granted_at: datetime
    revoked_at: datetime | None = None


class SecretUseRecord(BaseModel):
    """One attempt to use a secret, allowed or refused."""

    model_config = ConfigDict(extra="forbid")
    run_id: str
    step_idx: int | None
    secret: str
    origin: str
    at: datetime
    allowed: bool
    reason: str | None = None


class VaultStore(Protocol):
    """Persistence the vault needs; ``runtime.Store``'s ``vault`` implements it."""

    async def put_secret(self, record: SecretRecord) -> None: ...
    async def get_secret(self, name: str) -> SecretRecord | None: ...
    async def list_secrets(self) -> list[SecretRecord]: ...
    async def delete_secret(self, name: str) -> bool: ...
    async def touch_secret(self, name: str) -> None: ...
    async def grant_credential_lease(self, lease: CredentialLeaseRecord) -> None: ...
    async def revoke_credential_lease(self, run_id: str) -> None: ...
    async def add_use(self, entry: SecretUseRecord) -> None: ...


def placeholder(name: str) -> str:
    """What a secret's value is replaced with wherever it would appear."""
    return "{{secret:" + name + "}}"


class ScopedSecret(Protocol):
    """What :func:`secret_use` reads of a secret (a record here, or a server's listing)."""

    @property
    def kind(self) -> str: ...

    @property
    def fields(self) -> list[str]: ...


def secret_use(record: ScopedSecret) -> str:
    """Where a secret may be typed, in words (for listings)."""
    if record.kind == "totp":
        extra = f" or {', '.join(record.fields)}" if record.fields else ""
        return f"one-time-code fields{extra}"
    if record.fields:
        return f"fields {', '.join(record.fields)}"
    return "password inputs"


# --- the vault --------------------------------------------------------------------------------


class Vault:
    """Set, list and remove secrets; lease them to runs."""

    def __init__(self, store: VaultStore, keys: KeyRing) -> None:
        self.store = store
        self.keys = keys
        self._redactor: tuple[tuple[tuple[str, datetime], ...], Redactor] | None = None
        """The last :meth:`redactor` and the secrets (name, updated) it was made from."""

    async def set(
        self,
        name: str,
        value: str,
        domains: Sequence[str],
        profiles: Sequence[str] = (),
        totp: bool = False,
        fields: Sequence[str] = (),
    ) -> SecretRecord:
        """Store a secret (replacing one of the same name); validates everything first.

        A value secret without ``fields`` is a password: it is typed only into password inputs.
        """
        if not _NAME.match(name):
            raise UserError(
                f"secret name {name!r}: expected letters, digits, '.', '_' or '-' "
                "(up to 128), starting with a letter or digit"
            )
        if not value:
            raise UserError(f"secret '{name}': an empty value is not allowed")
        if len(value) < MIN_SECRET_LENGTH:
            raise UserError(
                f"secret '{name}': at least {MIN_SECRET_LENGTH} characters (shorter values "
                "cannot be redacted reliably)"
            )
        if not domains:
            raise UserError(f"secret '{name}': give at least one --domain where it may be typed")
        for spec in domains:
            parse_domain(spec)
        if totp:
            totp_seed(value)
        wanted = [" ".join(f.split()) for f in fields]
        if any(not f for f in wanted):
            raise UserError(f"secret '{name}': --field: an empty field name is not allowed")
        now = datetime.now(UTC)
        old = await self.store.get_secret(name)
        record = SecretRecord(
            name=name,
            kind="totp" if totp else "value",
            domains=list(dict.fromkeys(domains)),
            profiles=list(dict.fromkeys(profiles)),
            fields=list(dict.fromkeys(wanted)),
            ciphertext=b"",
            created_at=old.created_at if old else now,
            updated_at=now,
        )
        sealed = self.keys.seal(value.encode(), secret_context(record))
        record = record.model_copy(update={"ciphertext": sealed})
        await self.store.put_secret(record)
        return record

    async def list(self) -> list[SecretRecord]:
        """Every secret's name, kind and scope (values stay sealed)."""
        return await self.store.list_secrets()

    async def remove(self, name: str) -> None:
        """Delete a secret."""
        if not await self.store.delete_secret(name):
            raise UnknownSecretError(f"unknown secret '{name}'")

    async def redactor(self) -> Redactor:
        """A redactor for every stored value secret (a last pass over what is shown long after
        a run: its own redactor is gone by then). Secrets that cannot be opened are skipped.
        Made again only when the stored secrets changed (pages ask for it on every view)."""
        values = [r for r in await self.list() if r.kind == "value"]
        stamp = tuple((r.name, r.updated_at) for r in values)
        if self._redactor is not None and self._redactor[0] == stamp:
            return self._redactor[1]
        redactor = Redactor()
        for record in values:
            try:
                redactor.add(await self.reveal(record), placeholder(record.name))
            except UserError:
                continue
        self._redactor = (stamp, redactor)
        return redactor

    async def reveal(self, record: SecretRecord) -> str:
        """Decrypt a secret (for leases only): a clear error names it if it cannot be opened."""
        return self.keys.open(
            record.ciphertext, secret_context(record), f"secret '{record.name}'"
        ).decode()

    async def lease(
        self, run_id: str, profile: str, names: Sequence[str], redactor: Redactor
    ) -> CredentialLease:
        """Grant ``run_id`` the secrets its task lists; unknown names are a user error."""
        records: dict[str, SecretRecord] = {}
        for name in dict.fromkeys(names):
            record = await self.store.get_secret(name)
            if record is None:
                raise UnknownSecretError(
                    f"unknown secret '{name}' (set it with: corral secrets set {name} --domain ...)"
                )
            records[name] = record
        values = {name: await self.reveal(r) for name, r in records.items()}
        for name, value in values.items():
            redactor.add(value, placeholder(name))
        lease = CredentialLease(self.store, run_id, profile, records, values, redactor)
        await self.store.grant_credential_lease(
            CredentialLeaseRecord(
                run_id=run_id,
                profile=profile,
                secrets=list(records),
                origins=sorted({d for r in records.values() for d in r.domains}),
                pid=os.getpid(),
                granted_at=datetime.now(UTC),
            )
        )
        return lease


class CredentialLease:
    """The secrets one run may use, and where."""

    def __init__(
        self,
        store: VaultStore,
        run_id: str,
        profile: str,
        records: dict[str, SecretRecord],
        values: dict[str, str],
        redactor: Redactor,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.profile = profile
        self.records = records
        self._values = values
        self.redactor = redactor
        self.step_idx: int | None = None
        self.revoked = False

    def available_on(self, origin: str) -> list[str]:
        """Names of the leased secrets usable on ``origin`` (what a model may be told)."""
        return [
            name
            for name, r in self.records.items()
            if origin_allowed(origin, r.domains) and (not r.profiles or self.profile in r.profiles)
        ]

    def _refusal(self, name: str, origin: str) -> str | None:
        if self.revoked:
            return "the run's credential lease is revoked"
        record = self.records.get(name)
        if record is None:
            return "it is not listed under the task's secrets"
        if record.profiles and self.profile not in record.profiles:
            return f"it is not bound to profile '{self.profile}'"
        if not origin_allowed(origin, record.domains):
            return f"its domains ({', '.join(record.domains)}) do not include {origin}"
        return None

    async def _audit(self, name: str, origin: str, reason: str | None) -> None:
        await self.store.add_use(
            SecretUseRecord(
                run_id=self.run_id,
                step_idx=self.step_idx,
                secret=name,
                origin=origin,
                at=datetime.now(UTC),
                allowed=reason is None,
                reason=reason,
            )
        )

    async def resolve(self, text: str, origin: str, facts: FieldFacts) -> str:
        """What to type for a fill value ``text`` into the field ``facts`` on ``origin``.

        Text without placeholders comes back as it is. A placeholder must be the whole value,
        the secret's scope must include ``origin`` and every origin the field's form posts to,
        and the field must suit the secret (:func:`field_refusal`). Every attempt is audited;
        a refusal raises before anything is typed.
        """
        names = SECRET_RE.findall(text)
        if not names:
            return text
        whole = SECRET_RE.fullmatch(text)
        for name in dict.fromkeys(names):
            violation = "secret_scope"
            reason = self._refusal(name, origin)
            if reason is None:
                for target in facts.form_targets:
                    posts_to = origin_of(target)
                    why = self._refusal(name, posts_to)
                    if why is not None:
                        reason = f"the field's form posts to {posts_to}: {why}"
                        break
            if reason is None and whole is None:
                violation = "secret_field"
                reason = "a secret is typed only as the whole value of a field, not inside text"
            if reason is None:
                why = field_refusal(self.records[name], facts)
                if why is not None:
                    violation, reason = "secret_field", why
            await self._audit(name, origin, reason)
            if reason is not None:
                raise SecretNotAvailableError(
                    f"secret not available here: '{name}' cannot be used on {origin}: {reason}",
                    violation,
                )
        assert whole is not None
        name = whole.group(1)
        await self.store.touch_secret(name)
        record = self.records[name]
        if record.kind == "totp":
            code = totp_now(self._values[name])
            self.redactor.add(code, placeholder(name))
            return code
        return self._values[name]

    async def revoke(self) -> None:
        """End the lease: nothing more resolves."""
        self.revoked = True
        await self.store.revoke_credential_lease(self.run_id)
