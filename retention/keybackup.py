"""``keys backup`` and ``keys restore``: an encrypted copy of the key store that cannot resurrect.

A backup file is one JSON header line, then the sealed state::

    {"format": "flowaudit-keystore-backup/1", "provider": …, "kek": <fingerprint or transit key>,
     "ledger_seq": N, "created_at": …, "counts": {…}, "data_key": <protected>}
    base64( AES-256-GCM under a fresh data key, AAD = the header line )

The data key is protected by the store's own wrapping key (the KEK, or the Transit key), so a
backup is never plaintext keys, and it dies with that wrapping key: after a KEK rotation, or a
Transit rotate + trim, a backup made before it cannot be restored — the bound on how long a
shredded key can come back. ``ledger_seq`` is authenticated (it is in the AAD).

Restore merges the backup into the current store when that still opens (a key never comes back
if either side destroyed it, and no key made since the backup is lost), then removes every key
the audit log destroyed after the backup's ``ledger_seq``, and writes the result once: a
resurrected key never reaches the disk.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import _crypto
from ._keyfile import BUCKETS, SUBJECTS, KeyFileStore, write_atomic
from .errors import InputError, IntegrityError
from .ground.times import iso_utc

__all__ = ["BACKUP_FORMAT", "BackupHeader", "write_backup", "read_backup", "merge_for_restore"]

BACKUP_FORMAT = "flowaudit-keystore-backup/1"
_TOMB = {BUCKETS: "destroyed_buckets", SUBJECTS: "destroyed_subjects"}


@dataclass(frozen=True)
class BackupHeader:
    provider: str
    wrapping_key: str
    ledger_seq: int
    created_at: str
    counts: dict[str, int]


def _wrapping_id(keys: KeyFileStore) -> str:
    return str(getattr(keys, "kek_fingerprint", "") or getattr(keys, "key_name", ""))


def write_backup(keys: KeyFileStore, out: Path, at: datetime) -> BackupHeader:
    """Write an encrypted backup of ``keys`` to ``out`` (mode 0600, atomic; never overwrites)."""
    if out.exists():
        raise InputError(f"'{out}' exists; pick another --out (a backup never overwrites)")
    state = keys.snapshot()
    data_key = _crypto.random_key()
    counts = {kind: len(state[kind]) for kind in (BUCKETS, SUBJECTS)}
    header: dict[str, Any] = {
        "format": BACKUP_FORMAT,
        "provider": keys.provider_name,
        "kek": _wrapping_id(keys),
        "ledger_seq": int(state["ledger_seq"]),
        "created_at": iso_utc(at),
        "counts": counts,
        "data_key": keys.protect(data_key),
    }
    line = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    body = _crypto.seal_blob(data_key, json.dumps(state, sort_keys=True).encode(), line)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, line + b"\n" + base64.b64encode(body) + b"\n")
    return BackupHeader(keys.provider_name, header["kek"], header["ledger_seq"],
                        header["created_at"], counts)


def read_backup(keys: KeyFileStore, path: Path) -> tuple[BackupHeader, dict[str, Any]]:
    """Open a backup with the current wrapping key; one clear error for anything else."""
    try:
        line, body = path.read_bytes().split(b"\n", 2)[:2]
        header = json.loads(line)
        sealed = base64.b64decode(body, validate=True)
    except FileNotFoundError:
        raise InputError(f"no backup at '{path}'") from None
    except (ValueError, binascii.Error):
        raise InputError(f"'{path}' is not a flowaudit key-store backup") from None
    if not isinstance(header, dict) or header.get("format") != BACKUP_FORMAT:
        raise InputError(f"'{path}' is not a flowaudit key-store backup ({BACKUP_FORMAT})")
    if header.get("provider") != keys.provider_name:
        raise InputError(
            f"'{path}' is a backup of a {header.get('provider')!r} key store; this home uses "
            f"{keys.provider_name!r}"
        )
    try:
        data_key = keys.unprotect(str(header.get("data_key")))
        state = json.loads(_crypto.open_blob(data_key, sealed, line))
    except IntegrityError as exc:
        raise IntegrityError(
            f"backup '{path}' cannot be opened: {exc}. A backup made before a key rotation "
            "cannot come back; that is what makes a shred irreversible"
        ) from None
    info = BackupHeader(
        provider=str(header["provider"]),
        wrapping_key=str(header.get("kek", "")),
        ledger_seq=int(state.get("ledger_seq") or 0),
        created_at=str(header.get("created_at", "")),
        counts=dict(header.get("counts") or {}),
    )
    return info, state


def merge_for_restore(
    backup: dict[str, Any],
    current: dict[str, Any] | None,
    destroyed: dict[tuple[str, str], int],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The state to install, and what the restore did (counts and the re-shredded ids)."""
    out = json.loads(json.dumps(backup))
    added = 0
    if current is not None:
        for kind in (BUCKETS, SUBJECTS):
            for ident, value in current[kind].items():
                if ident not in out[kind]:
                    out[kind][ident] = value
            for ident, at in current[_TOMB[kind]].items():
                out[_TOMB[kind]].setdefault(ident, at)
        out["ledger_seq"] = max(int(out.get("ledger_seq") or 0), 0)
        if isinstance(current.get("pepper"), str) and current["pepper"] != out.get("pepper"):
            raise IntegrityError(
                "the backup's pseudonym pepper differs from this key store's: it is another "
                "home's backup"
            )
        if current.get("kek_since"):
            out["kek_since"] = current["kek_since"]
    reshredded: dict[str, list[str]] = {BUCKETS: [], SUBJECTS: []}
    for kind in (BUCKETS, SUBJECTS):
        for ident in list(out[kind]):
            if (kind, ident) in destroyed or ident in out[_TOMB[kind]]:
                # destroyed after the backup (the ledger says so, or this store knows): stays so
                del out[kind][ident]
                if ident in backup[kind]:
                    reshredded[kind].append(ident)
                if ident not in out[_TOMB[kind]]:
                    out[_TOMB[kind]][ident] = f"audit entry #{destroyed[(kind, ident)]}"
        for (dkind, ident), seq in destroyed.items():  # the ledger's word is a tombstone
            if dkind == kind:
                out[_TOMB[kind]].setdefault(ident, f"audit entry #{seq}")
        if current is not None:
            added += sum(1 for i in out[kind] if i not in current[kind])
    summary = {
        "keys_restored": added,
        "buckets_reshredded": len(reshredded[BUCKETS]),
        "subjects_reshredded": len(reshredded[SUBJECTS]),
        "bucket_ids": sorted(reshredded[BUCKETS]),
        "pseudonyms": sorted(reshredded[SUBJECTS]),
    }
    return out, summary
