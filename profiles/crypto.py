"""Encryption at rest: AES-256-GCM under a master key, and passphrase-sealed export bundles.

Every ciphertext carries a magic, the id of the key that sealed it and a fresh 96-bit nonce, and
is bound to a context string (associated data) such as ``profile-state:alice``: a ciphertext copied
to another record, or opened under another key, fails loudly instead of yielding garbage.

The contexts themselves (what each sealed value is bound to) are defined here, once: a secret's
(:func:`secret_context`), a profile's saved state, its packed user-data dir and its proxy password,
and :data:`SEALED_PREFIX`, the header marking a sealed proxy password inside stored settings.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import StateDecryptError, UserError

if TYPE_CHECKING:
    from .vault import SecretRecord

__all__ = [
    "MASTER_KEY_ENV",
    "SEALED_PREFIX",
    "MasterKey",
    "open_with_passphrase",
    "proxy_context",
    "seal_with_passphrase",
    "secret_context",
    "state_context",
    "user_data_context",
]

MASTER_KEY_ENV = "CORRAL_MASTER_KEY"
_MAGIC = b"CRL1"
_PASS_MAGIC = b"CRP1"
_KEY_ID_LEN = 8
_NONCE_LEN = 12
_SALT_LEN = 16

SEALED_PREFIX = "sealed:"
"""How a sealed proxy password is marked in the stored settings (base64 of the sealed blob)."""


def secret_context(record: SecretRecord) -> str:
    """Associated data for a secret: its name, kind, scope and fields.

    Fields are bound only when there are some, so secrets stored before fields existed open as
    they are; adding, widening or removing fields in the database makes a secret fail to open.
    """
    scope: list[object] = [record.kind, sorted(record.domains), sorted(record.profiles)]
    if record.fields:
        scope.append(sorted(record.fields))
    digest = hashlib.sha256(json.dumps(scope).encode()).hexdigest()[:32]
    return f"secret:{record.name}:{digest}"


def state_context(profile: str) -> str:
    """The associated data a profile's saved storage state is sealed with."""
    return f"profile-state:{profile}"


def user_data_context(profile: str) -> str:
    """The associated data a persistent profile's packed user-data dir is sealed with."""
    return f"profile-userdata:{profile}"


def proxy_context(profile: str) -> str:
    """The associated data a profile's proxy password is sealed with."""
    return f"profile-proxy:{profile}"


class MasterKey:
    """A 256-bit AES-GCM key with a short public id used to tell keys apart."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise UserError(f"master key must be 32 bytes, got {len(key)}")
        self._aead = AESGCM(key)
        self.raw = key
        self.key_id = hashlib.sha256(b"corral-key-id" + key).digest()[:_KEY_ID_LEN]

    @classmethod
    def generate(cls) -> MasterKey:
        """A fresh random key."""
        return cls(AESGCM.generate_key(bit_length=256))

    @classmethod
    def from_text(cls, text: str, source: str) -> MasterKey:
        """Parse a key given as urlsafe base64 (44 chars) or hex (64 chars)."""
        text = text.strip()
        try:
            raw = bytes.fromhex(text) if len(text) == 64 else base64.urlsafe_b64decode(text)
        except ValueError as exc:
            raise UserError(f"{source}: expected 32 bytes as base64 or hex") from exc
        if len(raw) != 32:
            raise UserError(f"{source}: expected 32 bytes as base64 or hex, got {len(raw)} bytes")
        return cls(raw)

    @classmethod
    def load(cls, home: Path, env_value: str | None) -> MasterKey:
        """The key from ``CORRAL_MASTER_KEY``, else from ``HOME/master.key`` (created 0600)."""
        if env_value:
            return cls.from_text(env_value, MASTER_KEY_ENV)
        path = home / "master.key"
        if not path.exists():
            key = AESGCM.generate_key(bit_length=256)
            home.mkdir(parents=True, exist_ok=True)
            try:
                # O_EXCL: two processes racing to create the key must not both win.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as fh:
                    fh.write(base64.urlsafe_b64encode(key).decode() + "\n")
        return cls.from_text(path.read_text(), str(path))

    @property
    def fingerprint(self) -> str:
        """The key id as hex, safe to print."""
        return self.key_id.hex()

    def seal(self, plaintext: bytes, context: str) -> bytes:
        """Encrypt ``plaintext`` bound to ``context``."""
        nonce = os.urandom(_NONCE_LEN)
        body = self._aead.encrypt(nonce, plaintext, _aad(context, self.key_id))
        return _MAGIC + self.key_id + nonce + body

    def open(self, blob: bytes, context: str, what: str) -> bytes:
        """Decrypt a blob sealed for ``context``; ``what`` names the data in errors."""
        header = len(_MAGIC) + _KEY_ID_LEN + _NONCE_LEN
        if len(blob) < header + 16 or not blob.startswith(_MAGIC):
            raise StateDecryptError(f"{what}: stored data is corrupted (not a corral ciphertext)")
        key_id = blob[len(_MAGIC) : len(_MAGIC) + _KEY_ID_LEN]
        if key_id != self.key_id:
            raise StateDecryptError(
                f"{what}: encrypted with another master key (key {key_id.hex()}, "
                f"current key {self.fingerprint}); set {MASTER_KEY_ENV} to the key it was "
                "saved with"
            )
        nonce = blob[len(_MAGIC) + _KEY_ID_LEN : header]
        try:
            return self._aead.decrypt(nonce, blob[header:], _aad(context, key_id))
        except InvalidTag as exc:
            raise StateDecryptError(
                f"{what}: stored data is corrupted or was tampered with"
            ) from exc


def _aad(context: str, key_id: bytes) -> bytes:
    return b"corral\x00" + context.encode() + b"\x00" + key_id


def _passphrase_key(passphrase: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase.encode())


def seal_with_passphrase(plaintext: bytes, passphrase: str, context: str) -> bytes:
    """Encrypt for export: a key derived from ``passphrase`` with scrypt and a random salt."""
    if not passphrase:
        raise UserError("an empty passphrase is not allowed")
    salt, nonce = os.urandom(_SALT_LEN), os.urandom(_NONCE_LEN)
    body = AESGCM(_passphrase_key(passphrase, salt)).encrypt(nonce, plaintext, context.encode())
    return _PASS_MAGIC + salt + nonce + body


def open_with_passphrase(blob: bytes, passphrase: str, context: str, what: str) -> bytes:
    """Decrypt an export sealed by :func:`seal_with_passphrase`."""
    header = len(_PASS_MAGIC) + _SALT_LEN + _NONCE_LEN
    if len(blob) < header + 16 or not blob.startswith(_PASS_MAGIC):
        raise StateDecryptError(f"{what}: not a corral export ciphertext")
    salt = blob[len(_PASS_MAGIC) : len(_PASS_MAGIC) + _SALT_LEN]
    nonce = blob[len(_PASS_MAGIC) + _SALT_LEN : header]
    try:
        return AESGCM(_passphrase_key(passphrase, salt)).decrypt(
            nonce, blob[header:], context.encode()
        )
    except InvalidTag as exc:
        raise StateDecryptError(f"{what}: wrong passphrase or corrupted bundle") from exc
