"""The key ring: the master key that seals new data, plus keys that may still open old data.

Every ciphertext names the id of the key that sealed it, so a ring can hold the current key and,
while a rotation is under way, the next one: whichever sealed a blob opens it. That is what makes
``rotate_key`` crash-safe: at every instant each blob is sealed under the old or the new key, and
the ring loaded from disk holds both until the rotation has finished.

Key sources, in order: ``CORRAL_MASTER_KEY`` (and ``CORRAL_MASTER_KEY_PREVIOUS`` while rotating),
else the key file ``HOME/master.key`` created 0600 (and ``HOME/master.key.next`` while rotating).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from pathlib import Path

from .crypto import MASTER_KEY_ENV, MasterKey
from .errors import StateDecryptError
from .private import PRIVATE_FILE, private_dir

__all__ = ["PREVIOUS_KEY_ENV", "KeyRing", "fsync_dir", "write_key_file"]

PREVIOUS_KEY_ENV = "CORRAL_MASTER_KEY_PREVIOUS"
_HEADER = len(b"CRL1")


def fsync_dir(path: Path) -> None:
    """Make the entries of folder ``path`` (a new or renamed file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_new(path: Path, key: MasterKey) -> None:
    """Create ``path`` (O_EXCL, 0600) holding ``key``, its content on disk before it returns."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), PRIVATE_FILE)
        fh.write(base64.urlsafe_b64encode(key.raw).decode() + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def write_key_file(path: Path, key: MasterKey) -> None:
    """Write ``key`` to ``path`` atomically with mode 0600; durable (file and folder) on return."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    _write_new(tmp, key)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _first_key(path: Path) -> None:
    """Create the first key file, unless another process just did.

    Written whole under a private name, then linked into place: ``link`` never replaces, so of
    two racing processes one wins and the other reads a complete file, never a half-written one.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    tmp.unlink(missing_ok=True)
    _write_new(tmp, MasterKey.generate())
    try:
        os.link(tmp, path)
    except FileExistsError:
        return
    finally:
        tmp.unlink(missing_ok=True)
    # A crash right after must not leave a store sealed under a key whose file is not on disk.
    fsync_dir(path.parent)


class KeyRing:
    """Seals with ``current``; opens with whichever key of the ring sealed a blob."""

    def __init__(self, current: MasterKey, others: Sequence[MasterKey] = ()) -> None:
        self.current = current
        self._keys = {k.key_id: k for k in (*others, current)}

    @classmethod
    def load(cls, home: Path, env: dict[str, str] | None = None) -> KeyRing:
        """The ring from the environment, else from the key files in ``home``."""
        env = env if env is not None else {}
        if env.get(MASTER_KEY_ENV):
            current = MasterKey.from_text(env[MASTER_KEY_ENV], MASTER_KEY_ENV)
            previous = env.get(PREVIOUS_KEY_ENV)
            others = [MasterKey.from_text(previous, PREVIOUS_KEY_ENV)] if previous else []
            return cls(current, others)
        path = home / "master.key"
        if not path.exists():
            private_dir(home)
            _first_key(path)
        current = MasterKey.load(home, None)
        nxt = home / "master.key.next"
        # A rotation interrupted before its last step leaves the next key beside the current.
        others = [MasterKey.from_text(nxt.read_text(), str(nxt))] if nxt.exists() else []
        return cls(current, others)

    @property
    def key_id(self) -> bytes:
        """The id of the sealing key."""
        return self.current.key_id

    @property
    def fingerprint(self) -> str:
        """The sealing key's id as hex."""
        return self.current.fingerprint

    @property
    def keys(self) -> list[MasterKey]:
        """Every key of the ring."""
        return list(self._keys.values())

    def promote(self, key: MasterKey) -> None:
        """Make ``key`` the sealing key (after a rotation); older keys still open old data."""
        self._keys[key.key_id] = key
        self.current = key

    def seal(self, plaintext: bytes, context: str) -> bytes:
        """Encrypt under the current key."""
        return self.current.seal(plaintext, context)

    def sealed_by(self, blob: bytes) -> bytes:
        """The id of the key that sealed ``blob`` (empty if it is not a corral ciphertext)."""
        return (
            blob[_HEADER : _HEADER + len(self.current.key_id)] if blob[:_HEADER] == b"CRL1" else b""
        )

    def open(self, blob: bytes, context: str, what: str) -> bytes:
        """Decrypt with the ring's key that sealed ``blob``."""
        key = self._keys.get(self.sealed_by(blob))
        if key is None:
            if not self.sealed_by(blob):
                raise StateDecryptError(
                    f"{what}: stored data is corrupted (not a corral ciphertext)"
                )
            return self.current.open(blob, context, what)  # raises "another master key"
        return key.open(blob, context, what)

    def reseal(self, blob: bytes, context: str, what: str) -> bytes:
        """``blob`` sealed under the current key (unchanged if it already is)."""
        if self.sealed_by(blob) == self.current.key_id:
            return blob
        return self.seal(self.open(blob, context, what), context)
