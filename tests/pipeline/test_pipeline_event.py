"""Event files: the demo loads, rosters are reproducible, and every mistake names file and key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from pipeline_helpers import DEMO_EVENT_DIR, SET_START, event_doc

from pipeline import load_event
from retention.errors import InputError


def test_the_demo_event_loads() -> None:
    event = load_event(DEMO_EVENT_DIR / "fete-2026.toml")
    assert event.id == "fete-2026-republique" and len(event.wristbands) == 201
    assert event.capture_starts == event.starts_at - timedelta(minutes=1)
    assert event.frames_per_window == 200
    states = {w.consent for w in event.wristbands}
    assert states == {"opted_in", "opted_out", "withdrawn"}
    assert sum(w.is_staff for w in event.wristbands) == 7
    for w in event.wristbands:
        if w.consent == "withdrawn":
            assert w.withdrawn_at is not None and event.starts_at < w.withdrawn_at < event.ends_at
        if w.is_staff:
            assert w.consent == "opted_in"  # staff are dropped by the staff gate, not consent
    assert len(event.requests) == 5


def test_generated_rosters_are_reproducible(write_event: Callable[..., Path]) -> None:
    spec = {"count": 50, "seed": 9, "staff": 2, "opted_out": 0.1, "withdrawn": 0.1}
    a = load_event(write_event(wristbands__generate=spec)).wristbands
    b = load_event(write_event(wristbands__generate=spec)).wristbands
    c = load_event(write_event(wristbands__generate={**spec, "seed": 10})).wristbands
    assert a == b and a != c
    assert [w.serial for w in a[:2]] == ["WB-000001", "WB-000002"]


BAD = [
    # (override, message fragment)
    ({"event__id": "has space"}, "event.id = 'has space' is not valid"),
    ({"event__name": None}, "event.name is required"),
    ({"event__starts": "yesterday"}, "event.starts = 'yesterday' is not valid"),
    ({"capture__window": "5s"}, "capture.window = '5s' is not valid"),
    ({"capture__pre_roll": "2"}, "capture.pre_roll: \"2\" has no unit"),
    ({"capture__synthetic_script": "chaos"}, "use dip, steady"),
    ({"capture__colour": "red"}, "unknown key capture.colour"),
    ({"selection__decision_every": "1s"}, "use at least one window"),
    ({"wristbands__generate": {"count": 0}}, "wristbands.generate.count = 0"),
    ({"wristbands__generate": {"count": 5, "opted_out": 2}}, "wristbands.generate.opted_out"),
    ({"wristbands__generate": {"count": 5, "staff": True}}, "wristbands.generate.staff = True"),
    ({"wristbands__generate": None}, "no wristbands"),
    ({"requests": [{"serial": "WB-000001", "text": "hi"}]}, "requests[0].at is required"),
    ({"mood": {"x": 1}}, "unknown section [mood]"),
]


@pytest.mark.parametrize("override, message", BAD, ids=[m for _, m in BAD])
def test_malformed_event_files_are_refused_with_file_and_key(
    override: dict, message: str, write_event: Callable[..., Path]
) -> None:
    path = write_event(**override)
    with pytest.raises(InputError) as caught:
        load_event(path)
    assert str(caught.value).startswith(f"event file '{path}': ")
    assert message in str(caught.value)


def test_listed_wristbands_validate_consent(write_event: Callable[..., Path]) -> None:
    doc = event_doc()
    doc["wristbands"] = {"list": [{"serial": "A", "zone": "front", "consent": "withdrawn"}]}
    with pytest.raises(InputError, match=r"wristbands.list\[0\].withdrawn_at is required"):
        load_event(write_event(doc))
    doc["wristbands"] = {"list": [{"serial": "A", "zone": "x"}, {"serial": "A", "zone": "y"}]}
    with pytest.raises(InputError, match="listed twice") as caught:
        load_event(write_event(doc))
    assert "'A'" not in str(caught.value)  # serials stay out of messages
    doc["wristbands"] = {"list": [{"serial": "A", "zone": "x",
                                   "withdrawn_at": SET_START}]}
    with pytest.raises(InputError, match="only a withdrawn consent has one"):
        load_event(write_event(doc))


def test_a_missing_event_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_event(tmp_path / "nope.toml")
