"""Round trips through the encrypted store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowaudit.runtime import Runtime

from .helpers import EVENT_ID, register_event

DB_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@DB_SETTINGS
@given(
    samples=st.binary(max_size=4000).map(lambda b: b[: len(b) // 2 * 2]),
    offset=st.integers(0, 3599),
)
def test_raw_segment_round_trip(runtime: Runtime, samples: bytes, offset: int) -> None:
    store, now = runtime.store, runtime.now
    register_event(store, now)
    start = now + timedelta(seconds=offset)
    with store.transaction(now) as tx:
        pseudonym = tx.register_subject("WB-ROUNDTRIP")
        rid = tx.put_raw(
            event_id=EVENT_ID,
            pseudonym=pseudonym,
            start_at=start,
            pcm=samples,
            sample_rate=16000,
            retention=timedelta(hours=72),
        )
    segment = store.get_raw(rid, now=now)
    assert segment.pcm == samples
    assert segment.start_at == start
    assert segment.pseudonym == pseudonym


@DB_SETTINGS
@given(text=st.text(), extra=json_values)
def test_metadata_round_trip(runtime: Runtime, text: str, extra: object) -> None:
    store, now = runtime.store, runtime.now
    register_event(store, now)
    payload = {"text": text, "extra": extra}
    with store.transaction(now) as tx:
        pseudonym = tx.register_subject("WB-META")
        rid = tx.put_metadata(
            event_id=EVENT_ID,
            pseudonym=pseudonym,
            kind="track_request",
            start_at=now,
            payload=payload,
            retention=None,
        )
    record = store.get_metadata(rid, now=now)
    assert record.payload == payload
    assert record.expires_at is None


@DB_SETTINGS
@given(extra=json_values, expired=st.booleans())
def test_metadata_read_in_its_own_transaction_is_what_a_later_read_opens(
    runtime: Runtime, extra: object, expired: bool
) -> None:
    """A record sealed in a transaction reads back in it (from memory, not the row) exactly as
    a later transaction opens it from the database: same payload, same fields, and left out
    the same way once past its retention; one sealed in a savepoint that rolled back is not
    there at all."""
    store, now = runtime.store, runtime.now
    register_event(store, now)
    payload = {"extra": extra, "n": 1.5}
    at = now + timedelta(hours=2) if expired else now  # a read after a 1 h retention
    with store.transaction(now) as tx, tx.audit_last():
        pseudonym = tx.register_subject("WB-HERE")
        rid = tx.put_metadata(event_id=EVENT_ID, pseudonym=pseudonym, kind="window_score",
                              start_at=now, payload=payload, retention=timedelta(hours=1))
        try:
            with tx.savepoint():
                gone = tx.put_metadata(event_id=EVENT_ID, pseudonym=pseudonym,
                                       kind="window_score", start_at=now, payload=payload,
                                       retention=None)
                raise LookupError  # the savepoint's part fails
        except LookupError:
            pass
        tx.now = at
        here = tx.read_metadata([rid, gone])
    with store.transaction(at) as tx:
        later = tx.read_metadata([rid, gone])
    assert here == later
    assert [r.id for r in later] == ([] if expired else [rid])


def test_iteration_filters_by_event_subject_and_time(runtime: Runtime) -> None:
    store, now = runtime.store, runtime.now
    register_event(store, now)
    register_event(store, now, "other-event")
    with store.transaction(now) as tx:
        a = tx.register_subject("WB-A")
        b = tx.register_subject("WB-B")
        for i in range(4):
            for event, who in ((EVENT_ID, a), (EVENT_ID, b), ("other-event", a)):
                tx.put_raw(
                    event_id=event,
                    pseudonym=who,
                    start_at=now + timedelta(seconds=10 * i),
                    pcm=bytes([i]) * 4,
                    sample_rate=16000,
                    retention=timedelta(hours=1),
                )
    only_a = list(store.iter_raw(now=now, event_id=EVENT_ID, pseudonym=a))
    assert [s.pcm for s in only_a] == [bytes([i]) * 4 for i in range(4)]
    window = list(
        store.iter_raw(
            now=now,
            event_id=EVENT_ID,
            since=now + timedelta(seconds=10),
            until=now + timedelta(seconds=30),
            batch=1,
        )
    )
    assert len(window) == 4 and {s.pseudonym for s in window} == {a, b}
    assert len(list(store.iter_raw(now=now))) == 12


def test_pseudonym_is_stable_and_hides_the_serial(runtime: Runtime) -> None:
    store = runtime.store
    first, second = store.pseudonym("WB-000123"), store.pseudonym(" WB-000123 ")
    assert first == second
    assert "000123" not in first and len(first) == 64
    assert store.pseudonym("WB-000124") != first
