"""Master key, and the key store that holds every bucket and subject key outside the database.

Why a separate file: purge and erasure are *key destruction*. If keys lived in the database, a
WAL segment, replica or backup of the database would keep them and undo the shred. The key store
is small, encrypted under the master key (KEK), and replaced atomically (temp file, fsync,
rename) so a crash leaves either the old or the new version, never half of one.

    master key (KEK) ──HKDF──▶ key-store key   (encrypts keystore.bin)
                     ──HKDF──▶ pseudonym pepper (HMAC of wristband serials)
    keystore.bin: bucket keys per (event, category, hour), subject keys per pseudonym

The :class:`KeyProvider` protocol is the seam where a KMS or Vault can replace the file.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import stat
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Protocol

from . import _crypto
from .errors import ConfigError, IntegrityError, RecordShreddedError
from .ground.times import iso_utc

__all__ = [
    "MASTER_KEY_ENV",
    "KeyProvider",
    "FileKeyStore",
    "load_master_key",
    "create_master_key_file",
    "derive_pepper",
]

MASTER_KEY_ENV = "FLOWAUDIT_MASTER_KEY"
_KEYSTORE_LABEL = b"flowaudit/v1/keystore"


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
    """The secret that turns serials into pseudonyms; derived, so it is never stored."""
    return _crypto.derive(master_key, b"flowaudit/v1/pseudonym-pepper")


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


class FileKeyStore:
    """Bucket and subject keys in one encrypted file, replaced atomically under a file lock."""

    def __init__(self, path: Path, master_key: bytes) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._file_key = _crypto.derive(master_key, _KEYSTORE_LABEL)
        self._state: dict[str, dict[str, str]] = _empty_state()
        self._stamp: tuple[int, int, int] | None = None
        self._pending_buckets: dict[str, bytes] = {}
        self._pending_subjects: dict[str, bytes] = {}
        self._reload(force=True)

    # -- public API ----------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, master_key: bytes) -> FileKeyStore:
        """Write an empty key store (refuses to overwrite an existing one)."""
        if path.exists():
            raise ConfigError(f"key store '{path}' already exists; refusing to overwrite it")
        store = cls.__new__(cls)
        store.path = path
        store._lock_path = path.with_name(path.name + ".lock")
        store._file_key = _crypto.derive(master_key, _KEYSTORE_LABEL)
        store._state = _empty_state()
        store._stamp = None
        store._pending_buckets, store._pending_subjects = {}, {}
        with store._locked():
            store._write()
        return store

    def bucket_key(self, bucket_id: str, *, create: bool = False) -> bytes:
        """The key of one retention bucket; ``create`` makes it (persisted at :meth:`flush`)."""
        return self._get("buckets", "destroyed_buckets", self._pending_buckets, bucket_id, create)

    def subject_key(self, pseudonym: str, *, create: bool = False) -> bytes:
        """The key of one pseudonymous wristband."""
        return self._get(
            "subjects", "destroyed_subjects", self._pending_subjects, pseudonym, create
        )

    def flush(self) -> None:
        """Persist keys created since the last flush. Call before committing rows that use them."""
        if not (self._pending_buckets or self._pending_subjects):
            return
        with self._locked():
            self._reload(force=True)
            for name, pending in (
                ("buckets", self._pending_buckets),
                ("subjects", self._pending_subjects),
            ):
                for ident, key in pending.items():
                    self._state[name].setdefault(ident, _b64(key))
            self._write()
        self._pending_buckets.clear()
        self._pending_subjects.clear()

    def destroy_bucket_keys(self, bucket_ids: list[str], at: datetime) -> list[str]:
        """Destroy keys; return the ids this call destroyed (already-destroyed ones are skipped)."""
        destroyed: list[str] = []
        with self._locked():
            self._reload(force=True)
            for bucket_id in bucket_ids:
                self._pending_buckets.pop(bucket_id, None)
                if self._state["buckets"].pop(bucket_id, None) is not None:
                    destroyed.append(bucket_id)
                self._state["destroyed_buckets"].setdefault(bucket_id, iso_utc(at))
            self._write()
        return destroyed

    def destroy_subject_key(self, pseudonym: str, at: datetime) -> bool:
        """Destroy one subject's key; True if a key existed."""
        with self._locked():
            self._reload(force=True)
            self._pending_subjects.pop(pseudonym, None)
            existed = self._state["subjects"].pop(pseudonym, None) is not None
            self._state["destroyed_subjects"].setdefault(pseudonym, iso_utc(at))
            self._write()
        return existed

    def is_bucket_destroyed(self, bucket_id: str) -> bool:
        """True once the bucket's key was destroyed (a tombstone), here or by another process."""
        self._reload()
        return bucket_id in self._state["destroyed_buckets"]

    def is_subject_destroyed(self, pseudonym: str) -> bool:
        """True once the subject's key was destroyed, here or by another process."""
        self._reload()
        return pseudonym in self._state["destroyed_subjects"]

    def bucket_ids(self) -> list[str]:
        """Ids of live bucket keys."""
        self._reload()
        return sorted(self._state["buckets"])

    # -- internals -----------------------------------------------------------------------------
    def _get(
        self, name: str, tombstones: str, pending: dict[str, bytes], ident: str, create: bool
    ) -> bytes:
        self._reload()
        if ident in pending:
            return pending[ident]
        encoded = self._state[name].get(ident)
        if encoded is not None:
            return base64.b64decode(encoded)
        if ident in self._state[tombstones]:
            raise RecordShreddedError(
                f"the key for {_label(name, ident)} was destroyed; its data is gone for good"
            )
        if not create:
            raise RecordShreddedError(f"no key for {_label(name, ident)}; its data is unreadable")
        key = _crypto.random_key()
        pending[ident] = key
        return key

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _reload(self, force: bool = False) -> None:
        stamp = self._file_stamp()
        if stamp is None:
            raise ConfigError(f"key store '{self.path}' is missing; run `flowaudit init`")
        if not force and stamp == self._stamp:
            return
        blob = self.path.read_bytes()
        try:
            data = json.loads(_crypto.open_blob(self._file_key, blob, _KEYSTORE_LABEL))
        except IntegrityError:
            raise IntegrityError(
                f"key store '{self.path}' cannot be decrypted: wrong master key or corrupt file"
            ) from None
        self._state = {k: dict(data.get(k, {})) for k in _empty_state()}
        self._stamp = stamp

    def _write(self) -> None:
        plaintext = json.dumps(self._state, sort_keys=True).encode()
        blob = _crypto.seal_blob(self._file_key, plaintext, _KEYSTORE_LABEL)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._stamp = self._file_stamp()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _empty_state() -> dict[str, dict[str, str]]:
    return {"buckets": {}, "subjects": {}, "destroyed_buckets": {}, "destroyed_subjects": {}}


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def _label(kind: str, ident: str) -> str:
    """Bucket ids are not personal and are shown whole; pseudonyms are shortened."""
    if kind == "buckets":
        return f"bucket {ident}"
    return f"subject {ident[:12]}…"
