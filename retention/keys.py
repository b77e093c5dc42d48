"""Master key, and the key store that holds every bucket and subject key outside the database.

Why a separate file: purge and erasure are *key destruction*. If keys lived in the database, a
WAL segment, replica or backup of the database would keep them and undo the shred. The key store
is small, encrypted under the master key (KEK), and replaced atomically (temp file, fsync,
rename) so a crash leaves either the old or the new version, never half of one.

    master key (KEK) ──HKDF──▶ key-store key   (encrypts keystore.bin)
    keystore.bin: bucket keys per (event, category, hour), subject keys per pseudonym,
                  the pseudonym pepper (seeded once from the KEK, then kept: a KEK rotation
                  leaves pseudonyms unchanged), the shred-ledger position

The :class:`KeyProvider` protocol is the seam where a KMS or Vault can replace the file.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from . import _crypto
from ._keyfile import KeyFileStore, ResurrectedKeyError
from .errors import ConfigError, IntegrityError

__all__ = [
    "MASTER_KEY_ENV",
    "KeyProvider",
    "FileKeyStore",
    "load_master_key",
    "create_master_key_file",
    "derive_pepper",
    "HoldsPepper",
    "KeyFileStore",
    "ResurrectedKeyError",
    "kek_fingerprint",
    "seal_state",
    "open_state",
]

MASTER_KEY_ENV = "FLOWAUDIT_MASTER_KEY"
_KEYSTORE_LABEL = b"flowaudit/v1/keystore"
_PROTECT_LABEL = b"flowaudit/v1/keystore-backup"


def create_master_key_file(path: Path) -> None:
    """Write 32 random bytes (base64) to ``path`` with mode 0600; never overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"master key '{path}' already exists; refusing to overwrite it") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.b64encode(_crypto.random_key()) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != _crypto.KEY_BYTES:
        raise ConfigError(
            f"{where} is not a base64-encoded 32-byte key; "
            "create one with `flowaudit init` or `openssl rand -base64 32`"
        )
    return key


def load_master_key(key_file: Path | None, environ: Mapping[str, str] | None = None) -> bytes:
    """The KEK from ``FLOWAUDIT_MASTER_KEY`` or a key file that only its owner can read."""
    env = os.environ if environ is None else environ
    if env.get(MASTER_KEY_ENV):
        return _decode_key(env[MASTER_KEY_ENV], MASTER_KEY_ENV)
    if key_file is None or not key_file.exists():
        raise ConfigError(
            f"no master key at '{key_file}'; run `flowaudit init` or set {MASTER_KEY_ENV}"
        )
    mode = stat.S_IMODE(key_file.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"master key '{key_file}' is readable by others (mode {mode:04o}); "
            f"run: chmod 600 '{key_file}'"
        )
    return _decode_key(key_file.read_text(encoding="ascii", errors="replace"), f"'{key_file}'")


def derive_pepper(master_key: bytes) -> bytes:
    """The pepper of homes made before it was kept in the key store: seeds it on first open.

    Since a KEK rotation must not re-key every pseudonym, the pepper is a secret of the key
    store (:meth:`KeyFileStore.pepper`), no longer re-derived from whatever KEK is current.
    """
    return _crypto.derive(master_key, b"flowaudit/v1/pseudonym-pepper")


@runtime_checkable
class HoldsPepper(Protocol):
    """A provider that keeps the pseudonym pepper itself (both of ours do)."""

    def pepper(self) -> bytes: ...


class KeyProvider(Protocol):
    """Where bucket and subject keys live. A KMS/Vault adapter implements every method.

    The ``is_*_destroyed`` questions are the provider's to answer: the store asks them before
    trusting a cached key, and an erasure receipt reports the answer, so a provider that cannot
    answer them cannot stand behind a receipt either.
    """

    def bucket_key(self, bucket_id: str, *, create: bool = False) -> bytes: ...
    def subject_key(self, pseudonym: str, *, create: bool = False) -> bytes: ...
    def destroy_bucket_keys(self, bucket_ids: list[str], at: datetime) -> list[str]: ...
    def destroy_subject_key(self, pseudonym: str, at: datetime) -> bool: ...
    def is_bucket_destroyed(self, bucket_id: str) -> bool: ...
    def is_subject_destroyed(self, pseudonym: str) -> bool: ...
    def flush(self) -> None: ...


class FileKeyStore(KeyFileStore):
    """Bucket and subject keys in one file sealed under the KEK, replaced atomically."""

    provider_name = "file"

    def __init__(self, path: Path, master_key: bytes) -> None:
        self._init_state(path)
        self._master_key = master_key
        self._reload(force=True)

    @classmethod
    def create(cls, path: Path, master_key: bytes) -> FileKeyStore:
        """Write an empty key store (refuses to overwrite an existing one)."""
        if path.exists():
            raise ConfigError(f"key store '{path}' already exists; refusing to overwrite it")
        store = cls.__new__(cls)
        store._init_state(path)
        store._master_key = master_key
        with store._locked():
            store._write()
        return store

    @property
    def kek_fingerprint(self) -> str:
        return kek_fingerprint(self._master_key)

    def adopt_master_key(self, master_key: bytes) -> None:
        """Use a new KEK after a rotation re-sealed the file under it."""
        self._master_key = master_key
        self._reload(force=True)

    # -- KeyFileStore hooks -----------------------------------------------------------------------
    def _seal_file(self, state: Mapping[str, Any]) -> bytes:
        return seal_state(self._master_key, state)

    def _open_file(self, blob: bytes) -> dict[str, Any]:
        try:
            return open_state(self._master_key, blob)
        except IntegrityError:
            raise IntegrityError(
                f"key store '{self.path}' cannot be decrypted: wrong master key or corrupt file"
            ) from None

    def _wrap(self, keys: Mapping[str, bytes]) -> dict[str, str]:
        return {ident: _b64(key) for ident, key in keys.items()}

    def _unwrap(self, encoded: str) -> bytes:
        return base64.b64decode(encoded)

    def _seed_pepper(self) -> bytes:
        return derive_pepper(self._master_key)

    def protect(self, secret: bytes) -> str:
        key = _crypto.derive(self._master_key, _PROTECT_LABEL)
        return _b64(_crypto.seal_blob(key, secret, _PROTECT_LABEL))

    def unprotect(self, token: str) -> bytes:
        key = _crypto.derive(self._master_key, _PROTECT_LABEL)
        try:
            return _crypto.open_blob(key, base64.b64decode(token), _PROTECT_LABEL)
        except (IntegrityError, binascii.Error, ValueError):
            raise IntegrityError(
                "sealed under another master key (retired by a rotation, or another home's)"
            ) from None


def kek_fingerprint(master_key: bytes) -> str:
    """A non-secret id of a KEK (HKDF-derived, 16 hex digits): safe in logs and audit entries."""
    return _crypto.derive(master_key, b"flowaudit/v1/kek-fingerprint", 8).hex()


def seal_state(master_key: bytes, state: Mapping[str, Any]) -> bytes:
    """A key-store state sealed under a KEK: the bytes of keystore.bin."""
    plaintext = json.dumps(state, sort_keys=True).encode()
    file_key = _crypto.derive(master_key, _KEYSTORE_LABEL)
    return _crypto.seal_blob(file_key, plaintext, _KEYSTORE_LABEL)


def open_state(master_key: bytes, blob: bytes) -> dict[str, Any]:
    """Inverse of :func:`seal_state`; :class:`IntegrityError` under any other KEK."""
    file_key = _crypto.derive(master_key, _KEYSTORE_LABEL)
    data = json.loads(_crypto.open_blob(file_key, blob, _KEYSTORE_LABEL))
    if not isinstance(data, dict):
        raise IntegrityError("key store holds no state object")
    return data


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")
