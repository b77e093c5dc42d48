"""Hand-computed risk figures on small tables, thresholds, and bad input."""

from __future__ import annotations

import math
from fractions import Fraction

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.reid.risk import Thresholds, assess, assess_policy
from retention.errors import InputError
from retention.policy import load_policy

# classes (zone, age): A/1 x3, B/2 x2, C/3 x1  -> sizes 3, 2, 1
SMALL = pd.DataFrame(
    {
        "zone": ["A", "A", "A", "B", "B", "C"],
        "age": ["1", "1", "1", "2", "2", "3"],
        "mood": ["x", "x", "y", "x", "z", "y"],
        "band": [0, 0, 20, 40, 40, 80],
    }
)


def test_sample_risks_by_hand() -> None:
    report = assess(SMALL, ["zone", "age"], k_min=3)
    assert (report.records, report.classes, report.k) == (6, 3, 1)
    assert report.prosecutor_risk == 1.0  # 1 / smallest class
    assert report.average_risk == pytest.approx(3 / 6)  # classes / records
    assert report.marketer_risk == pytest.approx(3 / 6)
    assert report.journalist_risk == 1.0  # no population: the table is its own
    assert report.sample_uniques == 1 and report.sample_uniques_share == pytest.approx(1 / 6)
    assert report.records_at_risk == 3  # classes of 2 and 1 are below k_min = 3
    assert report.records_at_risk_share == pytest.approx(0.5)
    assert report.highest_risk_records == 1
    assert dict(report.class_sizes) == {"1": 1, "2": 1, "3+": 1}
    assert report.sensitive == () and report.distinct_l is None and report.t_closeness is None


def test_journalist_and_marketer_with_a_population_table() -> None:
    population = pd.DataFrame(
        {
            "zone": ["A"] * 10 + ["B"] * 4 + ["C"] * 2 + ["D"] * 5,
            "age": ["1"] * 10 + ["2"] * 4 + ["3"] * 2 + ["4"] * 5,
        }
    )
    report = assess(SMALL, ["zone", "age"], population=population)
    assert report.journalist_risk == pytest.approx(1 / 2)  # max 1/F: class C has F = 2
    expected = (Fraction(3, 10) + Fraction(2, 4) + Fraction(1, 2)) / 6  # sum f/F / n
    assert report.marketer_risk == pytest.approx(float(expected))
    assert report.prosecutor_risk == 1.0  # unchanged: the sample's own classes
    assert report.population == 21


def test_population_table_smaller_than_a_class_counts_the_sample() -> None:
    population = pd.DataFrame({"zone": ["A", "B", "C"], "age": ["1", "2", "3"]})
    report = assess(SMALL, ["zone", "age"], population=population)
    # a population must contain the sample: F is at least f
    assert report.journalist_risk == 1.0
    assert report.marketer_risk == pytest.approx(3 / 6)


def test_journalist_and_marketer_with_a_population_size() -> None:
    report = assess(SMALL, ["zone", "age"], population=60)
    assert report.journalist_risk == pytest.approx(6 / (60 * 1))  # F estimated as f * N / n
    assert report.marketer_risk == pytest.approx(3 / 60)
    with pytest.raises(InputError, match="smaller than the 6 records"):
        assess(SMALL, ["zone", "age"], population=5)


def test_l_entropy_and_t_by_hand() -> None:
    report = assess(SMALL, ["zone", "age"], ["mood"])
    (mood,) = report.sensitive
    assert mood.distinct_l == 1  # class C holds one record
    # entropy l is exp(min class entropy); class C has entropy 0
    assert mood.entropy_l == pytest.approx(1.0)
    # global mood distribution x 3/6, y 2/6, z 1/6; class C is all y:
    # 1/2 (|0 - 1/2| + |1 - 1/3| + |0 - 1/6|) = 2/3, the largest
    assert mood.t_closeness == pytest.approx(2 / 3)
    assert not mood.ordered

    two = assess(SMALL.iloc[:5], ["zone", "age"], ["mood"])
    # classes A {x,x,y} and B {x,z}: entropies H_A = ln 3 - 2/3 ln 2, H_B = ln 2
    h_a = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert two.entropy_l == pytest.approx(math.exp(min(h_a, math.log(2))))
    assert two.distinct_l == 2


def test_ordered_emd_by_hand() -> None:
    frame = pd.DataFrame({"g": ["a", "a", "a", "b", "b", "b"], "v": [1, 1, 2, 2, 3, 3]})
    report = assess(frame, ["g"], ["v"])
    # p = (1/3, 1/3, 1/3); a: q = (2/3, 1/3, 0), cumulative r = (1/3, 1/3, 0) -> 2/3 / (m-1)
    assert report.t_closeness == pytest.approx(1 / 3)
    assert report.sensitive[0].ordered
    spread = pd.DataFrame({"g": ["a", "a", "b", "b"], "v": [1, 1, 3, 3]})
    # two values only: m - 1 = 1; a: q = (1, 0), p = (1/2, 1/2) -> |1/2| + |0| = 1/2
    assert assess(spread, ["g"], ["v"]).t_closeness == pytest.approx(0.5)


def test_ordered_categorical_uses_category_order() -> None:
    order = pd.CategoricalDtype(["low", "mid", "high"], ordered=True)
    frame = pd.DataFrame(
        {"g": ["a", "a", "b", "b"], "v": pd.Series(["low", "low", "high", "high"], dtype=order)}
    )
    ordered = assess(frame, ["g"], ["v"]).sensitive[0]
    assert ordered.ordered
    # as numbers 0, 0, 2, 2 with the unused middle value dropped from the domain: t = 1/2
    assert ordered.t_closeness == pytest.approx(0.5)


def test_missing_values_form_their_own_class() -> None:
    frame = pd.DataFrame({"zone": ["A", None, None, "A"], "mood": ["x", "y", "x", "y"]})
    report = assess(frame, ["zone"], ["mood"])
    assert (report.classes, report.k, report.records) == (2, 2, 4)


def test_meets_and_missed() -> None:
    report = assess(SMALL, ["zone", "age"], ["mood"], k_min=2, l_min=2, t_max=0.5)
    missed = {m.threshold: m for m in report.missed()}
    assert set(missed) == {"k_min", "l_min", "t_max", "max_prosecutor_risk"}
    assert str(missed["k_min"]) == "k = 1 < k_min 2"
    assert not report.meets()
    lenient = Thresholds(k_min=1, l_min=1, t_max=1.0, max_prosecutor_risk=1.0)
    assert report.meets(lenient) and report.missed(lenient) == ()
    assert report.as_dict()["meets"] is False
    assert [m["threshold"] for m in report.as_dict()["missed"]] == [
        "k_min",
        "l_min",
        "t_max",
        "max_prosecutor_risk",
    ]


def test_thresholds_from_policy_and_overrides() -> None:
    policy = load_policy("privacy-by-default")
    limits = Thresholds.from_policy(policy, k_min=3, l_min=None)
    assert (limits.k_min, limits.l_min, limits.t_max) == (3, 2, 0.5)
    assert limits.min_class_size == 10  # 1 / max_prosecutor_risk 0.1 dominates k_min 3
    frame = SMALL.rename(columns={"age": "age_band", "band": "mean_sentiment_band"})
    report = assess_policy(frame, policy, quasi_identifiers=["zone", "age_band"])
    assert [s.name for s in report.sensitive] == ["mean_sentiment_band"]
    assert report.thresholds.k_min == 10


@pytest.mark.parametrize(
    "qis, sas, message",
    [
        ([], [], "no quasi-identifiers"),
        (["nope"], [], "quasi-identifier column 'nope' is not in the table"),
        (["zone"], ["nope"], "sensitive attribute column 'nope'"),
        (["zone", "zone"], [], "listed twice"),
        (["zone"], ["zone"], "both a quasi-identifier and sensitive"),
    ],
)
def test_bad_columns_are_one_clear_error(qis: list, sas: list, message: str) -> None:
    with pytest.raises(InputError, match=message):
        assess(SMALL, qis, sas)


def test_empty_table_and_bad_thresholds() -> None:
    with pytest.raises(InputError, match="no records"):
        assess(SMALL.iloc[:0], ["zone"])
    with pytest.raises(InputError, match="must be between 0 and 1"):
        Thresholds(t_max=1.5)
    with pytest.raises(InputError, match="at least 1"):
        Thresholds(k_min=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("xy")), min_size=1, max_size=60))
def test_risk_identities(rows: list[tuple[str, str]]) -> None:
    """Identities that hold for every table: 1/k, classes/n, uniques are size-1 classes."""
    frame = pd.DataFrame(rows, columns=["a", "b"])
    report = assess(frame, ["a", "b"], k_min=3)
    sizes = frame.groupby(["a", "b"]).size()
    assert report.k == sizes.min()
    assert report.prosecutor_risk == pytest.approx(1 / sizes.min())
    assert report.marketer_risk == pytest.approx(len(sizes) / len(frame))
    assert report.sample_uniques == int((sizes == 1).sum())
    assert report.records_at_risk == int(sizes[sizes < 3].sum())
    assert sum(report.class_sizes.values()) == report.classes
