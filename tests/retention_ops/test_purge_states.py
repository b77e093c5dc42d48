"""Purge: the ACTIVE -> SHREDDED -> DELETED machine, receipts, dry runs, resumption, stopping."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from flowaudit.runtime import Runtime, open_runtime
from retention.errors import InputError, NotFoundError, RecordShreddedError, RetentionError
from retention.ground.actions import Action
from retention.models import (
    BUCKET_ACTIVE,
    BUCKET_DELETED,
    BUCKET_SHREDDED,
    PurgeRun,
    RawSegment,
    RetentionBucket,
)
from retention.purge import purge

from ._data import audit_entries, bucket_states, row_counts, seed_crowd

RECEIPT_KEYS = {
    "run_id",
    "as_of",
    "buckets_shredded",
    "buckets_deleted",
    "rows_deleted",
    "bytes_freed",
    "dry_run",
}


def _short_and_long(runtime: Runtime, now: datetime):
    """Raw audio of 2 h retention in one event and 72 h in another; metadata indefinite."""
    short = seed_crowd(
        runtime.store,
        now,
        event_id="short",
        raw_retention=timedelta(hours=2),
        meta_retention=None,
        subjects=4,
        hours=3,
        seed=1,
    )
    long = seed_crowd(
        runtime.store,
        now,
        event_id="long",
        raw_retention=timedelta(hours=72),
        meta_retention=None,
        subjects=4,
        hours=3,
        seed=2,
        crowd_scores=False,
    )
    return short, long


def test_purge_destroys_expired_buckets_and_keeps_everything_else(
    runtime: Runtime, now: datetime
) -> None:
    short, long = _short_and_long(runtime, now)
    store = runtime.store
    at = now + timedelta(hours=10)  # short raw expired (hour end + 2 h <= +5 h), long not
    report = purge(store, now=at)

    expired = sorted(b for b in bucket_states(store) if b.startswith("short:raw_audio"))
    assert sorted(report.buckets_shredded) == expired
    assert sorted(report.buckets_deleted) == expired
    assert report.rows_deleted == len(short.raw)
    assert report.bytes_freed > sum(len(p) for p, _ in short.raw.values())  # + tag, nonce
    assert report.keys_destroyed == len(expired)
    states = bucket_states(store)
    assert all(states[b] == BUCKET_DELETED for b in expired)
    assert all(s == BUCKET_ACTIVE for b, s in states.items() if b not in expired)
    assert all(runtime.keys.is_bucket_destroyed(b) for b in expired)
    for rid in short.raw:
        with pytest.raises(NotFoundError):
            store.get_raw(rid, now=at)
    for rid, (data, _) in long.raw.items():
        assert store.get_raw(rid, now=at).pcm == data
    for mid, (payload, _, _, _) in {**short.metadata, **long.metadata}.items():
        assert store.get_metadata(mid, now=at).payload == payload


def test_receipt_has_exactly_the_agreed_keys_and_no_personal_data(
    runtime: Runtime, now: datetime
) -> None:
    short, _ = _short_and_long(runtime, now)
    report = purge(runtime.store, now=now + timedelta(hours=10))
    (entry,) = audit_entries(runtime.store, Action.PURGE_RECEIPT)
    assert set(entry.details) == RECEIPT_KEYS
    assert entry.details["run_id"] == report.run_id
    assert entry.details["dry_run"] is False
    assert entry.details["as_of"] == (now + timedelta(hours=10)).isoformat()
    assert entry.details["rows_deleted"] == len(short.raw)
    text = json.dumps(entry.details)
    for serial, pseud in short.pseudonyms.items():
        assert serial not in text and pseud not in text
    with runtime.store.session() as session:
        run = session.get(PurgeRun, report.run_id)
        assert run is not None
        assert (run.status, run.dry_run, run.buckets_shredded, run.rows_deleted) == (
            "done",
            False,
            len(report.buckets_shredded),
            len(short.raw),
        )


def test_second_run_is_a_no_op_with_an_empty_receipt(runtime: Runtime, now: datetime) -> None:
    _short_and_long(runtime, now)
    at = now + timedelta(hours=10)
    purge(runtime.store, now=at)
    before = (bucket_states(runtime.store), row_counts(runtime.store))
    again = purge(runtime.store, now=at)
    assert (again.buckets_shredded, again.buckets_deleted, again.rows_deleted) == ([], [], 0)
    assert (bucket_states(runtime.store), row_counts(runtime.store)) == before
    assert len(audit_entries(runtime.store, "bucket.shred")) == 1
    assert len(audit_entries(runtime.store, Action.PURGE_RECEIPT)) == 2


def test_dry_run_changes_nothing_and_its_receipt_claims_nothing(
    runtime: Runtime, now: datetime
) -> None:
    short, _ = _short_and_long(runtime, now)
    at = now + timedelta(hours=10)
    before = (bucket_states(runtime.store), row_counts(runtime.store), runtime.keys.bucket_ids())
    report = purge(runtime.store, now=at, dry_run=True)
    assert report.plan is not None
    assert sorted(report.plan.buckets_to_shred) == sorted(
        b for b in before[0] if b.startswith("short:raw_audio")
    )
    assert report.plan.rows == len(short.raw)
    after = (bucket_states(runtime.store), row_counts(runtime.store), runtime.keys.bucket_ids())
    assert after == before
    (entry,) = audit_entries(runtime.store, Action.PURGE_RECEIPT)
    assert entry.details["dry_run"] is True
    assert entry.details["buckets_shredded"] == entry.details["buckets_deleted"] == []
    assert not audit_entries(runtime.store, "bucket.shred")


def test_indefinite_and_unexpired_buckets_are_never_touched(
    runtime: Runtime, now: datetime
) -> None:
    seed_crowd(
        runtime.store,
        now,
        event_id="keep",
        raw_retention=None,
        meta_retention=None,
        subjects=3,
        hours=2,
    )
    report = purge(runtime.store, now=now + timedelta(days=3650))
    assert report.buckets_shredded == [] and report.rows_deleted == 0
    assert set(bucket_states(runtime.store).values()) == {BUCKET_ACTIVE}


def test_a_bucket_whose_key_died_before_its_state_changed_is_finished_not_reshredded(
    runtime: Runtime, now: datetime
) -> None:
    """Killed between the key store and the database: key gone, bucket still ACTIVE."""
    short, _ = _short_and_long(runtime, now)
    store = runtime.store
    at = now + timedelta(hours=10)
    victim = sorted(b for b in bucket_states(store) if b.startswith("short:raw_audio"))[0]
    runtime.keys.destroy_bucket_keys([victim], at)
    assert bucket_states(store)[victim] == BUCKET_ACTIVE
    report = purge(store, now=at)
    assert victim in report.buckets_shredded and victim in report.buckets_deleted
    assert bucket_states(store)[victim] == BUCKET_DELETED
    shredded_ids = [
        b for e in audit_entries(store, "bucket.shred") for b in e.details["bucket_ids"]
    ]
    assert victim not in shredded_ids  # its key was already gone: no second "shred" claim


def test_shredded_buckets_with_rows_left_are_emptied_and_named_by_the_next_receipt(
    runtime: Runtime, now: datetime
) -> None:
    """Killed during deletion (rows left) or after it (no rows, state not yet DELETED)."""
    short, _ = _short_and_long(runtime, now)
    store = runtime.store
    at = now + timedelta(hours=10)
    a, b, *_ = sorted(x for x in bucket_states(store) if x.startswith("short:raw_audio"))
    store.shred_buckets([a, b], now=at)
    with store.transaction(at) as tx:  # b: every row already deleted by the "crashed" run
        tx.session.query(RawSegment).filter(RawSegment.bucket_id == b).delete()
    report = purge(store, now=at)
    assert a in report.buckets_deleted and b in report.buckets_deleted
    assert a not in report.buckets_shredded and b not in report.buckets_shredded
    states = bucket_states(store)
    assert states[a] == states[b] == BUCKET_DELETED
    assert a not in row_counts(store)


def test_small_batches_delete_everything(runtime: Runtime, now: datetime) -> None:
    short, _ = _short_and_long(runtime, now)
    report = purge(runtime.store, now=now + timedelta(hours=10), batch=3)
    assert report.rows_deleted == len(short.raw)
    assert not any(b.startswith("short:raw_audio") for b in row_counts(runtime.store))


def test_stop_request_finishes_the_work_in_hand_and_the_next_run_resumes(
    runtime: Runtime, now: datetime
) -> None:
    _short_and_long(runtime, now)
    store = runtime.store
    at = now + timedelta(hours=10)
    phases: list[str] = []  # ask to stop as soon as one bucket has been shredded
    report = purge(
        store,
        now=at,
        progress=lambda phase, done, total: phases.append(phase),
        should_stop=lambda: "shred" in phases,
        shred_chunk=1,
    )
    assert report.stopped and report.status == "stopped"
    assert len(report.buckets_shredded) == 1 and report.buckets_deleted == []
    (entry,) = audit_entries(store, Action.PURGE_RECEIPT)
    assert entry.details["buckets_shredded"] == report.buckets_shredded
    rest = purge(store, now=at)
    expired = sorted(b for b in bucket_states(store) if b.startswith("short:raw_audio"))
    assert sorted(report.buckets_shredded + rest.buckets_shredded) == expired
    assert sorted(rest.buckets_deleted) == expired


def test_a_purge_in_another_process_defeats_a_cached_record_key(
    sqlite_runtime: Runtime, now: datetime
) -> None:
    """Key caches: a reader that decrypted a record before the shred cannot after it."""
    seed = seed_crowd(
        sqlite_runtime.store, now, event_id="c", raw_retention=None, subjects=2, hours=1
    )
    rid, (data, _) = next(iter(seed.raw.items()))
    assert sqlite_runtime.store.get_raw(rid, now=now).pcm == data  # the derived key is now cached
    other = open_runtime(sqlite_runtime.settings, now)
    try:
        with sqlite_runtime.store.session() as session:
            bucket_id = session.scalar(select(RawSegment.bucket_id).where(RawSegment.id == rid))
        other.store.shred_buckets([bucket_id], now=now)
        with pytest.raises(RecordShreddedError):
            sqlite_runtime.store.get_raw(rid, now=now)
        pseud = seed.pseudonyms[seed.serials[1]]
        other_rid = next(r for r, _ in seed.raw.items() if r != rid)
        with pytest.raises(RetentionError):
            sqlite_runtime.store.get_raw(other_rid, now=now)
        other.store.destroy_subject_key(pseud, now=now)
    finally:
        other.close()


def test_a_subject_erased_elsewhere_is_unreadable_despite_the_cache(
    sqlite_runtime: Runtime, now: datetime
) -> None:
    seed = seed_crowd(
        sqlite_runtime.store, now, event_id="c2", raw_retention=None, subjects=1, hours=1
    )
    rid, (data, _) = next(iter(seed.raw.items()))
    assert sqlite_runtime.store.get_raw(rid, now=now).pcm == data
    other = open_runtime(sqlite_runtime.settings, now)
    try:
        other.store.destroy_subject_key(seed.pseudonyms[seed.serials[0]], now=now)
    finally:
        other.close()
    with pytest.raises(RecordShreddedError):
        sqlite_runtime.store.get_raw(rid, now=now)


def test_bad_arguments_are_refused_before_anything_changes(
    sqlite_runtime: Runtime, now: datetime
) -> None:
    with pytest.raises(InputError):
        purge(sqlite_runtime.store, now=now, batch=0)
    with pytest.raises(InputError):
        purge(sqlite_runtime.store, now=now.replace(tzinfo=None))
    with sqlite_runtime.store.session() as session:
        assert session.scalar(select(PurgeRun.id)) is None


def test_expiry_shortened_by_hand_is_enforced(runtime: Runtime, now: datetime) -> None:
    """The purge trusts the bucket's expires_at, whoever set it (e.g. anonymisation)."""
    seed = seed_crowd(runtime.store, now, event_id="x", raw_retention=None, subjects=2, hours=1)
    with runtime.store.transaction(now) as tx:
        tx.session.execute(
            update(RetentionBucket)
            .where(RetentionBucket.id.like("x:raw_audio:%"))
            .values(expires_at=now + timedelta(hours=2))
        )
    report = purge(runtime.store, now=now + timedelta(hours=2))
    assert [b for b in report.buckets_deleted if b.startswith("x:raw_audio")]
    assert bucket_states(runtime.store)[report.buckets_deleted[0]] == BUCKET_DELETED
    for rid in seed.raw:
        with pytest.raises(NotFoundError):
            runtime.store.get_raw(rid, now=now)
    assert BUCKET_SHREDDED not in bucket_states(runtime.store).values()
