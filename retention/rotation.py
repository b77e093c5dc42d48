"""KEK rotation of the file key store: a new master key, keystore.bin re-wrapped, the old one gone.

Three durable steps, each a single rename, all under the key store's lock::

    1. master.key.next   the new KEK (0600, fsynced)            crash: old KEK opens the store
    2. keystore.bin      re-sealed under the new KEK (atomic)    crash: master.key.next opens it
    3. master.key        replaced by master.key.next (rename)    done

So a crash at any point leaves keystore.bin readable with exactly one of the two KEKs, and
:func:`finish_interrupted` (run by the next ``flowaudit keys rotate``) tells which and tidies up.
The old KEK is *retired by destruction* (step 3 unlinks it): every copy of keystore.bin or of a
``keys backup`` sealed under it becomes unreadable, which is what bounds how long a shredded key
can come back from an old copy. Pseudonyms do not change: the pepper is a secret inside the
store, carried over as it is.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from . import _crypto
from ._keyfile import fsync_dir, write_atomic
from .errors import ConfigError, IntegrityError
from .ground.times import iso_utc
from .keys import FileKeyStore, kek_fingerprint, load_master_key, open_state, seal_state

__all__ = ["RotationResult", "rotate_file_kek", "finish_interrupted", "next_key_path"]

StepHook = Callable[[str], None]
STEPS = ("new-key-written", "keystore-rewrapped", "master-key-replaced")


@dataclass(frozen=True)
class RotationResult:
    """What a rotation did: fingerprints only, never key material."""

    old_fingerprint: str
    new_fingerprint: str
    keys: int
    recovered: str | None = None  # what an interrupted rotation found, if that is all it did


def next_key_path(master_file: Path) -> Path:
    return master_file.with_name(master_file.name + ".next")


def _write_new_key(path: Path, key: bytes) -> None:
    import base64

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.b64encode(key) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    fsync_dir(path.parent)


def finish_interrupted(master_file: Path, keystore_file: Path) -> str | None:
    """Close a rotation that was killed; return a sentence saying which KEK opens the store."""
    pending = next_key_path(master_file)
    if not pending.exists():
        return None
    old = load_master_key(master_file, {})
    blob = keystore_file.read_bytes()
    try:
        open_state(old, blob)
    except IntegrityError:
        pass
    else:
        pending.unlink()
        fsync_dir(pending.parent)
        return (
            f"an interrupted rotation had not re-wrapped keystore.bin: it opens with master.key "
            f"(KEK {kek_fingerprint(old)}); the unused new key was discarded"
        )
    new = load_master_key(pending, {})
    try:
        open_state(new, blob)
    except IntegrityError:
        raise IntegrityError(
            f"keystore.bin opens with neither master.key nor {pending.name}; restore it with "
            "`flowaudit keys restore FILE`"
        ) from None
    os.replace(pending, master_file)
    fsync_dir(master_file.parent)
    return (
        f"an interrupted rotation had re-wrapped keystore.bin under the new KEK "
        f"{kek_fingerprint(new)}; master.key now holds it and the old KEK is destroyed"
    )


def rotate_file_kek(
    master_file: Path,
    keys: FileKeyStore,
    at: datetime,
    *,
    new_key: bytes | None = None,
    on_step: StepHook | None = None,
) -> RotationResult:
    """Rotate the KEK of ``keys`` (whose master key is ``master_file``); see the module doc."""
    hook = on_step or (lambda _step: None)
    pending = next_key_path(master_file)
    if pending.exists():
        raise ConfigError(
            f"'{pending}' exists: a rotation was interrupted; run `flowaudit keys rotate` "
            "again to finish it"
        )
    old = load_master_key(master_file, {})
    if kek_fingerprint(old) != keys.kek_fingerprint:
        raise ConfigError("the key store is not open under master.key; reopen the home")
    new = new_key or _crypto.random_key()
    with keys._locked():
        state = keys.snapshot_unlocked()
        state["kek_since"] = iso_utc(at)
        _write_new_key(pending, new)
        hook(STEPS[0])
        write_atomic(keys.path, seal_state(new, state))
        hook(STEPS[1])
        os.replace(pending, master_file)
        fsync_dir(master_file.parent)
        hook(STEPS[2])
        keys.adopt_master_key(new)
    count = len(state["buckets"]) + len(state["subjects"])
    return RotationResult(kek_fingerprint(old), kek_fingerprint(new), count)
