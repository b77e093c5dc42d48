"""Property: after a purge at t, nothing whose retention ended by t is readable; all else is."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from flowaudit.runtime import Runtime
from retention.errors import NotFoundError, RetentionError
from retention.models import BUCKET_DELETED, MetadataRecord, RawSegment, RetentionBucket
from retention.purge import purge

from ._data import pcm, register_event

RETENTIONS = [
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=5),
    timedelta(hours=26),
    timedelta(hours=72),
    None,
]

record = st.tuples(
    st.integers(min_value=0, max_value=8 * 60),  # start: minutes after "now"
    st.sampled_from(RETENTIONS),
    st.booleans(),  # raw audio (True) or metadata
    st.integers(min_value=0, max_value=2),  # which wristband (2 = none)
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    records=st.lists(record, min_size=1, max_size=10),
    purge_after=st.integers(min_value=0, max_value=90 * 60),
    batch=st.sampled_from([1, 3, 1000]),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_purge_makes_exactly_the_expired_records_unreadable(
    runtime: Runtime,
    now: datetime,
    records: list[tuple[int, timedelta | None, bool, int]],
    purge_after: int,
    batch: int,
    seed: int,
) -> None:
    store = runtime.store
    rng = random.Random(seed)
    event_id = f"p{uuid.uuid4().hex[:10]}"  # examples share the home; each gets its own event
    register_event(store, now, event_id)
    stored: list[tuple[str, bool, object, datetime | None]] = []
    with store.transaction(now, actor="test") as tx:
        pseuds = [tx.register_subject(f"{event_id}-{i}") for i in range(2)] + [None]
        for minutes, retention, is_raw, who in records:
            start = now + timedelta(minutes=minutes, seconds=1)
            expires = None if retention is None else start + retention
            if is_raw:
                data = pcm(rng, 160)
                rid = tx.put_raw(
                    event_id=event_id,
                    pseudonym=pseuds[who],
                    start_at=start,
                    pcm=data,
                    sample_rate=16000,
                    retention=retention,
                )
            else:
                data = {"score": rng.random(), "n": rng.randrange(100)}
                rid = tx.put_metadata(
                    event_id=event_id,
                    pseudonym=pseuds[who],
                    kind="score",
                    start_at=start,
                    payload=data,
                    retention=retention,
                )
            stored.append((rid, is_raw, data, expires))

    t = now + timedelta(minutes=purge_after)
    purge(store, now=t, batch=batch)

    for rid, is_raw, data, expires in stored:
        read = store.get_raw if is_raw else store.get_metadata
        if expires is not None and expires <= t:
            with pytest.raises((NotFoundError, RetentionError)):
                read(rid, now=t)
        else:
            got = read(rid, now=t)
            assert (got.pcm if is_raw else got.payload) == data  # type: ignore[union-attr]

    # and at the level of keys and rows: an expired bucket is gone for good
    with store.session() as session:
        for bucket in session.scalars(
            select(RetentionBucket).where(RetentionBucket.event_id == event_id)
        ):
            expired = bucket.expires_at is not None and bucket.expires_at <= t
            assert (bucket.state == BUCKET_DELETED) == expired
            assert runtime.keys.is_bucket_destroyed(bucket.id) == expired
            rows = [
                *session.scalars(select(RawSegment.id).where(RawSegment.bucket_id == bucket.id)),
                *session.scalars(
                    select(MetadataRecord.id).where(MetadataRecord.bucket_id == bucket.id)
                ),
            ]
            assert (not rows) if expired else rows
