"""Each gate's drop counts are exact on constructed input; withdrawal and the window hold."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pipeline_helpers import SET_START, event_doc
from sqlalchemy import select

from flowaudit.runtime import Runtime
from pipeline import MemorySource, load_event, run_event
from pipeline.gates import dilate
from retention.models import AuditEntry, RawSegment
from retention.policy import load_policy

CAPTURE = SET_START - timedelta(seconds=30)  # frame 1000 is the set's first frame
FRAMES = 4000  # two minutes: 30 s before, the 60 s set, 30 s after
SERIALS = ["A-in", "B-out", "C-withdrawn", "D-staff", "E-late", "F-unregistered"]


def constructed_event(write_event: Callable[..., Path]) -> Path:
    doc = event_doc(**{"event__ends": SET_START + timedelta(minutes=1)})
    early = SET_START - timedelta(hours=1)
    doc["wristbands"] = {"list": [
        {"serial": "A-in", "zone": "front", "arrival": early},
        {"serial": "B-out", "zone": "front", "consent": "opted_out"},
        {"serial": "C-withdrawn", "zone": "bar", "arrival": early, "consent": "withdrawn",
         "withdrawn_at": SET_START + timedelta(seconds=30)},
        {"serial": "D-staff", "zone": "bar", "arrival": early, "is_staff": True},
        {"serial": "E-late", "zone": "back", "arrival": SET_START + timedelta(seconds=15)},
    ]}
    return write_event(doc)


def quiet_source() -> MemorySource:
    """Digital silence: webrtcvad never calls it voice (any noise is "voice" for the first
    frames a fresh detector sees, so only silence makes the speech count exactly zero)."""
    return MemorySource(SERIALS, np.zeros((len(SERIALS), FRAMES, 480), np.int16))


EXPECTED = {
    # policy: (drops by reason, frames processed); A, C, E pass; see constructed_event
    "apple-music-2025": (
        {"no_consent": 4000 + 1500 + 4000, "withdrawn": 2000,
         "outside_window": 2000 + 1000 + 2000 + 1000, "speech": 0, "staff": 2000},
        2000 + 1000 + 1500,
    ),
    # event_window_only = false: the wristbands keep listening, and staff lose all 4000
    "spotify-2026": (
        {"no_consent": 9500, "withdrawn": 2000, "outside_window": 0, "speech": 0,
         "staff": 4000},
        4000 + 2000 + 2500,
    ),
}


@pytest.mark.parametrize("policy_name", sorted(EXPECTED))
def test_drop_counts_are_exact_per_gate(
    policy_name: str, write_event: Callable[..., Path], pipeline_runtime: Runtime
) -> None:
    event = load_event(constructed_event(write_event))
    summary = run_event(pipeline_runtime.store, event, load_policy(policy_name), quiet_source(),
                        start_at=CAPTURE)
    drops, processed = EXPECTED[policy_name]
    assert summary.frames_in == len(SERIALS) * FRAMES
    assert summary.dropped == drops
    assert summary.frames_scored == processed
    assert summary.frames_stored == processed  # both policies keep raw audio; no voice here
    assert sum(drops.values()) + processed == summary.frames_in

    with pipeline_runtime.store.session() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "capture.drop")
        ).all()
    audited: dict[str, int] = {}
    for entry in entries:
        for reason, count in entry.details["counts"].items():
            audited[reason] = audited.get(reason, 0) + count
    assert audited == {k: v for k, v in drops.items() if v}
    text = json.dumps([e.details for e in entries])
    assert not any(serial in text for serial in SERIALS)  # pseudonyms only
    withdrawn = pipeline_runtime.store.pseudonym("C-withdrawn")
    assert any(withdrawn in e.details["wristbands"].get("withdrawn", []) for e in entries)
    assert entries[0].details["unregistered_wristbands"] == 1


def _segments(runtime: Runtime, serial: str) -> list[tuple]:
    pseud = runtime.store.pseudonym(serial)
    with runtime.store.session() as session:
        rows = session.execute(
            select(RawSegment.start_at, RawSegment.duration_ms)
            .where(RawSegment.subject_pseudonym == pseud)
        ).all()
    return [(start, start + timedelta(milliseconds=ms)) for start, ms in rows]


def test_withdrawal_and_event_window_bound_what_is_stored(
    write_event: Callable[..., Path], pipeline_runtime: Runtime
) -> None:
    event = load_event(constructed_event(write_event))
    run_event(pipeline_runtime.store, event, load_policy("apple-music-2025"), quiet_source(),
              start_at=CAPTURE)
    withdrawn_at = SET_START + timedelta(seconds=30)
    c = _segments(pipeline_runtime, "C-withdrawn")
    assert c and max(end for _, end in c) == withdrawn_at  # stored up to that second, no further
    for serial in ("A-in", "C-withdrawn", "E-late"):
        for start, end in _segments(pipeline_runtime, serial):
            assert SET_START <= start and end <= event.ends_at
    e = _segments(pipeline_runtime, "E-late")
    assert min(start for start, _ in e) == SET_START + timedelta(seconds=15)
    for serial in ("B-out", "D-staff", "F-unregistered"):
        assert _segments(pipeline_runtime, serial) == []


def test_always_listening_is_stored_without_the_window_gate(
    write_event: Callable[..., Path], pipeline_runtime: Runtime
) -> None:
    event = load_event(constructed_event(write_event))
    run_event(pipeline_runtime.store, event, load_policy("spotify-2026"), quiet_source(),
              start_at=CAPTURE)
    a = _segments(pipeline_runtime, "A-in")
    assert min(s for s, _ in a) == CAPTURE and max(e for _, e in a) > event.ends_at


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.booleans(), min_size=1, max_size=40),
    st.integers(min_value=0, max_value=4),
)
def test_dilate_covers_and_stays_close(flags: list[bool], pad: int) -> None:
    raw = np.array([flags])
    out = dilate(raw, pad)
    assert (out | raw).tolist() == out.tolist()  # never un-flags a voiced frame
    idx = np.flatnonzero(raw[0])
    for i in np.flatnonzero(out[0]):
        assert idx.size and np.min(np.abs(idx - i)) <= pad


def test_dilate_carries_a_hangover_into_the_next_window() -> None:
    previous_tail = np.array([[False, False, True]])  # voice in the last frame before
    out = dilate(np.zeros((1, 6), bool), 3, previous_tail)
    assert out[0].tolist() == [True, True, True, False, False, False]
