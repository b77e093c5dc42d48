"""Retention is enforced on read, and key destruction is exactly as wide as the key."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flowaudit.runtime import Runtime
from retention.errors import RecordExpiredError, RecordShreddedError, RetentionError
from retention.store import METADATA, RAW_AUDIO, bucket_id_for

from .helpers import EVENT_ID, register_event

HOUR = timedelta(hours=1)


def _fill(runtime: Runtime) -> dict[str, dict[int, str]]:
    """Two wristbands x three hours of raw audio and metadata."""
    store, now = runtime.store, runtime.now
    register_event(store, now)
    ids: dict[str, dict[int, str]] = {"a": {}, "b": {}, "meta_a": {}}
    with store.transaction(now) as tx:
        a = tx.register_subject("WB-A")
        b = tx.register_subject("WB-B")
        for hour in range(3):
            at = now + hour * HOUR + timedelta(minutes=5)
            for name, who in (("a", a), ("b", b)):
                ids[name][hour] = tx.put_raw(
                    event_id=EVENT_ID,
                    pseudonym=who,
                    start_at=at,
                    pcm=bytes([hour, 1]) * 8,
                    sample_rate=16000,
                    retention=timedelta(hours=72),
                )
            ids["meta_a"][hour] = tx.put_metadata(
                event_id=EVENT_ID,
                pseudonym=a,
                kind="window_score",
                start_at=at,
                payload={"score": hour},
                retention=None,
            )
    return ids


def test_record_past_retention_is_unreadable_before_any_purge(runtime: Runtime) -> None:
    ids = _fill(runtime)
    store, now = runtime.store, runtime.now
    record = ids["a"][0]
    expiry = store.get_raw(record, now=now).expires_at
    assert expiry == now + timedelta(minutes=5) + timedelta(hours=72)
    assert store.get_raw(record, now=expiry - timedelta(seconds=1)).pcm
    with pytest.raises(RecordExpiredError):
        store.get_raw(record, now=expiry)
    assert record not in {s.id for s in store.iter_raw(now=expiry)}
    # indefinite metadata stays readable
    assert store.get_metadata(ids["meta_a"][0], now=expiry + timedelta(days=3650)).payload


def test_destroying_a_bucket_key_hits_exactly_that_bucket(runtime: Runtime) -> None:
    ids = _fill(runtime)
    store, now = runtime.store, runtime.now
    middle = bucket_id_for(EVENT_ID, RAW_AUDIO, now + HOUR)
    assert store.shred_buckets([middle], now=now) == [middle]
    for name in ("a", "b"):
        with pytest.raises(RecordShreddedError):
            store.get_raw(ids[name][1], now=now)
        for hour in (0, 2):
            assert store.get_raw(ids[name][hour], now=now).pcm == bytes([hour, 1]) * 8
    for hour in range(3):  # metadata of the same hour lives in its own bucket
        assert store.get_metadata(ids["meta_a"][hour], now=now).payload == {"score": hour}
    assert store.shred_buckets([middle], now=now) == []  # idempotent


def test_destroying_a_subject_key_hits_exactly_that_subject(runtime: Runtime) -> None:
    ids = _fill(runtime)
    store, now = runtime.store, runtime.now
    assert store.destroy_subject_key(store.pseudonym("WB-A"), now=now) is True
    for hour in range(3):
        with pytest.raises(RecordShreddedError):
            store.get_raw(ids["a"][hour], now=now)
        with pytest.raises(RecordShreddedError):
            store.get_metadata(ids["meta_a"][hour], now=now)
        assert store.get_raw(ids["b"][hour], now=now).pcm == bytes([hour, 1]) * 8


def test_a_fresh_process_sees_the_destroyed_key(runtime: Runtime) -> None:
    """The derived-key cache of another store instance must not outlive a shred."""
    from flowaudit.runtime import open_runtime

    ids = _fill(runtime)
    other = open_runtime(runtime.settings, runtime.now)
    try:
        assert other.store.get_raw(ids["a"][0], now=runtime.now).pcm  # warms other's cache
        runtime.store.shred_buckets(
            [bucket_id_for(EVENT_ID, RAW_AUDIO, runtime.now)], now=runtime.now
        )
        with pytest.raises(RecordShreddedError):
            other.store.get_raw(ids["a"][0], now=runtime.now)
    finally:
        other.close()


def test_writes_that_policy_forbids_are_refused(runtime: Runtime) -> None:
    store, now = runtime.store, runtime.now
    _fill(runtime)
    with pytest.raises(RetentionError, match="already past its retention"):
        with store.transaction(now) as tx:
            tx.put_raw(
                event_id=EVENT_ID,
                pseudonym=None,
                start_at=now,
                pcm=b"\0\0",
                sample_rate=16000,
                retention=timedelta(0),
            )
    store.shred_buckets([bucket_id_for(EVENT_ID, METADATA, now)], now=now)
    with pytest.raises(RetentionError, match="already shredded"):
        with store.transaction(now) as tx:
            tx.put_metadata(
                event_id=EVENT_ID,
                pseudonym=None,
                kind="note",
                start_at=now,
                payload={},
                retention=None,
            )
