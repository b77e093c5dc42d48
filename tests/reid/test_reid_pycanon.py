"""Differential tests: audit.reid against pycanon (the test oracle) on generated tables.

pycanon's definitions are the reference: k, distinct l, entropy l (which pycanon truncates to
an int), t-closeness (ordered EMD for numeric sensitive attributes, equal-distance otherwise),
worst case over several sensitive attributes (``gen=True``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pycanon import anonymity as pycanon

from audit.reid.risk import assess

# pycanon 1.0.1 groups by a one-element list, which pandas 3 warns will change its keys
pytestmark = pytest.mark.filterwarnings("ignore:In a future version, the keys of `groups`")

QI_VALUES = {
    "zone": ["A1", "A2", "B1", "C3"],
    "age_band": ["18-24", "25-34", "35-44"],
    "ticket": ["day", "vip"],
}


@st.composite
def tables(draw: st.DrawFn) -> tuple[pd.DataFrame, list[str], list[str]]:
    """A table of 1-80 rows, 1-3 QIs, 1-2 sensitive attributes (numeric or text)."""
    n = draw(st.integers(1, 80))
    qis = draw(st.lists(st.sampled_from(sorted(QI_VALUES)), min_size=1, max_size=3, unique=True))
    data: dict[str, list] = {}
    for name in qis:
        card = draw(st.integers(1, len(QI_VALUES[name])))
        data[name] = draw(st.lists(st.sampled_from(QI_VALUES[name][:card]), min_size=n, max_size=n))
    kinds = draw(st.lists(st.sampled_from(["num", "text", "float"]), min_size=1, max_size=2))
    sas = []
    for i, kind in enumerate(kinds):
        name = f"sa{i}"
        if kind == "num":
            values = st.integers(0, draw(st.integers(1, 6)))
        elif kind == "float":
            values = st.sampled_from([0.5, 12.25, 40.0, 99.9])
        else:
            values = st.sampled_from(["calm", "happy", "sad", "angry"][: draw(st.integers(1, 4))])
        data[name] = draw(st.lists(values, min_size=n, max_size=n))
        sas.append(name)
    return pd.DataFrame(data), qis, sas


def _entropy_matches(ours: float, theirs: int) -> bool:
    """pycanon returns int(exp(H)); equal up to float noise at exact integers."""
    return theirs in (math.floor(ours + 1e-9), math.floor(ours - 1e-9))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_k_l_entropy_l_match_pycanon(case: tuple[pd.DataFrame, list[str], list[str]]) -> None:
    frame, qis, sas = case
    report = assess(frame, qis, sas)
    assert report.k == pycanon.k_anonymity(frame, qis)
    assert report.distinct_l == pycanon.l_diversity(frame, qis, sas)
    assert _entropy_matches(report.entropy_l, pycanon.entropy_l_diversity(frame, qis, sas))
    for figures in report.sensitive:  # each attribute on its own, too
        assert figures.distinct_l == pycanon.l_diversity(frame, qis, [figures.name])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_t_closeness_matches_pycanon(case: tuple[pd.DataFrame, list[str], list[str]]) -> None:
    frame, qis, sas = case
    # pycanon divides by (m - 1) for a numeric attribute with one value (ZeroDivisionError)
    for name in sas:
        if pd.api.types.is_numeric_dtype(frame[name]):
            assume(frame[name].nunique() > 1)
    report = assess(frame, qis, sas)
    assert math.isclose(report.t_closeness, pycanon.t_closeness(frame, qis, sas), abs_tol=1e-9)
    for figures in report.sensitive:
        expected = pycanon.t_closeness(frame, qis, [figures.name])
        assert math.isclose(figures.t_closeness, expected, abs_tol=1e-9)
        assert figures.ordered == pd.api.types.is_numeric_dtype(frame[figures.name])


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_larger_random_tables_match_pycanon(seed: int) -> None:
    """A few hundred rows with many classes, the regime the vectorised path is built for."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(150, 400))
    frame = pd.DataFrame(
        {
            "zone": rng.choice([f"Z{i}" for i in range(12)], n),
            "quarter": rng.integers(0, 16, n),
            "device": rng.choice(["XW-2", "XW-3", "XW-4"], n),
            "band": rng.choice([0, 20, 40, 60, 80], n),
            "mood": rng.choice(["calm", "happy", "sad"], n),
        }
    )
    qis, sas = ["zone", "quarter", "device"], ["band", "mood"]
    report = assess(frame, qis, sas)
    assert report.k == pycanon.k_anonymity(frame, qis)
    assert report.distinct_l == pycanon.l_diversity(frame, qis, sas)
    assert _entropy_matches(report.entropy_l, pycanon.entropy_l_diversity(frame, qis, sas))
    assert math.isclose(report.t_closeness, pycanon.t_closeness(frame, qis, sas), abs_tol=1e-9)
    assert report.classes == frame.groupby(qis).ngroups
