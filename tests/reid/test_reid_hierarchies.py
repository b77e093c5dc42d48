"""Generalisation hierarchies: level syntax, validation errors, recoded values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retention.anonymity.hierarchies import (
    generalise_frame,
    hierarchies_from_policy,
    hierarchy_for,
    parse_hierarchy,
    zone_area,
)
from retention.errors import InputError, PolicyError
from retention.policy import list_policies, load_policy


def _values(column: str, spec: list, values: list) -> list[list]:
    ladder = parse_hierarchy(column, spec).ladder(np.array(values, dtype=object))
    return [list(level) for level in ladder]


@pytest.mark.parametrize("name", list_policies())
def test_shipped_policies_have_valid_hierarchies(name: str) -> None:
    policy = load_policy(name)
    hierarchies = hierarchies_from_policy(policy)
    for column in policy.reid.quasi_identifiers:
        assert hierarchy_for(hierarchies, column).height >= 1


def test_privacy_by_default_ladders() -> None:
    hierarchies = hierarchies_from_policy(load_policy("privacy-by-default"))
    assert [hierarchies["arrival_bucket"].label(i) for i in range(5)] == [
        "as stored",
        "15m",
        "1h",
        "1d",
        "*",
    ]
    assert hierarchies["zone"].height == 2 and hierarchies["device_model"].height == 1


def test_time_levels() -> None:
    ladder = _values(
        "arrival", ["15m", "1h", "1d", "*"], ["2026-06-21T20:37:10Z", "2026-06-21T23:59+02:00"]
    )
    assert ladder[1] == ["2026-06-21T20:30Z", "2026-06-21T21:45Z"]
    assert ladder[2] == ["2026-06-21T20:00Z", "2026-06-21T21:00Z"]
    assert ladder[3] == ["2026-06-21", "2026-06-21"]
    assert ladder[4] == ["*", "*"]


def test_time_levels_accept_datetimes_and_time_of_day() -> None:
    at = datetime(2026, 6, 21, 20, 44, tzinfo=UTC)
    assert _values("t", ["15m", "1h"], [at, at + timedelta(minutes=20)])[2] == [
        "2026-06-21T20:00Z",
        "2026-06-21T21:00Z",
    ]
    assert _values("t", ["15m", "1h", "1d"], ["20:44", "9:05"])[1:] == [
        ["20:30", "09:00"],
        ["20:00", "09:00"],
        ["*", "*"],
    ]


def test_age_levels_are_true_intervals() -> None:
    ladder = _values("age", ["10y", "20y", "*"], ["25-34", "18-24", "55+", 27, "<18", "40-49"])
    assert ladder[1] == ["20-39", "10-29", "50+", "20-29", "0-19", "40-49"]
    assert ladder[2] == ["20-39", "0-39", "40+", "20-39", "0-19", "40-59"]
    assert ladder[3] == ["*"] * 6


def test_zone_area_convention() -> None:
    assert [zone_area(z) for z in ["A1", "A12", "north-3", "Zone_7", "stage/front", "front"]] == [
        "A",
        "A",
        "north",
        "Zone",
        "stage",
        "front",
    ]
    assert zone_area("12") == "12"  # a bare number is its own area


def test_mapping_prefix_and_missing_values() -> None:
    assert _values("z", [{"A1": "north", "A2": "north"}, "*"], ["A1", "A2", "B1"])[1] == [
        "north",
        "north",
        "*",  # an unlisted value is suppressed, never passed through
    ]
    assert _values("pc", ["prefix:3", "prefix:2"], ["75011", "69003"])[1:] == [
        ["750", "690"],
        ["75", "69"],
    ]
    assert _values("z", ["area", "*"], ["A1", None])[1:] == [["A", None], ["*", "*"]]


def test_unreadable_values_are_input_errors() -> None:
    with pytest.raises(InputError, match="column 'age'.*not an age"):
        _values("age", ["10y"], ["old"])
    with pytest.raises(InputError, match="column 'arrival'.*not a time"):
        _values("arrival", ["1h"], ["2026-06-21T20:00Z", "yesterday"])
    with pytest.raises(InputError, match="levels 0..1"):
        parse_hierarchy("z", ["*"]).generalise(np.array(["a"], dtype=object), 2)


@pytest.mark.parametrize(
    "spec, problem",
    [
        ("1h", "expected a non-empty list"),  # a string, not a list
        ([], "expected a non-empty list"),
        (["*", "1h"], "can only be the last level"),
        (["1h", "15m"], "not a whole multiple"),
        (["20m", "30m"], "not a whole multiple"),
        (["7h"], "does not divide a day"),
        (["0m"], "longer than zero"),
        (["1h", "10y"], "mixes level kinds"),
        (["10y", "10y"], "repeats the level"),
        (["prefix:2", "prefix:3"], "keeps more characters"),
        (["hourly"], "not understood"),
        ([{}], "non-empty table of strings"),
        ([{"A1": 1}], "non-empty table of strings"),
        ([3], "neither a string nor a mapping"),
    ],
)
def test_bad_specs_name_file_key_and_value(spec: object, problem: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_hierarchy("arrival_bucket", spec, source="events/x.toml")
    message = str(info.value)
    assert message.startswith("policy 'events/x.toml': reid.hierarchies.arrival_bucket = ")
    assert problem in message


def test_bad_hierarchy_in_a_policy_file(tmp_path: Path) -> None:
    shipped = (Path(load_policy("privacy-by-default").source)).read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(shipped.replace('age_band = ["10y", "20y", "*"]', 'age_band = ["10y", "15y"]'))
    with pytest.raises(PolicyError, match=r"bad\.toml'.*reid\.hierarchies\.age_band.*15y"):
        hierarchies_from_policy(load_policy(bad))


def test_generalise_frame_recodes_only_the_named_columns() -> None:
    frame = pd.DataFrame({"zone": ["A1", "B2", "A3"], "mood": ["x", "y", "z"]})
    hierarchies = {"zone": parse_hierarchy("zone", ["area", "*"])}
    out = generalise_frame(frame, {"zone": 1}, hierarchies)
    assert list(out["zone"]) == ["A", "B", "A"] and list(out["mood"]) == ["x", "y", "z"]
    assert list(frame["zone"]) == ["A1", "B2", "A3"]  # the input is not modified
    assert list(generalise_frame(frame, {"mood": 1}, {})["mood"]) == ["*"] * 3  # default ["*"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 3 * 86_400), min_size=1, max_size=30),
    st.lists(st.integers(0, 99), min_size=1, max_size=30),
)
def test_each_level_is_a_function_of_the_one_below(minutes: list[int], ages: list[int]) -> None:
    """What the lattice relies on: recoding never splits a class of the level below."""
    start = datetime(2026, 6, 21, tzinfo=UTC)
    times = [(start + timedelta(seconds=s)).isoformat() for s in minutes]
    for column, spec, values in (
        ("t", ["15m", "1h", "6h", "1d", "2d", "*"], times),
        ("a", ["5y", "10y", "20y", "*"], ages),
    ):
        hierarchy = parse_hierarchy(column, spec)
        ladder = hierarchy.ladder(np.array(values, dtype=object))
        for level in range(1, hierarchy.height + 1):
            pairs = pd.DataFrame({"below": ladder[level - 1], "above": ladder[level]})
            assert (pairs.groupby("below")["above"].nunique() == 1).all()
            assert list(hierarchy.generalise(np.array(values, dtype=object), level)) == list(
                ladder[level]
            )
