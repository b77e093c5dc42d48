"""The KeyProvider protocol with a second real provider: the store and erasure use only it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from audit.log.chain import AuditLog
from flowaudit.config import Settings
from retention import db
from retention.errors import RecordShreddedError
from retention.models import SubjectRequest
from retention.store import METADATA, EncryptedStore, bucket_id_for
from retention.subject_requests import erase_subject

from .helpers import EVENT_ID, register_event
from .memory_keys import InMemoryKeyProvider

SERIAL = "WB-KMS-0001"


def _store(home: Settings, keys: InMemoryKeyProvider) -> Iterator[EncryptedStore]:
    engine = db.make_engine(home.db_url)
    try:
        yield EncryptedStore(engine, keys, master_key=os.urandom(32), recorder=AuditLog())
    finally:
        engine.dispose()


def _seed(store: EncryptedStore, now: datetime) -> tuple[str, str]:
    """One wristband with one metadata record; returns (pseudonym, record id)."""
    register_event(store, now)
    with store.transaction(now) as tx:
        pseudonym = tx.register_subject(SERIAL, zone="A1")
        rid = tx.put_metadata(
            event_id=EVENT_ID,
            pseudonym=pseudonym,
            kind="sentiment",
            start_at=now,
            payload={"score": 61.5},
            retention=timedelta(days=30),
        )
    return pseudonym, rid


def test_the_store_round_trips_and_shreds_with_another_provider(
    sqlite_home: Settings, now: datetime
) -> None:
    keys = InMemoryKeyProvider()
    for store in _store(sqlite_home, keys):
        _, rid = _seed(store, now)
        assert store.get_metadata(rid, now=now).payload == {"score": 61.5}
        bucket = bucket_id_for(EVENT_ID, METADATA, now)
        assert keys.destroy_bucket_keys([bucket, "never-made"], now) == [bucket]
        assert keys.is_bucket_destroyed(bucket)
        store.forget_cached_keys()
        with pytest.raises(RecordShreddedError):
            store.get_metadata(rid, now=now)


@pytest.mark.parametrize(
    "waiting_period, destroyed_at_erasure",
    [
        (timedelta(0), True),  # the material is gone when erasure returns
        (timedelta(days=7), False),  # a KMS waiting period: unusable, not yet destroyed
    ],
)
def test_erasure_receipt_reports_what_the_provider_says(
    sqlite_home: Settings, now: datetime, waiting_period: timedelta, destroyed_at_erasure: bool
) -> None:
    keys = InMemoryKeyProvider(waiting_period=waiting_period)
    for store in _store(sqlite_home, keys):
        pseudonym, _ = _seed(store, now)
        at = now + timedelta(hours=1)
        result = erase_subject(store, SERIAL, now=at)
        assert result.receipt["subject_key_destroyed"] is destroyed_at_erasure
        assert keys.is_subject_destroyed(pseudonym) is destroyed_at_erasure
        with pytest.raises(RecordShreddedError):
            keys.subject_key(pseudonym)  # unusable either way
        with store.session() as session:
            stored = session.get(SubjectRequest, result.request_id)
            assert stored is not None and stored.receipt is not None
            assert stored.receipt["subject_key_destroyed"] is destroyed_at_erasure
        keys.complete_deletions(at + waiting_period)
        assert keys.is_subject_destroyed(pseudonym)
