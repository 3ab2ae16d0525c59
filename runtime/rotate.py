"""``corral vault rotate-key``: re-encrypt every secret and saved profile state under a new key.

Crash-safe by construction. Every ciphertext names its key, and until the last step the key ring
loaded from disk holds both keys (``master.key`` and ``master.key.next``):

1. the new key is written to ``master.key.next`` (0600, atomic);
2. every sealed row of the store (secrets, profile states) is resealed in ONE transaction;
3. each persistent profile's user-data archive is resealed and atomically replaced;
4. ``master.key.next`` atomically replaces ``master.key``.

Interrupted anywhere, every blob is under the old or the new key and both are on disk; running the
command again resumes with the same new key. With ``CORRAL_MASTER_KEY`` (no key file) the new key
comes from the caller and the caller updates the environment afterwards; until then
``CORRAL_MASTER_KEY_PREVIOUS`` lets the ring open data under either key.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from profiles import KeyRing, MasterKey, UserError, atomic_write, write_key_file

from .app import Runtime

__all__ = ["RotationReport", "rotate_key"]


@dataclass(frozen=True)
class RotationReport:
    """What a rotation did."""

    new_fingerprint: str
    rows_resealed: int
    archives_resealed: int
    key_file: Path | None


def _archives(home: Path) -> list[tuple[str, Path]]:
    root = home / "profiles"
    if not root.is_dir():
        return []
    return sorted((p.parent.name, p) for p in root.glob("*/user-data.tar.enc") if p.is_file())


async def rotate_key(
    rt: Runtime,
    new_key: MasterKey | None = None,
    checkpoint: Callable[[str], None] = lambda _stage: None,
) -> RotationReport:
    """Rotate the master key; ``checkpoint(stage)`` is called after each durable stage."""
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
    rows = await rt.store.reseal_all(ring.reseal)
    checkpoint("store-resealed")
    archives = 0
    for name, path in _archives(home):
        blob = path.read_bytes()
        sealed = ring.reseal(blob, f"profile-userdata:{name}", f"profile '{name}' user data")
        if sealed is not blob:
            atomic_write(path, sealed)
            archives += 1
            checkpoint(f"archive-resealed:{name}")
    key_file = None
    if file_mode:
        key_file = home / "master.key"
        os.replace(next_path, key_file)
        checkpoint("key-replaced")
    rt.key.promote(new_key)
    return RotationReport(new_key.fingerprint, rows, archives, key_file)
