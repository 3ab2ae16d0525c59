"""``corral vault rotate-key``: re-encrypt every secret and saved profile state under a new key.

Crash-safe by construction. Every ciphertext names its key, and until the last step the key ring
loaded from disk holds both keys (``master.key`` and ``master.key.next``):

1. the new key is written to ``master.key.next`` (0600, atomic);
2. every sealed row of the store (secrets, profile states) is resealed in ONE transaction;
3. each persistent profile's user-data archive (in the object store) is resealed and replaced
   whole;
4. ``master.key.next`` atomically replaces ``master.key``.

Interrupted anywhere, every blob is under the old or the new key and both are on disk; running the
command again resumes with the same new key. Key files and their folder are fsynced at each step.

One rotation at a time (an exclusive ``flock`` on ``HOME/rotate.lock``; a second one fails at
once), and none while a run is going: a run holds its profile's state in memory and seals it again
under the key it started with when it ends. The rotation takes the lease of every profile for its
whole length, so it is refused while a live run holds one (stale leases of dead processes are
taken over) and no run can start on any profile until it has finished.

With ``CORRAL_MASTER_KEY`` (no key file) the new key comes from the caller and the caller updates
the environment afterwards; until then ``CORRAL_MASTER_KEY_PREVIOUS`` lets the ring open data
under either key.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiosqlite

from profiles import (
    LEASE_TTL_S,
    PRIVATE_FILE,
    KeyRing,
    LeaseHolder,
    MasterKey,
    UserError,
    archive_key,
    fsync_dir,
    write_key_file,
)
from runtime.errors import RotationBlockedError
from runtime.objects import ObjectStore

if TYPE_CHECKING:
    from runtime.app import Runtime

__all__ = ["LOCK_NAME", "OnResealed", "RotationBlockedError", "RotationReport", "rotate_key"]

LOCK_NAME = "rotate.lock"

OnResealed = Callable[[aiosqlite.Connection, int, str], Awaitable[None]]
"""Called inside the transaction that reseals the store, with the rows resealed and the new
key's fingerprint: an audit row written there commits with the resealed rows."""


@dataclass(frozen=True)
class RotationReport:
    """What a rotation did."""

    new_fingerprint: str
    rows_resealed: int
    archives_resealed: int
    key_file: Path | None


async def _archives(objects: ObjectStore) -> list[tuple[str, str]]:
    """Each persistent profile's archive in the object store: (profile, key)."""
    found = []
    for key in await objects.list("profiles/"):
        parts = key.split("/")
        if len(parts) == 3 and key == archive_key(parts[1]):
            found.append((parts[1], key))
    return found


@contextlib.contextmanager
def _exclusive(home: Path) -> Iterator[None]:
    """Hold ``HOME/rotate.lock`` exclusively, or fail at once naming the holder."""
    path = home / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise RotationBlockedError(
                f"{path}: another key rotation is running (pid {holder}); wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.asynccontextmanager
async def _all_leases(rt: Runtime) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Hold the lease of every profile; yields a coroutine function that renews them all."""
    holder = LeaseHolder.current(f"key-rotation-{secrets.token_hex(3)}")
    taken: list[str] = []
    try:
        for record in await rt.store.profiles.list_profiles():
            other = await rt.store.profiles.take_lease(record.name, holder, LEASE_TTL_S)
            if other is not None:
                raise RotationBlockedError(
                    f"profile '{record.name}' is in use by run {other.run_id} (pid {other.pid} "
                    f"on {other.host}): rotate the key when no run is going"
                )
            taken.append(record.name)

        async def renew() -> None:
            for name in taken:
                await rt.store.profiles.renew_lease(name, holder.run_id)

        yield renew
    finally:
        for name in taken:
            await rt.store.profiles.release_lease(name, holder.run_id)


async def rotate_key(
    rt: Runtime,
    new_key: MasterKey | None = None,
    checkpoint: Callable[[str], None] = lambda _stage: None,
    on_resealed: OnResealed | None = None,
) -> RotationReport:
    """Rotate the master key; ``checkpoint(stage)`` is called after each durable stage.

    Refused (:class:`RotationBlockedError`, nothing changed) while another rotation is running or
    a live run holds a profile lease. An actor rotates through
    :meth:`runtime.services.KeyService.rotate`, which audits it via ``on_resealed``.
    """
    with _exclusive(rt.settings.home):
        async with _all_leases(rt) as renew:
            return await _rotate(rt, new_key, checkpoint, renew, on_resealed)


async def _rotate(
    rt: Runtime,
    new_key: MasterKey | None,
    checkpoint: Callable[[str], None],
    renew: Callable[[], Awaitable[None]],
    on_resealed: OnResealed | None,
) -> RotationReport:
    home = rt.settings.home
    file_mode = rt.settings.master_key is None
    next_path = home / "master.key.next"
    if file_mode:
        if next_path.exists():
            resumed = MasterKey.from_text(next_path.read_text(), str(next_path))
            if new_key is not None and new_key.key_id != resumed.key_id:
                raise UserError(
                    f"{next_path}: an interrupted rotation to another key is pending; "
                    "run rotate-key without a new key to finish it"
                )
            new_key = resumed
        else:
            new_key = new_key or MasterKey.generate()
            write_key_file(next_path, new_key)
        checkpoint("next-key-written")
    elif new_key is None:
        raise UserError(
            "CORRAL_MASTER_KEY is set: give the new key on stdin "
            "(32 bytes, base64 or hex), then set CORRAL_MASTER_KEY to it"
        )
    ring = KeyRing(new_key, rt.key.keys)
    async with rt.store.tx() as db:
        rows = await rt.store.reseal_all(ring.reseal)
        if on_resealed is not None:
            await on_resealed(db, rows, new_key.fingerprint)
    checkpoint("store-resealed")
    archives = 0
    for name, key in await _archives(rt.objects):
        blob = await rt.objects.get(key)
        if blob is None:
            continue
        sealed = ring.reseal(blob, f"profile-userdata:{name}", f"profile '{name}' user data")
        if sealed is not blob:
            await rt.objects.put(key, sealed)
            archives += 1
            await renew()
            checkpoint(f"archive-resealed:{name}")
    key_file = None
    if file_mode:
        key_file = home / "master.key"
        os.replace(next_path, key_file)
        fsync_dir(home)
        checkpoint("key-replaced")
    rt.key.promote(new_key)
    return RotationReport(new_key.fingerprint, rows, archives, key_file)
