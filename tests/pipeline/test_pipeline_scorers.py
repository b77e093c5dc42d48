"""Scorers: the documented builtin, and third-party ones found through the entry point group."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pipeline_helpers import SET_START
from sqlalchemy import select

from flowaudit.runtime import Runtime
from pipeline import load_event, run_event, synthetic_for
from pipeline.features import FeatureSet
from pipeline.sentiment import BuiltinScorer, available_scorers, load_scorer
from retention.errors import ConfigError, NotFoundError, PolicyError
from retention.models import Decision, EventRun
from retention.policy import Policy

FAST = {"capture__pre_roll": "0s", "capture__post_roll": "0s"}


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A tiny installed distribution declaring scorers in ``flowaudit.scorers`` (no network)."""
    site = tmp_path / "site"
    info = site / "flowaudit_test_scorers-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: flowaudit-test-scorers\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[flowaudit.scorers]\n"
        "constant = fa_test_scorers:ConstantScorer\n"
        "wrong-shape = fa_test_scorers:WrongShape\n"
    )
    (site / "fa_test_scorers.py").write_text(textwrap.dedent("""
        import numpy as np

        class ConstantScorer:
            name = "constant"
            def score(self, features):
                return np.full(len(features), 12.5)
            def main_parameters(self):
                return {"scorer": "constant", "weights": {"nothing": 1.0}}

        class WrongShape(ConstantScorer):
            name = "wrong-shape"
            def score(self, features):
                return np.zeros(3)
    """))
    monkeypatch.syspath_prepend(str(site))
    return "constant"


def test_a_third_party_scorer_registered_by_entry_point_is_used(
    plugin_dist: str, write_event: Callable[..., Path], policy_variant: Callable[..., Policy],
    pipeline_runtime: Runtime,
) -> None:
    assert "constant" in available_scorers()
    event = load_event(write_event(**FAST))
    policy = policy_variant("tiktok-2026", selection__scorer="constant")
    summary = run_event(pipeline_runtime.store, event, policy, synthetic_for(event, 8))
    assert summary.scorer == "constant"
    scores = {m.payload["score"] for m in pipeline_runtime.store.iter_metadata(
        now=SET_START, kind="window_score")}
    assert scores == {12.5}
    assert summary.adaptive_flow == summary.decisions > 0  # a crowd at 12.5 needs recovery
    with pipeline_runtime.store.session() as session:
        decision = session.scalars(select(Decision)).first()
    assert decision is not None
    assert decision.parameters["sentiment"] == {"scorer": "constant", "weights": {"nothing": 1.0}}


def test_third_party_scorers_need_the_policy_to_allow_them(
    plugin_dist: str, policy_variant: Callable[..., Policy]
) -> None:
    policy = policy_variant("privacy-by-default", selection__scorer="constant")
    with pytest.raises(PolicyError, match="third_party_scorers = false"):
        load_scorer("constant", allow_third_party=False, policy_name=policy.name)
    with pytest.raises(NotFoundError, match="installed: .*builtin"):
        load_scorer("no-such-scorer", allow_third_party=True)


def test_a_misbehaving_scorer_stops_the_run_cleanly(
    plugin_dist: str, write_event: Callable[..., Path], policy_variant: Callable[..., Policy],
    pipeline_runtime: Runtime,
) -> None:
    event = load_event(write_event(**FAST))
    policy = policy_variant("tiktok-2026", selection__scorer="wrong-shape")
    with pytest.raises(ConfigError, match="returned 3 scores for 8 wristbands"):
        run_event(pipeline_runtime.store, event, policy, synthetic_for(event, 8))
    with pipeline_runtime.store.session() as session:
        run = session.scalars(select(EventRun)).one()
    assert run.summary["status"] == "failed" and run.finished_at is None


def _features(level: np.ndarray, claps: np.ndarray) -> FeatureSet:
    n = level.size
    return FeatureSet(level_dbfs=level, clap_rate=claps, flux=np.full(n, 0.2),
                      centroid_hz=np.full(n, 1000.0), voiced_ratio=np.full(n, 0.5),
                      frames=np.full(n, 200.0))


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.floats(-120, 0), min_size=2, max_size=20),
    st.floats(0, 10),
)
def test_builtin_scores_are_bounded_and_rise_with_level(levels: list[float], claps: float) -> None:
    level = np.sort(np.array(levels))
    scores = BuiltinScorer().score(_features(level, np.full(level.size, claps)))
    assert np.all((scores >= 0) & (scores <= 100))
    assert np.all(np.diff(scores) >= -1e-9)


def test_builtin_weights_sum_to_one_and_explain_the_score() -> None:
    scorer = BuiltinScorer()
    assert sum(scorer.main_parameters()["weights"].values()) == pytest.approx(1.0)
    features = _features(np.array([-14.0, -40.0]), np.array([2.5, 0.0]))
    parts = scorer.contributions(features)
    assert parts["level_dbfs"].tolist() == [45.0, 0.0]
    assert parts["clap_rate"].tolist() == [20.0, 0.0]
    assert scorer.score(features) == pytest.approx(sum(parts.values()))
    few = _features(np.array([-14.0]), np.array([1.0]))
    few.frames[:] = 5
    assert np.isnan(scorer.score(few)[0])  # too little audio for a score
