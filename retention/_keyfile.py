"""What every file-backed key store shares: its state, its lock, its atomic replace, its ledger.

A key store's state is one JSON object::

    buckets / subjects                 id -> the key in the store's own encoding
    destroyed_buckets / _subjects      id -> when it was destroyed (tombstones)
    pepper                             the pseudonym secret, in the same encoding as the keys
    ledger_seq                         audit seq up to which the shred ledger has been applied
    kek_since                          when the wrapping key last changed (a rotation), or absent

How a key is encoded (base64 under a file sealed by the KEK, or a Transit ciphertext) and how
the file is sealed are the subclass's business; everything else lives here, so both providers
answer ``is_*_destroyed`` and refuse resurrected keys the same way.

*Quarantine*: the shred ledger (:mod:`retention.ledger`) may find that this store holds a key
the audit log says was destroyed (a restored copy). Such a key is refused at once, in memory —
nothing is written — and :meth:`KeyFileStore.reshred` destroys it for good.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import ConfigError, RecordShreddedError
from .ground.times import iso_utc

__all__ = ["KeyFileStore", "ResurrectedKeyError", "BUCKETS", "SUBJECTS", "empty_state"]

BUCKETS, SUBJECTS = "buckets", "subjects"
_TOMBSTONES = {BUCKETS: "destroyed_buckets", SUBJECTS: "destroyed_subjects"}
REPLAY_HINT = "run `flowaudit keys replay` to destroy it again (or `flowaudit keys restore FILE`)"


class ResurrectedKeyError(RecordShreddedError):
    """The key store holds a key the signed audit log says was destroyed: it is refused."""


def empty_state() -> dict[str, Any]:
    return {
        BUCKETS: {},
        SUBJECTS: {},
        "destroyed_buckets": {},
        "destroyed_subjects": {},
        "ledger_seq": 0,
    }


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file, fsync, rename, fsync the directory: the old or the new file, never half."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def label(kind: str, ident: str) -> str:
    """Bucket ids are not personal and are shown whole; pseudonyms are shortened."""
    if kind == BUCKETS:
        return f"bucket {ident}"
    return f"subject {ident[:12]}…"


class KeyFileStore:
    """Keys in one file: subclasses say how a key is wrapped and how the file is sealed."""

    path: Path
    provider_name = "file"

    def _init_state(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._state: dict[str, Any] = empty_state()
        self._stamp: tuple[int, int, int] | None = None
        self._pending: dict[str, dict[str, bytes]] = {BUCKETS: {}, SUBJECTS: {}}
        self._quarantine: dict[tuple[str, str], int] = {}  # (kind, id) -> ledger entry seq
        self._ledger_head = 0  # the audit seq this process checked the ledger up to

    # -- subclass hooks ----------------------------------------------------------------------------
    def _seal_file(self, state: Mapping[str, Any]) -> bytes:
        raise NotImplementedError

    def _open_file(self, blob: bytes) -> dict[str, Any]:
        raise NotImplementedError

    def _wrap(self, keys: Mapping[str, bytes]) -> dict[str, str]:
        """Encode fresh keys for the state (several at once: a KMS call per batch)."""
        raise NotImplementedError

    def _unwrap(self, encoded: str) -> bytes:
        raise NotImplementedError

    def protect(self, secret: bytes) -> str:
        """Encrypt a short secret under this store's wrapping key (a backup's data key)."""
        raise NotImplementedError

    def unprotect(self, token: str) -> bytes:
        """Inverse of :meth:`protect`; :class:`IntegrityError` if the wrapping key is gone."""
        raise NotImplementedError

    def _seed_pepper(self) -> bytes:
        """The pepper of a store that has none yet (older homes: the KEK derivation)."""
        raise NotImplementedError

    # -- the provider API --------------------------------------------------------------------------
    def bucket_key(self, bucket_id: str, *, create: bool = False) -> bytes:
        """The key of one retention bucket; ``create`` makes it (persisted at :meth:`flush`)."""
        return self._get(BUCKETS, bucket_id, create)

    def subject_key(self, pseudonym: str, *, create: bool = False) -> bytes:
        """The key of one pseudonymous wristband."""
        return self._get(SUBJECTS, pseudonym, create)

    def pepper(self) -> bytes:
        """The pseudonym secret. Kept in the store, so a KEK rotation leaves pseudonyms alone."""
        self._reload()
        encoded = self._state.get("pepper")
        if not isinstance(encoded, str):
            return self._seed_pepper()  # persisted by the next write (see _write)
        return self._unwrap(encoded)

    def flush(self) -> None:
        """Persist keys created since the last flush. Call before committing rows that use them."""
        if not any(self._pending.values()):
            return
        with self._locked():
            self._reload(force=True)
            for kind, pending in self._pending.items():
                fresh = {i: k for i, k in pending.items() if i not in self._state[kind]}
                self._state[kind].update(self._wrap(fresh) if fresh else {})
            self._write()
        for pending in self._pending.values():
            pending.clear()

    def destroy_bucket_keys(self, bucket_ids: list[str], at: datetime) -> list[str]:
        """Destroy keys; return the ids this call destroyed (already-destroyed ones are skipped)."""
        with self._locked():
            self._reload(force=True)
            destroyed = [b for b in bucket_ids if self._drop(BUCKETS, b, at)]
            self._write()
        return destroyed

    def destroy_subject_key(self, pseudonym: str, at: datetime) -> bool:
        """Destroy one subject's key; True if a key existed."""
        with self._locked():
            self._reload(force=True)
            existed = self._drop(SUBJECTS, pseudonym, at)
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
        return sorted(self._state[BUCKETS])

    # -- the shred ledger --------------------------------------------------------------------------
    @property
    def ledger_seq(self) -> int:
        """The audit seq up to which this store (as on disk) has applied the shred ledger."""
        self._reload()
        return int(self._state.get("ledger_seq") or 0)

    def apply_ledger(
        self, destroyed: Mapping[tuple[str, str], int], head_seq: int
    ) -> dict[tuple[str, str], int]:
        """Refuse every live key the log says was destroyed; return those (kind, id) -> seq.

        Nothing is written: a read-only command stays read-only. Once none is left, the
        position advances to ``head_seq`` with the store's next write.
        """
        self._reload()
        for (kind, ident), seq in destroyed.items():
            if ident in self._state[kind] and ident not in self._state[_TOMBSTONES[kind]]:
                self._quarantine.setdefault((kind, ident), seq)
        self._ledger_head = max(self._ledger_head, head_seq)
        return dict(self._quarantine)

    @property
    def quarantined(self) -> dict[tuple[str, str], int]:
        """Keys refused because the ledger says they were destroyed: (kind, id) -> entry seq."""
        return dict(self._quarantine)

    def reshred(
        self, at: datetime, only: set[tuple[str, str]] | None = None
    ) -> list[tuple[str, str]]:
        """Destroy quarantined keys for good (all, or ``only`` these); return what was destroyed."""
        targets = [k for k in self._quarantine if only is None or k in only]
        if not targets:
            return []
        with self._locked():
            self._reload(force=True)
            done = [(kind, ident) for kind, ident in targets if self._drop(kind, ident, at)]
            for target in targets:
                self._quarantine.pop(target, None)
            self._write()
        return done

    # -- state access for rotation, backup and restore ---------------------------------------------
    def exists(self) -> bool:
        """Whether the store's state exists yet (a restore into a new home makes it)."""
        return self.path.exists()

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of the state as on disk, with the ledger position this process reached."""
        with self._locked():
            return self.snapshot_unlocked()

    def snapshot_unlocked(self) -> dict[str, Any]:
        """:meth:`snapshot` for a caller that already holds the lock."""
        self._reload(force=True)
        state: dict[str, Any] = json.loads(json.dumps(self._state))
        if not isinstance(state.get("pepper"), str):
            state["pepper"] = self._wrap({"pepper": self._seed_pepper()})["pepper"]
        state["ledger_seq"] = self._position(state)
        return state

    def counts(self) -> dict[str, int]:
        self._reload()
        return {
            "bucket_keys": len(self._state[BUCKETS]),
            "subject_keys": len(self._state[SUBJECTS]),
            "destroyed_buckets": len(self._state["destroyed_buckets"]),
            "destroyed_subjects": len(self._state["destroyed_subjects"]),
        }

    @property
    def kek_since(self) -> str | None:
        self._reload()
        value = self._state.get("kek_since")
        return value if isinstance(value, str) else None

    # -- internals ---------------------------------------------------------------------------------
    def _drop(self, kind: str, ident: str, at: datetime) -> bool:
        self._pending[kind].pop(ident, None)
        self._quarantine.pop((kind, ident), None)
        existed = self._state[kind].pop(ident, None) is not None
        self._state[_TOMBSTONES[kind]].setdefault(ident, iso_utc(at))
        self._forget(kind, ident)
        return existed

    def _forget(self, kind: str, ident: str) -> None:
        """Drop any unwrapped copy held in memory (a subclass's cache)."""

    def _refuse_quarantined(self, kind: str, ident: str) -> None:
        if (kind, ident) in self._quarantine:
            seq = self._quarantine[(kind, ident)]
            raise ResurrectedKeyError(
                f"the key for {label(kind, ident)} is in the key store, but audit entry #{seq} "
                f"says it was destroyed (an older copy of the key store?); it is refused — "
                f"{REPLAY_HINT}"
            )

    def _get(self, kind: str, ident: str, create: bool) -> bytes:
        self._reload()
        self._refuse_quarantined(kind, ident)
        pending = self._pending[kind]
        if ident in pending:
            return pending[ident]
        encoded = self._state[kind].get(ident)
        if encoded is not None:
            return self._unwrap(encoded)
        if ident in self._state[_TOMBSTONES[kind]]:
            raise RecordShreddedError(
                f"the key for {label(kind, ident)} was destroyed; its data is gone for good"
            )
        if not create:
            raise RecordShreddedError(f"no key for {label(kind, ident)}; its data is unreadable")
        from ._crypto import random_key

        key = random_key()
        pending[ident] = key
        return key

    def _position(self, state: Mapping[str, Any]) -> int:
        """The ledger position a write may claim: only past entries whose keys are all gone."""
        on_disk = int(state.get("ledger_seq") or 0)
        if self._quarantine:
            return on_disk
        return max(on_disk, self._ledger_head)

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _reload(self, force: bool = False) -> None:
        stamp = self._file_stamp()
        if stamp is None:
            raise ConfigError(
                f"key store '{self.path}' is missing; run `flowaudit init`, or `flowaudit keys "
                "restore FILE` from a backup"
            )
        if not force and stamp == self._stamp:
            return
        data = self._open_file(self.path.read_bytes())
        state = empty_state()
        for name, value in data.items():
            state[name] = dict(value) if isinstance(value, dict) else value
        self._state = state
        self._stamp = stamp

    def _write(self) -> None:
        if not isinstance(self._state.get("pepper"), str):
            self._state["pepper"] = self._wrap({"pepper": self._seed_pepper()})["pepper"]
        self._state["ledger_seq"] = self._position(self._state)
        write_atomic(self.path, self._seal_file(self._state))
        self._stamp = self._file_stamp()

    def install(self, state: Mapping[str, Any], ledger_head: int) -> None:
        """Replace the whole state (a restore), under the lock the caller holds.

        The caller has already removed every key the ledger destroys up to ``ledger_head``.
        """
        self._state = {**empty_state(), **json.loads(json.dumps(state))}
        self._quarantine.clear()
        self._ledger_head = max(self._ledger_head, ledger_head)
        self._write()

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
