"""Selection decisions (DSA Art 27 statistics) and pipeline run summaries (minimisation facts)."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.reports._fmt import iso
from audit.reports.gather.store import FRAME_MS
from retention.models import Decision, EventRun
from retention.store import LIVE_RUN_SOURCE, RUN_FINISHED, live_run_totals

__all__ = [
    "decision_stats",
    "parameter_weights",
    "run_summaries",
    "percentile",
    "minimisation",
]


def percentile(values: list[float], q: float) -> float | None:
    """numpy's default (linear) percentile; ``None`` for no values."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=float), q))


def _weights(parameters: dict[str, Any]) -> dict[str, float]:
    """The numeric weights a decision recorded (``parameters["weights"]``, else top level)."""
    source = parameters.get("weights") if isinstance(parameters.get("weights"), dict) else None
    source = source if source is not None else parameters
    return {
        str(k): float(v)
        for k, v in source.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def parameter_weights(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each recorded parameter with its mean, min and max weight, most important first."""
    values: dict[str, list[float]] = defaultdict(list)
    for parameters in rows:
        for name, weight in _weights(parameters).items():
            values[name].append(weight)
    out: list[dict[str, Any]] = [
        {
            "name": name,
            "mean_weight": float(np.mean(ws)),
            "min_weight": min(ws),
            "max_weight": max(ws),
            "decisions": len(ws),
        }
        for name, ws in values.items()
    ]
    total = sum(abs(p["mean_weight"]) for p in out) or 1.0
    for p in out:
        p["share"] = abs(p["mean_weight"]) / total
    out.sort(key=lambda p: (-abs(p["mean_weight"]), p["name"]))
    for rank, p in enumerate(out, 1):
        p["rank"] = rank
    return out


def _settings(parameters: dict[str, Any] | None) -> dict[str, Any]:
    """How sentiment turns into targets, as the latest decision recorded it (strings only)."""
    parameters = parameters or {}
    formula = parameters.get("target_formula")
    formulas = {
        str(k): v if isinstance(v, str) else json.dumps(v, sort_keys=True)
        for k, v in (formula.items() if isinstance(formula, dict) else [])
    }
    return {
        "target_formula": formulas,
        "adaptive_flow_threshold": parameters.get("adaptive_flow_threshold"),
        "artist_control": parameters.get("artist_control"),
    }


def decision_stats(session: Session, event_id: str) -> dict[str, Any]:
    """Counts, rates, latency percentiles and the sentiment trace of one event's decisions."""
    rows = session.execute(
        select(
            Decision.decided_at,
            Decision.crowd_sentiment,
            Decision.adaptive_flow,
            Decision.artist_override,
            Decision.latency_ms,
            Decision.parameters,
            Decision.explanation,
        )
        .where(Decision.event_id == event_id)
        .order_by(Decision.decided_at, Decision.id)
    ).all()
    count = len(rows)
    latencies = [float(r.latency_ms) for r in rows]
    sentiments = [float(r.crowd_sentiment) for r in rows]
    adaptive = sum(1 for r in rows if r.adaptive_flow)
    overrides = sum(1 for r in rows if r.artist_override)
    return {
        "decisions": count,
        "adaptive_flow": adaptive,
        "adaptive_flow_rate": adaptive / count if count else None,
        "artist_overrides": overrides,
        "artist_override_rate": overrides / count if count else None,
        "without_parameters": sum(1 for r in rows if not r.parameters),
        "without_explanation": sum(1 for r in rows if not (r.explanation or "").strip()),
        "latency_ms_p50": percentile(latencies, 50),
        "latency_ms_p99": percentile(latencies, 99),
        "latency_ms_max": max(latencies) if latencies else None,
        "sentiment_min": min(sentiments) if sentiments else None,
        "sentiment_mean": float(np.mean(sentiments)) if sentiments else None,
        "sentiment_max": max(sentiments) if sentiments else None,
        "first_at": iso(rows[0].decided_at) if rows else None,
        "last_at": iso(rows[-1].decided_at) if rows else None,
        "parameters": parameter_weights([r.parameters or {} for r in rows]),
        "recorded_settings": _settings(rows[-1].parameters if rows else None),
        "trace": [
            [
                iso(r.decided_at),
                float(r.crowd_sentiment),
                bool(r.adaptive_flow),
                bool(r.artist_override),
            ]
            for r in rows
        ],
    }


def run_summaries(session: Session, event_id: str) -> list[dict[str, Any]]:
    """The pipeline runs of an event with their stored summaries, oldest first. A live run
    that has not closed yet has no totals in its summary: they are read from what its
    workers committed so far."""
    return [
        {
            "id": run.id,
            "policy_name": run.policy_name,
            "source": run.source,
            "started_at": iso(run.started_at),
            "finished_at": iso(run.finished_at),
            "summary": _summary(session, run),
        }
        for run in session.scalars(
            select(EventRun).where(EventRun.event_id == event_id).order_by(EventRun.id)
        )
    ]


def _summary(session: Session, run: EventRun) -> dict[str, Any]:
    summary = dict(run.summary or {})
    if run.source == LIVE_RUN_SOURCE and summary.get("status") != RUN_FINISHED:
        summary = {**live_run_totals(session, run.event_id, run.id), **summary}
    return summary


_REASON_KEYS = ("speech", "window", "staff", "consent", "withdrawn")


def _drops(summary: dict[str, Any]) -> dict[str, int]:
    for key in ("dropped_by_reason", "dropped", "drops"):
        value = summary.get(key)
        if isinstance(value, dict):
            return {str(k): int(v) for k, v in value.items() if isinstance(v, int | float)}
    return {}


def minimisation(runs: list[dict[str, Any]], raw: dict[str, Any]) -> dict[str, Any]:
    """Audio captured vs dropped (pipeline run summaries) vs stored (the raw store).

    Frame counts from every run of the event are summed, as the store holds what all of them
    wrote. A frame is 30 ms of one wristband's audio. ``speech`` frames are not dropped from
    analysis: they are withheld from the raw store only. ``pipeline_*`` is what the runs wrote;
    ``stored_seconds`` / ``speech_seconds`` what the raw store still holds (after purges).
    """
    frames_in = frames_scored = frames_stored = 0
    speech_stored = 0.0
    dropped: dict[str, int] = {}
    for run in runs:
        summary = run["summary"]
        frames_in += int(summary.get("frames_in") or summary.get("frames") or 0)
        frames_scored += int(summary.get("frames_scored") or 0)
        frames_stored += int(summary.get("frames_stored") or 0)
        speech_stored += float(summary.get("speech_seconds_stored") or 0.0)
        for reason, count in _drops(summary).items():
            dropped[reason] = dropped.get(reason, 0) + count
    per_frame = FRAME_MS / 1000

    def seconds_for(word: str) -> float:
        return sum(n for reason, n in dropped.items() if word in reason) * per_frame

    captured = frames_in * per_frame
    return {
        "runs": len(runs),
        "captured_frames": frames_in,
        "captured_seconds": captured,
        "dropped": [
            {"reason": reason, "frames": n, "seconds": n * per_frame}
            for reason, n in dropped.items()
        ],
        "dropped_seconds": sum(dropped.values()) * per_frame,
        **{f"{word}_dropped_seconds": seconds_for(word) for word in _REASON_KEYS},
        "scored_seconds": frames_scored * per_frame,
        "pipeline_stored_seconds": frames_stored * per_frame,
        "pipeline_speech_seconds": speech_stored,
        "stored_seconds": raw["audio_seconds"],
        "speech_seconds": raw["speech_seconds"],
        "stored_share": frames_stored * per_frame / captured if captured else None,
    }
