"""Tampering, swapped rows and wrong keys all end in one IntegrityError; nothing else breaks."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from sqlalchemy import update

from flowaudit.runtime import Runtime, open_runtime
from retention.errors import IntegrityError
from retention.models import MetadataRecord, RawSegment

from .helpers import EVENT_ID, register_event


def _two_segments(runtime: Runtime) -> tuple[str, str, str]:
    store, now = runtime.store, runtime.now
    register_event(store, now)
    with store.transaction(now) as tx:
        a = tx.register_subject("WB-A")
        b = tx.register_subject("WB-B")
        first = tx.put_raw(
            event_id=EVENT_ID,
            pseudonym=a,
            start_at=now,
            pcm=b"\x01\x02" * 50,
            sample_rate=16000,
            retention=timedelta(hours=72),
        )
        second = tx.put_raw(
            event_id=EVENT_ID,
            pseudonym=b,
            start_at=now,
            pcm=b"\x03\x04" * 50,
            sample_rate=16000,
            retention=timedelta(hours=72),
        )
        meta = tx.put_metadata(
            event_id=EVENT_ID,
            pseudonym=a,
            kind="window_score",
            start_at=now,
            payload={"score": 61.5},
            retention=timedelta(days=30),
        )
    return first, second, meta


def _flip(blob: bytes, index: int) -> bytes:
    data = bytearray(blob)
    data[index % len(data)] ^= 0x01
    return bytes(data)


@pytest.mark.parametrize("column", ["ciphertext", "nonce", "commitment"])
@pytest.mark.parametrize("position", [0, 7, -1])
def test_flipped_bit_is_one_integrity_error(runtime: Runtime, column: str, position: int) -> None:
    first, second, _ = _two_segments(runtime)
    with runtime.store.session() as session:
        row = session.get(RawSegment, first)
        assert row is not None
        session.execute(
            update(RawSegment)
            .where(RawSegment.id == first)
            .values({column: _flip(getattr(row, column), position)})
        )
        session.commit()
    with pytest.raises(IntegrityError):
        runtime.store.get_raw(first, now=runtime.now)
    assert runtime.store.get_raw(second, now=runtime.now).pcm == b"\x03\x04" * 50


def test_swapped_ciphertexts_fail(runtime: Runtime) -> None:
    first, second, _ = _two_segments(runtime)
    with runtime.store.session() as session:
        a, b = session.get(RawSegment, first), session.get(RawSegment, second)
        assert a is not None and b is not None
        swap = {c: (getattr(a, c), getattr(b, c)) for c in ("ciphertext", "nonce", "commitment")}
        for column, (va, vb) in swap.items():
            setattr(a, column, vb)
            setattr(b, column, va)
        session.commit()
    for record_id in (first, second):
        with pytest.raises(IntegrityError):
            runtime.store.get_raw(record_id, now=runtime.now)


@pytest.mark.parametrize(
    "change",
    [
        {"start_at": "shift"},
        {"event_id": "other"},
        {"subject_pseudonym": "swap"},
    ],
)
def test_edited_row_fields_fail(runtime: Runtime, change: dict[str, str]) -> None:
    first, second, meta = _two_segments(runtime)
    store, now = runtime.store, runtime.now
    register_event(store, now, "other")
    with store.session() as session:
        row = session.get(RawSegment, first)
        other = session.get(RawSegment, second)
        assert row is not None and other is not None
        if "start_at" in change:
            row.start_at = row.start_at + timedelta(seconds=1)
        if "event_id" in change:
            row.event_id = "other"
        if "subject_pseudonym" in change:
            row.subject_pseudonym = other.subject_pseudonym
        session.commit()
    with pytest.raises(IntegrityError):
        store.get_raw(first, now=now)
    assert store.get_metadata(meta, now=now).payload == {"score": 61.5}


def test_metadata_kind_is_bound(runtime: Runtime) -> None:
    _, _, meta = _two_segments(runtime)
    with runtime.store.session() as session:
        session.execute(
            update(MetadataRecord).where(MetadataRecord.id == meta).values(kind="track_request")
        )
        session.commit()
    with pytest.raises(IntegrityError):
        runtime.store.get_metadata(meta, now=runtime.now)


def test_wrong_master_key_is_refused_and_changes_nothing(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _, _ = _two_segments(runtime)
    keystore_before = runtime.settings.keystore_file.read_bytes()
    monkeypatch.setenv("FLOWAUDIT_MASTER_KEY", base64.b64encode(b"k" * 32).decode())
    with pytest.raises(IntegrityError, match="wrong master key"):
        open_runtime(runtime.settings, runtime.now)
    monkeypatch.delenv("FLOWAUDIT_MASTER_KEY")
    assert runtime.settings.keystore_file.read_bytes() == keystore_before
    assert runtime.store.get_raw(first, now=runtime.now).pcm == b"\x01\x02" * 50


def test_corrupt_key_store_is_an_integrity_error(runtime: Runtime) -> None:
    path = runtime.settings.keystore_file
    path.write_bytes(_flip(path.read_bytes(), 20))
    with pytest.raises(IntegrityError, match="cannot be decrypted"):
        open_runtime(runtime.settings, runtime.now)
