"""The lattice search finds the least generalisation; the export gate refuses or generalises."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.reid.export_gate import gate, gate_policy
from audit.reid.risk import Thresholds, assess
from retention.anonymity import Lattice, find_generalisation, generalise_frame, parse_hierarchies
from retention.errors import GateRefusedError, InputError
from retention.policy import load_policy

HIERARCHIES = parse_hierarchies(
    {
        "zone": ["area", "*"],
        "arrival": ["1h", "1d", "*"],
        "age": ["10y", "20y", "*"],
        "device": ["*"],
    }
)
QIS = ["zone", "arrival", "age", "device"]


def crowd(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = np.datetime64("2026-06-21T18:00")
    return pd.DataFrame(
        {
            "zone": rng.choice(["A1", "A2", "B1", "B2", "C1"], n),
            "arrival": np.datetime_as_string(
                base + rng.integers(0, 24, n) * np.timedelta64(15, "m"), unit="m"
            ),
            "age": rng.choice(["18-24", "25-34", "35-44", "45-54", "55+"], n),
            "device": rng.choice(["XW-2", "XW-3"], n),
            "band": rng.choice([0, 20, 40, 60, 80], n),
        }
    )


def _oracle(frame: pd.DataFrame, levels: tuple[int, ...], sas: list[str], limits: Thresholds):
    """An independent evaluation of one node: pandas groupby on the recoded frame."""
    recoded = generalise_frame(frame, dict(zip(QIS, levels, strict=True)), HIERARCHIES)
    grouped = recoded.groupby(QIS, dropna=False)
    fail = grouped[QIS[0]].transform("size") < limits.min_class_size
    for sa in sas:
        fail |= grouped[sa].transform("nunique") < limits.l_min
    budget = int(np.floor(limits.max_suppression * len(frame) + 1e-9))
    if fail.sum() > budget or fail.all():
        return None
    kept = recoded[~fail.to_numpy()]
    report = assess(kept, QIS, sas, thresholds=limits)
    return report if report.meets() else None


def _loss(levels: tuple[int, ...]) -> float:
    heights = [HIERARCHIES[c].height for c in QIS]
    return float(np.mean([lv / h for lv, h in zip(levels, heights, strict=True)]))


@settings(max_examples=12, deadline=None)
@given(st.integers(30, 160), st.integers(0, 10_000), st.integers(2, 6), st.booleans())
def test_search_finds_the_least_loss_node(n: int, seed: int, k_min: int, with_sa: bool) -> None:
    frame = crowd(n, seed)
    sas = ["band"] if with_sa else []
    limits = Thresholds(
        k_min=k_min, l_min=2, t_max=1.0, max_prosecutor_risk=1.0, max_suppression=0.1
    )
    heights = [HIERARCHIES[c].height for c in QIS]
    passing = [
        levels
        for levels in itertools.product(*(range(h + 1) for h in heights))
        if _oracle(frame, levels, sas, limits) is not None
    ]
    result = Lattice(frame, QIS, sas, HIERARCHIES, limits).search()
    if not passing:
        assert result.best is None and result.top is not None
        return
    assert result.best is not None
    best_levels = tuple(result.best.levels[c] for c in QIS)
    assert best_levels in passing
    assert result.best.loss == pytest.approx(min(_loss(p) for p in passing))
    assert result.best.suppressed_share <= limits.max_suppression
    assert result.nodes_evaluated <= result.nodes_total == int(np.prod([h + 1 for h in heights]))


def test_generalised_output_is_what_the_search_measured() -> None:
    frame = crowd(400, 7)
    limits = Thresholds(k_min=5, l_min=2, t_max=0.6, max_prosecutor_risk=0.2)
    result, out = find_generalisation(frame, QIS, ["band"], HIERARCHIES, limits)
    assert result.best is not None and out is not None
    again = assess(out, QIS, ["band"], thresholds=limits)
    assert again.meets()
    assert again.k == result.best.report.k and again.records == result.best.report.records
    assert len(out) == len(frame) - result.best.suppressed
    # the search stops early: far fewer nodes than the whole lattice
    assert result.nodes_evaluated < result.nodes_total


def test_gate_refuses_below_k_min_and_the_generalised_export_meets_it() -> None:
    frame = crowd(300, 3)
    limits = Thresholds(k_min=10, l_min=2, t_max=0.5, max_prosecutor_risk=0.1)
    with pytest.raises(GateRefusedError) as refused:
        gate(frame, quasi_identifiers=QIS, sensitive=["band"], thresholds=limits)
    message = str(refused.value)
    assert "export refused" in message and "< k_min 10" in message and "--generalise" in message
    assert refused.value.exit_code == 2
    result = gate(
        frame,
        quasi_identifiers=QIS,
        sensitive=["band"],
        thresholds=limits,
        hierarchies=HIERARCHIES,
        generalise=True,
    )
    assert result.generalisation is not None
    assert result.report.k >= 10 and result.report.meets()
    assert assess(result.frame, QIS, ["band"], thresholds=limits).meets()
    assert list(result.frame.columns) == [*QIS, "band"]
    assert result.generalisation.suppressed_share <= limits.max_suppression
    assert 0 < result.generalisation.loss <= 1 and 0 <= result.generalisation.precision < 1


def test_gate_passes_a_table_that_already_meets_the_thresholds() -> None:
    frame = pd.DataFrame({"zone": ["A"] * 12 + ["B"] * 12, "band": [0, 20] * 12})
    result = gate(frame, quasi_identifiers=["zone"], sensitive=["band"], thresholds=Thresholds())
    assert result.generalisation is None and len(result.frame) == 24


def test_gate_refuses_when_no_recoding_can_pass() -> None:
    frame = crowd(6, 1)  # six people cannot reach k = 10 even fully suppressed
    with pytest.raises(GateRefusedError, match="no recoding within the policy's hierarchies"):
        gate(
            frame,
            quasi_identifiers=QIS,
            sensitive=[],
            thresholds=Thresholds(),
            hierarchies=HIERARCHIES,
            generalise=True,
        )


def test_gate_policy_uses_the_policy_hierarchies() -> None:
    policy = load_policy("privacy-by-default")
    rng = np.random.default_rng(11)
    n = 600
    frame = pd.DataFrame(
        {
            "zone": rng.choice(["A1", "A2", "B1", "B2"], n),
            "arrival_bucket": np.datetime_as_string(
                np.datetime64("2026-06-21T18:00")
                + rng.integers(0, 16, n) * np.timedelta64(15, "m"),
                unit="m",
            ),
            "age_band": rng.choice(["18-24", "25-34", "35-44"], n),
            "ticket_type": rng.choice(["day", "vip"], n),
            "device_model": rng.choice(["XW-2", "XW-3"], n),
            "mean_sentiment_band": rng.choice([20, 40, 60], n),
        }
    )
    with pytest.raises(GateRefusedError):
        gate_policy(frame, policy)
    result = gate_policy(frame, policy, generalise=True)
    assert result.report.meets() and result.generalisation is not None
    assert set(result.generalisation.levels) == set(policy.reid.quasi_identifiers)


def test_gate_rejects_an_empty_table() -> None:
    with pytest.raises(InputError, match="nothing to export"):
        gate(crowd(5, 1).iloc[:0], quasi_identifiers=QIS, sensitive=[], thresholds=Thresholds())
