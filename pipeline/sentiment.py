"""Crowd sentiment: 0–100 per wristband window, then per zone and for the crowd with an EMA.

The built-in scorer is a weighted sum of five documented features, each mapped linearly onto
0–1 between a low and a high anchor and clipped::

    score = 100 × Σ weightᵢ · clip((featureᵢ − lowᵢ) / (highᵢ − lowᵢ), 0, 1)

=============== ======== ======== ======== =============================================
feature          low      high     weight   why
=============== ======== ======== ======== =============================================
level_dbfs       −40      −14      0.45     an engaged crowd is loud
clap_rate        0 /s     2.5 /s   0.20     clapping and stomping mean approval
centroid_hz      500      1800     0.15     cheering is bright; chatter and a far PA are dark
voiced_ratio     0        1        0.10     singing and shouting along
flux             0.10     0.40     0.10     a lively crowd changes its sound
=============== ======== ======== ======== =============================================

A wristband window with fewer than ``MIN_FRAMES`` gated frames gets no score. Zones average their
wristbands; the crowd averages zones weighted by scored wristbands; both are smoothed with an
exponential moving average (``alpha`` per window) and the crowd trend is the EMA change over the
last ``trend_windows`` windows, in points per minute.

Scorers are pluggable: any object with ``name``, ``score(FeatureSet) -> array`` and
``main_parameters() -> dict`` registered in the entry-point group ``flowaudit.scorers`` (the
article's "open API for third-party sentiment tools"); ``selection.scorer`` in the policy picks
one, and ``selection.third_party_scorers`` must allow it. A scorer only ever sees the aggregate
features, never audio.
"""

from __future__ import annotations

import importlib.metadata as md
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from retention.errors import ConfigError, NotFoundError, PolicyError

from .features import FeatureSet

__all__ = [
    "ENTRY_POINT_GROUP",
    "MIN_FRAMES",
    "Scorer",
    "BuiltinScorer",
    "Ramp",
    "load_scorer",
    "available_scorers",
    "checked_scores",
    "CrowdSentiment",
    "Snapshot",
]

ENTRY_POINT_GROUP = "flowaudit.scorers"
MIN_FRAMES = 20  # 0.6 s of gated audio


@runtime_checkable
class Scorer(Protocol):
    """What a sentiment scorer offers; see the module docstring."""

    name: str

    def score(self, features: FeatureSet) -> np.ndarray: ...

    def main_parameters(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Ramp:
    """One feature's linear map onto 0–1 and its weight in the score."""

    feature: str
    low: float
    high: float
    weight: float

    def unit(self, values: np.ndarray) -> np.ndarray:
        return np.clip((values - self.low) / (self.high - self.low), 0.0, 1.0)


class BuiltinScorer:
    """The documented, interpretable default scorer."""

    name = "builtin"
    version = "1"
    ramps: tuple[Ramp, ...] = (
        Ramp("level_dbfs", -40.0, -14.0, 0.45),
        Ramp("clap_rate", 0.0, 2.5, 0.20),
        Ramp("centroid_hz", 500.0, 1800.0, 0.15),
        Ramp("voiced_ratio", 0.0, 1.0, 0.10),
        Ramp("flux", 0.10, 0.40, 0.10),
    )

    def contributions(self, features: FeatureSet) -> dict[str, np.ndarray]:
        """Points (0–100 scale) each feature adds, per wristband: the score's explanation."""
        return {
            r.feature: 100 * r.weight * np.nan_to_num(r.unit(getattr(features, r.feature)))
            for r in self.ramps
        }

    def score(self, features: FeatureSet) -> np.ndarray:
        total = sum(self.contributions(features).values())
        scores = np.asarray(total, dtype=np.float64)
        return np.where(features.frames >= MIN_FRAMES, scores, np.nan)

    def main_parameters(self) -> dict[str, Any]:
        return {
            "scorer": self.name,
            "version": self.version,
            "formula": "100 * sum(weight * clip((feature - low) / (high - low), 0, 1))",
            "weights": {r.feature: r.weight for r in self.ramps},
            "anchors": {r.feature: [r.low, r.high] for r in self.ramps},
            "min_frames": MIN_FRAMES,
        }


def available_scorers() -> list[str]:
    """Scorer names registered in the ``flowaudit.scorers`` entry-point group (and builtin)."""
    names = {ep.name for ep in md.entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(names | {"builtin"})


def load_scorer(name: str, *, allow_third_party: bool, policy_name: str = "") -> Scorer:
    """The scorer called ``name``; third-party ones only if the policy allows them."""
    if name == "builtin":
        return BuiltinScorer()
    where = f"policy '{policy_name}'" if policy_name else "the policy"
    if not allow_third_party:
        raise PolicyError(
            f"{where} selects scorer {name!r} but selection.third_party_scorers = false; "
            "set it to true or use scorer = \"builtin\""
        )
    found = sorted(
        (ep for ep in md.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name),
        key=lambda ep: ep.value,
    )
    if not found:
        raise NotFoundError(
            f"no sentiment scorer {name!r} in entry-point group {ENTRY_POINT_GROUP}; "
            f"installed: {', '.join(available_scorers())}"
        )
    try:
        target = found[0].load()
        if isinstance(target, type) or (callable(target) and not isinstance(target, Scorer)):
            scorer = target()  # a class or a factory function
        else:
            scorer = target  # an instance
    except Exception as exc:  # a plugin's own failure: say which plugin, not its data
        raise ConfigError(
            f"sentiment scorer {name!r} ({found[0].value}) failed to load "
            f"({type(exc).__name__}); fix or uninstall the plugin"
        ) from exc
    if not isinstance(scorer, Scorer):
        raise ConfigError(
            f"sentiment scorer {name!r} ({found[0].value}) lacks name, score() or "
            "main_parameters()"
        )
    return scorer


def checked_scores(scorer: Scorer, features: FeatureSet) -> np.ndarray:
    """Run a scorer and hold it to the contract: one finite-or-NaN 0–100 value per wristband."""
    try:
        raw = scorer.score(features)
        scores = np.asarray(raw, dtype=np.float64).reshape(-1)
    except Exception as exc:
        raise ConfigError(
            f"sentiment scorer {scorer.name!r} failed ({type(exc).__name__}); "
            "fix the plugin or select scorer = \"builtin\""
        ) from exc
    if scores.shape != (len(features),):
        raise ConfigError(
            f"sentiment scorer {scorer.name!r} returned {scores.size} scores for "
            f"{len(features)} wristbands; it must return one per wristband"
        )
    scores = np.where(np.isinf(scores), np.nan, scores)
    return np.clip(scores, 0.0, 100.0)


@dataclass(frozen=True)
class Snapshot:
    """Crowd state after one window."""

    crowd: float | None  # EMA, None until the first scored window
    crowd_raw: float | None  # this window's plain mean, None if nothing was scored
    trend_per_min: float
    zones: dict[str, float]  # zone -> EMA
    zone_raw: dict[str, float]
    zone_counts: dict[str, int]  # wristbands scored per zone this window
    active: int  # wristbands scored this window


@dataclass
class CrowdSentiment:
    """Zone and crowd aggregation with an EMA; one :meth:`update` per window."""

    window_seconds: float
    alpha: float = 0.35
    trend_windows: int = 5
    zones: dict[str, float] = field(default_factory=dict)
    crowd: float | None = None
    _history: deque[float] = field(default_factory=deque)

    def update(self, scores: np.ndarray, zones: Sequence[str] | np.ndarray) -> Snapshot:
        valid = ~np.isnan(scores)
        zone_raw: dict[str, float] = {}
        counts: dict[str, int] = {}
        labels = zones if isinstance(zones, np.ndarray) else np.asarray(zones)
        for zone in np.unique(labels[valid]).tolist():
            sel = valid & (labels == zone)
            zone_raw[zone] = float(scores[sel].mean())
            counts[zone] = int(sel.sum())
            prev = self.zones.get(zone)
            self.zones[zone] = zone_raw[zone] if prev is None else (
                self.alpha * zone_raw[zone] + (1 - self.alpha) * prev
            )
        crowd_raw = None
        if counts:
            total = sum(counts.values())
            crowd_raw = sum(zone_raw[z] * counts[z] for z in counts) / total
            self.crowd = crowd_raw if self.crowd is None else (
                self.alpha * crowd_raw + (1 - self.alpha) * self.crowd
            )
        trend = 0.0
        if self.crowd is not None:
            self._history.append(self.crowd)
            while len(self._history) > self.trend_windows + 1:
                self._history.popleft()
            if len(self._history) > 1:
                minutes = (len(self._history) - 1) * self.window_seconds / 60
                trend = (self._history[-1] - self._history[0]) / minutes
        return Snapshot(
            crowd=self.crowd,
            crowd_raw=crowd_raw,
            trend_per_min=trend,
            zones={z: round(v, 2) for z, v in sorted(self.zones.items())},
            zone_raw={z: round(v, 2) for z, v in zone_raw.items()},
            zone_counts=counts,
            active=int(valid.sum()),
        )
