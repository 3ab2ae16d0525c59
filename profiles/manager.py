"""Profiles: create, list, show, delete, export and import, and their encrypted saved state.

A profile's storage state (cookies, local storage, IndexedDB) is sealed with the master key and
kept in the store. A ``persistent`` profile also keeps its whole Chromium user-data dir, packed and
sealed, as the object ``profiles/NAME/user-data.tar.enc`` of an :class:`ArchiveStore` between runs
(by default the file of that name under HOME; with ``CORRAL_ARTIFACTS_URL`` an S3 bucket, so any
host can restore it). The archive is sealed before it leaves the process: the object store never
sees plain text. While a run uses it, the dir is unpacked in ``HOME/profiles/NAME/live``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from .crypto import (
    SEALED_PREFIX,
    open_with_passphrase,
    proxy_context,
    seal_with_passphrase,
    state_context,
    user_data_context,
)
from .errors import (
    InvalidProfileError,
    ProfileExistsError,
    ProfileNotFoundError,
    StateDecryptError,
)
from .keys import KeyRing
from .lease import LeaseHolder, LeaseStore
from .private import private_dir
from .settings import ProfileRecord, ProfileSettings
from .validation import describe_errors

if TYPE_CHECKING:
    import tarfile

__all__ = [
    "EXPORT_FORMAT",
    "ArchiveStore",
    "ProfileManager",
    "ProfileStore",
    "archive_key",
    "atomic_write",
]

EXPORT_FORMAT = "corral-profile/1"
# Caches and lock files are rebuilt by Chromium; packing them only costs time and space.
_SKIP_USER_DATA = {
    "Cache",
    "Code Cache",
    "GPUCache",
    "GrShaderCache",
    "GraphiteDawnCache",
    "ShaderCache",
    "DawnCache",
    "Crashpad",
    "component_crx_cache",
    "SingletonLock",
    "SingletonSocket",
    "SingletonCookie",
}


class ProfileStore(LeaseStore, Protocol):
    """Persistence the profile manager needs; ``runtime.Store``'s ``profiles`` implements it."""

    async def insert_profile(self, record: ProfileRecord) -> bool: ...
    async def get_profile(self, name: str) -> ProfileRecord | None: ...
    async def list_profiles(self) -> list[ProfileRecord]: ...
    async def update_profile_settings(self, name: str, settings: ProfileSettings) -> bool: ...
    async def save_profile_state(
        self, name: str, sealed: bytes | None, held: LeaseHolder | None = None
    ) -> bool: ...
    async def delete_profile(self, name: str) -> bool: ...


class ArchiveStore(Protocol):
    """Where sealed user-data archives are kept, by key; ``runtime.ObjectStore`` implements it."""

    async def put(self, key: str, data: bytes) -> None: ...
    async def get(self, key: str) -> bytes | None: ...
    async def delete(self, key: str) -> None: ...
    async def delete_prefix(self, prefix: str) -> int: ...


def archive_key(name: str) -> str:
    """The object key of a profile's sealed user-data archive."""
    return f"profiles/{name}/user-data.tar.enc"


def _validation_message(exc: ValidationError, source: str) -> str:
    return "; ".join(f"{source}: {line}" for line in describe_errors(exc))


class ProfileManager:
    """The Python API for profiles."""

    def __init__(
        self, store: ProfileStore, key: KeyRing, home: Path, archives: ArchiveStore
    ) -> None:
        self.store = store
        self.key = key
        self.home = home
        self.archives = archives

    def _dir(self, name: str) -> Path:
        return self.home / "profiles" / name

    # A proxy password is a credential: it is stored sealed like a secret, and only the copy in
    # memory (what ``get`` returns, what the session hands to the proxy) holds the value.

    def _seal(self, name: str, settings: ProfileSettings) -> ProfileSettings:
        proxy = settings.proxy
        if proxy is None or not proxy.password or proxy.password.startswith(SEALED_PREFIX):
            return settings
        blob = self.key.seal(proxy.password.encode(), proxy_context(name))
        sealed = proxy.model_copy(
            update={"password": SEALED_PREFIX + base64.b64encode(blob).decode()}
        )
        return settings.model_copy(update={"proxy": sealed})

    def _open(self, record: ProfileRecord) -> ProfileRecord:
        proxy = record.settings.proxy
        if proxy is None or not proxy.password or not proxy.password.startswith(SEALED_PREFIX):
            return record
        blob = base64.b64decode(proxy.password.removeprefix(SEALED_PREFIX))
        plain = self.key.open(
            blob, proxy_context(record.name), f"profile '{record.name}' proxy password"
        )
        settings = record.settings.model_copy(
            update={"proxy": proxy.model_copy(update={"password": plain.decode()})}
        )
        return record.model_copy(update={"settings": settings})

    async def create(self, name: str, settings: ProfileSettings | None = None) -> ProfileRecord:
        """Create a profile; fails if the name is taken or invalid."""
        now = datetime.now(UTC)
        try:
            record = ProfileRecord(
                name=name, settings=settings or ProfileSettings(), created_at=now, updated_at=now
            )
        except ValidationError as exc:
            raise InvalidProfileError(_validation_message(exc, f"profile '{name}'")) from exc
        stored = record.model_copy(update={"settings": self._seal(name, record.settings)})
        if not await self.store.insert_profile(stored):
            raise ProfileExistsError(f"profile '{name}' already exists")
        return record

    async def get(self, name: str) -> ProfileRecord:
        """A profile by name, or ProfileNotFoundError listing the known ones."""
        found = await self.store.get_profile(name)
        record = self._open(found) if found is not None else None
        if record is None:
            known = ", ".join(p.name for p in await self.store.list_profiles()) or "none"
            raise ProfileNotFoundError(
                f"unknown profile '{name}' (known profiles: {known}); "
                f"create it with: corral profiles create {name}"
            )
        return record

    async def list(self) -> list[ProfileRecord]:
        """All profiles."""
        return [self._open(r) for r in await self.store.list_profiles()]

    async def update(self, name: str, settings: ProfileSettings) -> None:
        """Replace a profile's settings."""
        if not await self.store.update_profile_settings(name, self._seal(name, settings)):
            await self.get(name)

    async def delete(self, name: str) -> None:
        """Delete a profile, its saved state and its user-data archive."""
        if not await self.store.delete_profile(name):
            await self.get(name)
        await self.archives.delete_prefix(f"profiles/{name}/")
        shutil.rmtree(self._dir(name), ignore_errors=True)

    # --- saved state ------------------------------------------------------------------------

    def open_state(self, record: ProfileRecord) -> dict[str, Any] | None:
        """The decrypted storage state of a profile, or None if it has none yet."""
        if record.state is None:
            return None
        plain = self.key.open(
            record.state, state_context(record.name), f"profile '{record.name}' saved state"
        )
        try:
            state: dict[str, Any] = json.loads(plain)
        except ValueError as exc:
            raise StateDecryptError(f"profile '{record.name}': saved state is not JSON") from exc
        return state

    async def save_state(
        self, name: str, state: dict[str, Any], held: LeaseHolder | None = None
    ) -> bool:
        """Seal and store a profile's storage state (atomically replaces the previous one);
        with ``held``, only while that lease is still the profile's (False otherwise)."""
        sealed = self.key.seal(json.dumps(state).encode(), state_context(name))
        return await self.store.save_profile_state(name, sealed, held)

    async def clear_state(self, name: str) -> None:
        """Forget a profile's saved state (log it out everywhere)."""
        await self.get(name)
        await self.store.save_profile_state(name, None)
        await self.archives.delete(archive_key(name))

    # --- persistent mode: the user-data dir -----------------------------------------------

    async def unpack_user_data(self, name: str) -> Path:
        """A fresh private dir holding the profile's Chromium user data (empty the first time)."""
        live = self._dir(name) / "live"
        # A live dir left by a crashed run may be half-written; the sealed archive is the truth.
        shutil.rmtree(live, ignore_errors=True)
        private_dir(live)
        sealed = await self.archives.get(archive_key(name))
        if sealed is not None:
            plain = self.key.open(sealed, user_data_context(name), f"profile '{name}' user data")
            await asyncio.to_thread(_extract, plain, live)
        return live

    async def pack_user_data(self, name: str, live: Path) -> None:
        """Seal the user-data dir into the profile's archive and remove the live copy.

        The archive is replaced whole (or not at all): a failed upload leaves the previous one.
        """
        plain = await asyncio.to_thread(_pack, live)
        sealed = self.key.seal(plain, user_data_context(name))
        await self.archives.put(archive_key(name), sealed)
        shutil.rmtree(live, ignore_errors=True)

    # --- export / import ----------------------------------------------------------------------

    async def export(self, name: str, passphrase: str | None) -> bytes:
        """A JSON bundle of settings, plus the state sealed under ``passphrase`` if given."""
        record = await self.get(name)
        bundle: dict[str, Any] = {
            "format": EXPORT_FORMAT,
            "name": record.name,
            # The proxy password travels only sealed under the passphrase, like the state.
            "settings": record.settings.model_dump(mode="json", exclude={"proxy": {"password"}}),
            "state": None,
        }
        proxy = record.settings.proxy
        if passphrase is not None and proxy is not None and proxy.password:
            sealed_pw = seal_with_passphrase(proxy.password.encode(), passphrase, EXPORT_FORMAT)
            bundle["proxy_password"] = base64.b64encode(sealed_pw).decode()
        state = self.open_state(record)
        if passphrase is not None and state is not None:
            sealed = seal_with_passphrase(json.dumps(state).encode(), passphrase, EXPORT_FORMAT)
            bundle["state"] = base64.b64encode(sealed).decode()
        return json.dumps(bundle, indent=2).encode()

    async def import_(
        self, data: bytes, source: str, passphrase: str | None, name: str | None = None
    ) -> ProfileRecord:
        """Create a profile from an export bundle; the state needs the bundle's passphrase."""
        try:
            bundle = json.loads(data)
        except ValueError as exc:
            raise InvalidProfileError(f"{source}: not a corral profile bundle (not JSON)") from exc
        if not isinstance(bundle, dict) or bundle.get("format") != EXPORT_FORMAT:
            raise InvalidProfileError(f"{source}: format: expected '{EXPORT_FORMAT}'")
        try:
            settings = ProfileSettings.model_validate(bundle.get("settings"))
        except ValidationError as exc:
            raise InvalidProfileError(_validation_message(exc, f"{source}: settings")) from exc
        state = None
        if bundle.get("state"):
            if passphrase is None:
                raise InvalidProfileError(
                    f"{source}: the bundle holds saved state; a passphrase is needed"
                )
            state = json.loads(
                open_with_passphrase(
                    base64.b64decode(bundle["state"]), passphrase, EXPORT_FORMAT, source
                )
            )
        if bundle.get("proxy_password") and settings.proxy is not None:
            if passphrase is None:
                raise InvalidProfileError(
                    f"{source}: the bundle holds a proxy password; a passphrase is needed"
                )
            password = open_with_passphrase(
                base64.b64decode(bundle["proxy_password"]), passphrase, EXPORT_FORMAT, source
            ).decode()
            settings = settings.model_copy(
                update={"proxy": settings.proxy.model_copy(update={"password": password})}
            )
        target = name or str(bundle.get("name", ""))
        record = await self.create(target, settings)
        if state is not None:
            await self.save_state(target, state)
        return record


def _skip_caches(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if Path(info.name).name in _SKIP_USER_DATA else info


def _pack(live: Path) -> bytes:
    import tarfile  # persistent profiles only

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=3) as tar:
        for entry in sorted(live.iterdir()):
            tar.add(entry, arcname=entry.name, filter=_skip_caches)
    return buf.getvalue()


def _extract(plain: bytes, live: Path) -> None:
    import tarfile  # persistent profiles only

    with tarfile.open(fileobj=io.BytesIO(plain), mode="r:gz") as tar:
        tar.extractall(live, filter="data")


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file."""
    if not path.parent.exists():
        private_dir(path.parent)  # profile folders: owner-only like the rest of the home
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
