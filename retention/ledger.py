"""The shred ledger: the keys the signed audit log says were destroyed, held against the key store.

Every destruction is logged *before* it happens: ``bucket.shred`` names its bucket ids,
``subject.key_destroyed`` names the pseudonym. A key store restored from an older copy (a
backup, a snapshot, keystore.bin copied back by hand) still holds those keys; read against the
log it gives itself away, and its keys are refused (:class:`~retention._keyfile.KeyFileStore`
quarantine) until :func:`reshred` destroys them again, with a ``keys.reshred`` entry.

Cheap on open: the key store remembers the audit seq up to which it has applied the ledger
(``ledger_seq``), and only newer ``bucket.shred`` / ``subject.key_destroyed`` entries are read
(``seq`` is the primary key). Who re-shreds: ``purge`` and ``dsr erase`` (they destroy keys
anyway), ``keys replay`` and ``keys restore``; every other command only refuses the keys and
writes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ._keyfile import BUCKETS, SUBJECTS, KeyFileStore, label
from .db import map_db_errors
from .errors import InputError
from .ground.actions import Action
from .models import BUCKET_ACTIVE, AuditEntry, RetentionBucket
from .store import EncryptedStore

__all__ = ["destroyed_since", "check_key_store", "reshred", "SHRED_ACTIONS"]

SHRED_ACTIONS = (Action.BUCKET_SHRED.value, Action.SUBJECT_KEY_DESTROYED.value)
Destroyed = dict[tuple[str, str], int]
_STATE_SETS = (BUCKETS, SUBJECTS, "destroyed_buckets", "destroyed_subjects")


def destroyed_since(session: Session, after_seq: int) -> tuple[Destroyed, int]:
    """Keys the log destroys after ``after_seq``: ``{(kind, id): seq}`` and the log's head seq."""
    head = int(session.scalar(select(func.max(AuditEntry.seq))) or 0)
    out: Destroyed = {}
    rows = session.execute(
        select(AuditEntry.seq, AuditEntry.action, AuditEntry.object_id, AuditEntry.details)
        .where(AuditEntry.seq > after_seq, AuditEntry.seq <= head)
        .where(AuditEntry.action.in_(SHRED_ACTIONS))
        .order_by(AuditEntry.seq)
    )
    for seq, action, object_id, details in rows:
        if action == Action.SUBJECT_KEY_DESTROYED:
            out.setdefault((SUBJECTS, str(object_id)), int(seq))
            continue
        ids = details.get("bucket_ids") if isinstance(details, dict) else None
        for bucket_id in ids if isinstance(ids, list) else []:
            out.setdefault((BUCKETS, str(bucket_id)), int(seq))
    return out, head


def check_key_store(engine: Engine, keys: object, after_seq: int | None = None) -> Destroyed:
    """Hold the log against the key store; return the keys it now refuses (usually none)."""
    if not isinstance(keys, KeyFileStore):
        return {}
    start = keys.ledger_seq if after_seq is None else after_seq
    with map_db_errors(), Session(engine) as session:
        destroyed, head = destroyed_since(session, start)
    return keys.apply_ledger(destroyed, head)


def describe(found: Mapping[tuple[str, str], int]) -> str:
    """One clause naming the first refused key and how many there are."""
    first = min(found, key=lambda k: found[k])
    more = f" and {len(found) - 1} more" if len(found) > 1 else ""
    return f"{label(*first)} (audit entry #{found[first]}){more}"


def reshred(
    store: EncryptedStore,
    *,
    now: datetime,
    actor: str,
    skip_active_buckets: bool = False,
    skip: Collection[tuple[str, str]] = (),
) -> dict[str, Any]:
    """Destroy the refused keys for good: the audit entry first, then the key store.

    ``skip_active_buckets`` (used by ``purge``) leaves a bucket the database still calls ACTIVE
    to the purge itself: its ``bucket.shred`` entry may belong to a purge still in flight.
    ``skip`` leaves keys the caller is about to destroy itself (``dsr erase`` of that subject).
    """
    keys = store.keys
    if not isinstance(keys, KeyFileStore) or not keys.quarantined:
        return {"buckets": 0, "subjects": 0}
    targets = set(keys.quarantined) - set(skip)
    if skip_active_buckets:
        bucket_ids = [i for kind, i in targets if kind == BUCKETS]
        with store.session() as session:
            active = set(
                session.scalars(
                    select(RetentionBucket.id).where(
                        RetentionBucket.id.in_(bucket_ids), RetentionBucket.state == BUCKET_ACTIVE
                    )
                )
            ) if bucket_ids else set()
        targets = {t for t in targets if not (t[0] == BUCKETS and t[1] in active)}
    if not targets:
        return {"buckets": 0, "subjects": 0}
    buckets = sorted(i for kind, i in targets if kind == BUCKETS)
    subjects = sorted(i for kind, i in targets if kind == SUBJECTS)
    details = {
        "buckets": len(buckets),
        "subjects": len(subjects),
        "bucket_ids": buckets,
        "pseudonyms": subjects,
        "ledger_entries": sorted({keys.quarantined[t] for t in targets}),
    }
    with store.transaction(now, actor=actor) as tx:
        tx.audit(Action.KEYS_RESHRED, "key_store", keys.provider_name, details)
    keys.reshred(now, only=targets)
    store.forget_cached_keys()
    return details


def restore(store: EncryptedStore, path: Any, *, now: datetime, actor: str) -> dict[str, Any]:
    """Install a ``keys backup`` file and replay the ledger since it (see :mod:`.keybackup`)."""
    from .keybackup import merge_for_restore, read_backup

    keys = store.keys
    if not isinstance(keys, KeyFileStore):
        raise InputError("this home's key provider has no key-store file to restore")
    info, backup_state = read_backup(keys, path)
    current = keys.snapshot() if keys.exists() else None
    if current is not None and not any(current[k] for k in _STATE_SETS):
        current = None  # an empty store made to restore into: the backup is the whole truth
    since = info.ledger_seq
    if current is not None:
        since = min(since, int(current.get("ledger_seq") or 0))
    with map_db_errors(), Session(store.engine) as session:
        destroyed, head = destroyed_since(session, since)
    state, summary = merge_for_restore(backup_state, current, destroyed)
    details = {
        "backup_created_at": info.created_at,
        "backup_ledger_seq": info.ledger_seq,
        "ledger_replayed_to": head,
        **summary,
    }
    with store.transaction(now, actor=actor) as tx:
        tx.audit(Action.KEYS_RESTORE, "key_store", keys.provider_name, details)
    with keys._locked():
        keys.install(state, head)
    store.forget_cached_keys()
    return details
