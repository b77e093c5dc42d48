"""Track selection from crowd sentiment, with Adaptive Flow and artist control.

Every unplayed, allowed track gets a match score (weights are the DSA Art 27 "main
parameters", stored with every decision)::

    match = 0.40 · (1 − |energy − target_energy|)
          + 0.25 · (1 − |valence − target_valence|)
          + 0.20 · max(0, 1 − |bpm − previous_bpm| / 40)
          + 0.15 · requests            (attendee requests for the track or its artist, 0–1)
          − 0.25 · same artist as one of the last 3 tracks

    target_energy  = clip(0.30 + 0.60 · crowd/100 + 0.02 · trend_per_min, 0.2, 1.0)
    target_valence = clip(0.80 − 0.30 · crowd/100, 0.3, 0.9)

**Adaptive Flow**: when the crowd EMA is below ``selection.adaptive_flow_threshold`` the pick
is restricted to mood-recovery tracks (falling back to every allowed track if none is left) and
the targets become energy 0.70, valence 0.90. Artist control is applied first (see
:mod:`pipeline.artist`). Ties break on the track id, so the same inputs give the same pick.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from .artist import ArtistControl
from .catalogue import Catalogue
from .sentiment import Snapshot

__all__ = ["WEIGHTS", "Choice", "Selector"]

WEIGHTS = {"energy": 0.40, "valence": 0.25, "bpm": 0.20, "requests": 0.15, "artist_repeat": -0.25}
RECOVERY_TARGETS = {"energy": 0.70, "valence": 0.90}
BPM_SPAN = 40.0
RECENT_ARTISTS = 3
_MIN_TITLE = 4


@dataclass
class Choice:
    """One decision, ready to be stored as a :class:`retention.models.Decision`."""

    at: datetime
    track_id: str
    crowd_sentiment: float
    adaptive_flow: bool
    artist_override: bool
    explanation: str
    inputs: dict[str, Any]
    parameters: dict[str, Any]


@dataclass
class Selector:
    """Stateful selector for one event run (played tracks, pending requests)."""

    catalogue: Catalogue
    artist: ArtistControl
    threshold: float
    scorer_parameters: dict[str, Any] = field(default_factory=dict)
    played: list[int] = field(default_factory=list)
    _title_requests: np.ndarray = field(init=False, repr=False)
    _artist_requests: dict[str, int] = field(default_factory=dict, repr=False)
    _recent: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_ARTISTS))

    def __post_init__(self) -> None:
        self._title_requests = np.zeros(len(self.catalogue), np.int64)
        self._titles = [t.title.lower() for t in self.catalogue.tracks]
        self._artist_names = sorted({t.artist for t in self.catalogue.tracks}, key=str.lower)
        self._artist_col = np.array(self.catalogue.artists())

    # -- requests --------------------------------------------------------------------------------
    def add_request(self, text: str) -> bool:
        """Count a free-text request against titles and artists; the text itself is not kept."""
        lowered = text.lower()
        matched = False
        for i, title in enumerate(self._titles):
            if len(title) >= _MIN_TITLE and title in lowered:
                self._title_requests[i] += 1
                matched = True
        for name in self._artist_names:
            if len(name) >= _MIN_TITLE and name.lower() in lowered:
                self._artist_requests[name] = self._artist_requests.get(name, 0) + 1
                matched = True
        return matched

    def _request_credit(self) -> np.ndarray:
        credit = self._title_requests.astype(np.float64)
        for name, count in self._artist_requests.items():
            credit += 0.5 * count * (self._artist_col == name)
        return np.minimum(credit, 1.0)

    def pending_requests(self) -> int:
        return int(self._title_requests.sum()) + sum(self._artist_requests.values())

    # -- deciding --------------------------------------------------------------------------------
    def decide(self, at: datetime, snapshot: Snapshot) -> Choice:
        crowd = float(snapshot.crowd if snapshot.crowd is not None else 50.0)
        trend = float(snapshot.trend_per_min)
        adaptive = crowd < self.threshold
        n = len(self.catalogue)
        allowed = self.artist.allowed(n)
        every_track_vetoed = not allowed.any()
        if every_track_vetoed:  # something must play: the vetoes are set aside, and it says so
            allowed = np.ones(n, bool)
        unplayed = np.ones(n, bool)
        unplayed[self.played] = False
        pool = self.artist.pool(n)
        candidates = allowed & unplayed
        pool_state = "none"
        if pool is not None:
            in_pool = candidates & pool
            pool_state = "used" if in_pool.any() else "exhausted"
            if in_pool.any():
                candidates = in_pool
        if not candidates.any():  # everything allowed was played: allow repeats
            candidates = allowed.copy()
        if adaptive and (candidates & self.catalogue.recovery).any():
            candidates = candidates & self.catalogue.recovery
        if adaptive:
            targets = dict(RECOVERY_TARGETS)
        else:
            targets = {
                "energy": float(np.clip(0.30 + 0.60 * crowd / 100 + 0.02 * trend, 0.2, 1.0)),
                "valence": float(np.clip(0.80 - 0.30 * crowd / 100, 0.3, 0.9)),
            }
        previous = self.catalogue.tracks[self.played[-1]] if self.played else None
        score = self._scores(targets, previous.bpm if previous else None)
        score = np.where(candidates, score, -np.inf)
        order = np.lexsort((np.arange(n), -score))  # best score first, then catalogue order
        best = int(order[0])
        auto = self.catalogue.tracks[best]
        alternatives = [
            {"track": self.catalogue.tracks[i].id, "match": round(float(score[i]), 4)}
            for i in order[1:4].tolist()
            if np.isfinite(score[i])
        ]

        chosen, overridden, note = best, False, ""
        override = self.artist.take_override(at)
        if override is not None:
            idx = self.catalogue.index_of(override.track)
            if idx is not None:
                chosen, overridden, note = idx, True, override.note
        track = self.catalogue.tracks[chosen]
        self.played.append(chosen)
        self._recent.append(track.artist)
        requested = int(self._title_requests[chosen]) + self._artist_requests.get(track.artist, 0)
        self._title_requests[chosen] = 0
        self._artist_requests.pop(track.artist, None)

        inputs = {
            "crowd_sentiment": round(crowd, 2),
            "crowd_raw": None if snapshot.crowd_raw is None else round(snapshot.crowd_raw, 2),
            "trend_per_min": round(trend, 2),
            "zones": snapshot.zones,
            "active_wristbands": snapshot.active,
            "previous_track": previous.id if previous else None,
            "previous_bpm": previous.bpm if previous else None,
            "requests_for_track": requested,
            "requests_pending": self.pending_requests(),
            "candidates": int(candidates.sum()),
            "pinned_pool": pool_state,
            **({"every_track_vetoed": True} if every_track_vetoed else {}),
            "automatic_pick": auto.id,
            "automatic_match": round(float(score[best]), 4),
            "alternatives": alternatives,
        }
        parameters = {
            "weights": dict(WEIGHTS),
            "targets": {k: round(v, 3) for k, v in targets.items()},
            "target_formula": {
                "energy": "clip(0.30 + 0.60*crowd/100 + 0.02*trend_per_min, 0.2, 1.0)",
                "valence": "clip(0.80 - 0.30*crowd/100, 0.3, 0.9)",
                "adaptive_flow": RECOVERY_TARGETS,
            },
            "adaptive_flow_threshold": self.threshold,
            "artist_control": self.artist.mode,
            "sentiment": self.scorer_parameters,
        }
        return Choice(
            at=at,
            track_id=track.id,
            crowd_sentiment=round(crowd, 2),
            adaptive_flow=adaptive,
            artist_override=overridden,
            explanation=self._explain(crowd, trend, targets, adaptive, track, auto, note,
                                      overridden, requested),
            inputs=inputs,
            parameters=parameters,
        )

    def _scores(self, targets: dict[str, float], previous_bpm: float | None) -> np.ndarray:
        c = self.catalogue
        score = WEIGHTS["energy"] * (1 - np.abs(c.energy - targets["energy"]))
        score += WEIGHTS["valence"] * (1 - np.abs(c.valence - targets["valence"]))
        if previous_bpm is None:
            score += WEIGHTS["bpm"]
        else:
            score += WEIGHTS["bpm"] * np.maximum(0, 1 - np.abs(c.bpm - previous_bpm) / BPM_SPAN)
        score += WEIGHTS["requests"] * self._request_credit()
        if self._recent:
            score += WEIGHTS["artist_repeat"] * np.isin(self._artist_col, list(self._recent))
        return score

    def _explain(
        self,
        crowd: float,
        trend: float,
        targets: dict[str, float],
        adaptive: bool,
        track: Any,
        auto: Any,
        note: str,
        overridden: bool,
        requested: int,
    ) -> str:
        mood = "rising" if trend > 1 else "falling" if trend < -1 else "steady"
        if overridden:
            text = (f"artist override{f' ({note})' if note else ''}: {track.id} "
                    f"'{track.title}' by {track.artist} replaces automatic pick {auto.id}")
        elif adaptive:
            text = (f"Adaptive Flow: crowd {crowd:.0f} < {self.threshold:.0f} ({mood}, "
                    f"{trend:+.1f}/min) -> recovery track {track.id} '{track.title}' by "
                    f"{track.artist} (energy {track.energy:.2f}, valence {track.valence:.2f})")
        else:
            text = (f"crowd {crowd:.0f}/100 {mood} ({trend:+.1f}/min) -> {track.id} "
                    f"'{track.title}' by {track.artist}: energy {track.energy:.2f} (target "
                    f"{targets['energy']:.2f}), valence {track.valence:.2f} (target "
                    f"{targets['valence']:.2f}), {track.bpm:.0f} bpm")
        if requested:
            text += f"; requested {requested}x"
        if not self.artist.allowed(len(self.catalogue)).any():
            text += "; every track is vetoed, so the vetoes were set aside for this pick"
        return text
