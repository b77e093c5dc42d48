"""One privacy engine, one answer: the anonymiser and audit.reid agree, and searches deliver.

The anonymiser (retention.anonymity.aggregate, via retention.anonymise) and the audit's
assessment (audit.reid.risk) both ask retention.anonymity. These properties check that what the
anonymiser keeps has the same k whichever door measures it — and the same k a plain pandas
recount gives — that its choice is the least-loss acceptable node of a brute-force walk, and
that a lattice result meets the thresholds it was asked for.
"""

from __future__ import annotations

import ast
import itertools
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import retention.anonymity as engine
from audit.reid.risk import Thresholds, assess
from retention.anonymity import (
    Lattice,
    aggregate_k_anonymous,
    anonymiser_ladders,
    choose_generalisation,
    k_anonymity,
    measure,
    parse_hierarchies,
)
from retention.policy import load_policy

POLICY = load_policy("privacy-by-default")
QIS = ["zone", "arrival_bucket", "age_band", "ticket_type"]
HIERARCHIES = dict(POLICY.reid.hierarchies)
START = datetime(2026, 6, 21, 18, 0, tzinfo=UTC)


@st.composite
def linkable(draw: st.DrawFn) -> pd.DataFrame:
    """Records of 1-40 wristbands, 1-4 records each, of one or two kinds, as the anonymiser reads."""
    people = draw(st.integers(1, 40))
    rows = []
    for i in range(people):
        zone = draw(st.sampled_from(["A1", "A2", "B1", "B3", "stage/front", None]))
        arrival = START + timedelta(minutes=draw(st.integers(0, 6 * 60)))
        age = draw(st.sampled_from(["18-24", "25-34", "35-44", "55+", "old", None]))
        ticket = draw(st.sampled_from(["day", "vip"]))
        for _ in range(draw(st.integers(1, 4))):
            rows.append(
                {
                    "pseudonym": f"p{i}",
                    "kind": draw(st.sampled_from(["window_score", "request"])),
                    "zone": zone,
                    "arrival_bucket": arrival,
                    "age_band": age,
                    "ticket_type": ticket,
                    "v:score": float(draw(st.integers(0, 100))),
                }
            )
    return pd.DataFrame(rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(linkable(), st.integers(1, 8), st.sampled_from([0.0, 0.05, 0.2, 0.5]))
def test_the_anonymisers_output_has_one_k(frame: pd.DataFrame, k_min: int, limit: float) -> None:
    groups, choice = aggregate_k_anonymous(
        frame, QIS, HIERARCHIES, k_min=k_min, max_suppression=limit
    )
    kept = choice.generalised.loc[~choice.small]
    keys = ["kind", *QIS]
    if kept.empty:
        assert groups == []
        return
    # the engine counting people, the audit's assessment on one row per person and class, and
    # a plain pandas recount: one k
    people = kept.drop_duplicates(["pseudonym", *keys])
    engine_k = k_anonymity(kept, keys, subject="pseudonym")
    audit_k = assess(people[keys], keys).k
    recount = int(kept.groupby(keys, dropna=False)["pseudonym"].nunique().min())
    assert engine_k == audit_k == recount == min(g["subjects"] for g in groups)
    assert engine_k >= k_min
    assert measure(kept, keys, subject="pseudonym").records == len(people)
    # what was suppressed stays within the limit, unless even the top node could not make it
    top = {q: anonymiser_ladders(HIERARCHIES, QIS)[q].height for q in QIS}
    if choice.levels != top:
        assert choice.suppressed_subjects <= limit * frame["pseudonym"].nunique() + 1e-9


def _oracle_loss(frame: pd.DataFrame, k_min: int, limit: float) -> float | None:
    """The least loss of an acceptable node, by brute force with pandas and generalise_value."""
    ladders = anonymiser_ladders(HIERARCHIES, QIS)
    floors = [ladders[q].first_level_at_least(3600) if q == "arrival_bucket" else 1 for q in QIS]
    heights = [ladders[q].height for q in QIS]
    people = frame["pseudonym"].nunique()
    best = None
    for node in itertools.product(*(range(f, h + 1) for f, h in zip(floors, heights, strict=True))):
        table = frame[["pseudonym", "kind"]].copy()
        for q, level in zip(QIS, node, strict=True):
            table[q] = [ladders[q].generalise_value(v, level) for v in frame[q]]
        size = table.groupby(["kind", *QIS])["pseudonym"].transform("nunique")
        small = size < k_min
        if small.all() or table.loc[small, "pseudonym"].nunique() > int(limit * people + 1e-9):
            continue
        loss = float(np.mean([lv / h for lv, h in zip(node, heights, strict=True)]))
        best = loss if best is None else min(best, loss)
    return best


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(linkable(), st.integers(1, 6), st.sampled_from([0.0, 0.1, 0.3]))
def test_the_anonymiser_chooses_the_least_loss_node(
    frame: pd.DataFrame, k_min: int, limit: float
) -> None:
    choice = choose_generalisation(frame, QIS, HIERARCHIES, k_min=k_min, max_suppression=limit)
    ladders = anonymiser_ladders(HIERARCHIES, QIS)
    heights = [ladders[q].height for q in QIS]
    expected = _oracle_loss(frame, k_min, limit)
    if expected is None:  # nothing acceptable: every QI suppressed, small groups dropped
        assert choice.levels == dict(zip(QIS, heights, strict=True))
        return
    loss = float(np.mean([choice.levels[q] / h for q, h in zip(QIS, heights, strict=True)]))
    assert loss == pytest.approx(expected)


def test_one_notch_of_a_long_ladder_costs_less_than_one_of_a_short_one() -> None:
    """The cost function at work: arrival 1h -> 1d is 1/4 of its ladder, age 10y -> 20y 1/3.

    Either step alone reaches k = 2 here; a plain step count would call them equal.
    """
    frame = pd.DataFrame(
        {
            "pseudonym": ["p0", "p1", "p2", "p3"],
            "kind": ["window_score"] * 4,
            "zone": ["A1"] * 4,
            "arrival_bucket": [
                START,
                START,
                START + timedelta(hours=1),
                START + timedelta(hours=1),
            ],
            "age_band": ["20-29", "30-39", "20-29", "30-39"],
            "ticket_type": ["day"] * 4,
        }
    )
    choice = choose_generalisation(frame, QIS, HIERARCHIES, k_min=2, max_suppression=0.0)
    assert choice.labels == {
        "zone": "area",
        "arrival_bucket": "1d",
        "age_band": "10y",
        "ticket_type": "*",
    }
    assert choice.suppressed_subjects == 0


STRICT = parse_hierarchies(
    {"zone": ["area", "*"], "arrival": ["1h", "1d", "*"], "age": ["10y", "20y", "*"]}
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(20, 250),
    st.integers(0, 2**32 - 1),
    st.builds(
        Thresholds,
        k_min=st.integers(1, 8),
        l_min=st.integers(1, 3),
        t_max=st.sampled_from([0.3, 0.5, 1.0]),
        max_prosecutor_risk=st.sampled_from([0.2, 0.5, 1.0]),
        max_suppression=st.sampled_from([0.0, 0.05, 0.2]),
    ),
    st.booleans(),
)
def test_a_lattice_result_meets_what_it_was_asked(
    n: int, seed: int, limits: Thresholds, people: bool
) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "who": rng.integers(0, max(2, n // 2), n),  # some people have two records
            "zone": rng.choice(["A1", "A2", "B1", "C1"], n),
            "arrival": np.datetime_as_string(
                np.datetime64("2026-06-21T18:00") + rng.integers(0, 40, n) * np.timedelta64(9, "m"),
                unit="m",
            ),
            "age": rng.choice(["18-24", "25-34", "35-44", "55+"], n),
            "band": rng.choice([0, 20, 40, 60, 80], n),
        }
    )
    qis, sas = ["zone", "arrival", "age"], ["band"]
    subject = "who" if people else None
    lattice = Lattice(frame, qis, sas, STRICT, limits, subject=subject)
    result = lattice.search()
    if result.best is None:
        assert result.top is not None
        return
    out, suppressed = lattice.apply(result.best.levels)
    kept = out.loc[~suppressed]
    report = measure(kept, qis, sas, thresholds=limits, subject=subject)
    assert report.meets(limits)
    assert report.k == result.best.report.k and report.records == result.best.report.records
    dropped = frame.loc[suppressed, subject].nunique() if subject else int(suppressed.sum())
    assert dropped == result.best.suppressed
    assert result.best.suppressed <= limits.max_suppression * result.best.records + 1e-9


def test_people_are_counted_once_per_class() -> None:
    frame = pd.DataFrame({"who": ["a", "a", "a", "b", "c", "c"], "zone": ["Z"] * 3 + ["Y"] * 3})
    assert measure(frame, ["zone"]).k == 3
    report = measure(frame, ["zone"], subject="who")
    assert (report.k, report.records, report.classes) == (1, 3, 2)  # Z: {a}, Y: {b, c}


def test_the_engine_imports_only_the_ground_floor_numpy_and_pandas() -> None:
    allowed = {"numpy", "pandas", "retention.errors", "retention.ground"}
    for path in sorted(Path(engine.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level == 1:
                    continue  # a sibling inside the engine
                base = "retention" if node.level == 2 else ""
                names = [".".join(p for p in (base, node.module or "") if p)]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                ok = top in sys.stdlib_module_names or any(
                    name == a or name.startswith(a + ".") for a in allowed
                )
                assert ok, f"{path.name} imports {name}"
