"""The tables re-identification is measured on, read from the store.

- ``subjects``: one row per (not erased) wristband with its quasi-identifiers
  (:data:`retention.ground.quasi.QUASI_IDENTIFIERS`; ``arrival_bucket`` is the arrival time
  floored to 15 minutes, ``2026-06-21T20:15Z``; the exact time never leaves this function).
- ``metadata``: one row per wristband that has ``window_score`` metadata still readable at
  ``now``: the same quasi-identifiers plus the sensitive attribute
  (:data:`~retention.ground.quasi.SENSITIVE_ATTRIBUTES`), the lower bound of the 20-point band
  its mean score falls in (0, 20, 40, 60, 80; a number, so t-closeness uses the ordered
  distance). Scores are decrypted through the store's read path, so expired or shredded
  records are not counted.

Neither table carries the pseudonym: what is measured (and exported) is what an attacker
would see.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from retention.errors import InputError
from retention.ground.quasi import (
    QUASI_IDENTIFIERS,
    SENSITIVE_ATTRIBUTES,
    TIME_QUASI_IDENTIFIERS,
)
from retention.models import Consent, Subject

__all__ = [
    "TABLES",
    "SENTIMENT_BAND",
    "BAND_WIDTH",
    "subjects_frame",
    "metadata_frame",
    "source_frame",
    "sentiment_band",
]

TABLES = ("subjects", "metadata")
SENTIMENT_BAND = SENSITIVE_ATTRIBUTES[0]  # the one sensitive attribute this table builds
BAND_WIDTH = 20
ARRIVAL_STEP_MINUTES = 15
SCORE_KIND = "window_score"


def _arrival_bucket(at: datetime | None) -> str | None:
    if at is None:
        return None
    at = at.astimezone(UTC)
    minute = at.minute - at.minute % ARRIVAL_STEP_MINUTES
    return at.replace(minute=minute, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%MZ")


def _subject_rows(store: Any, event_id: str | None) -> Iterator[dict[str, Any]]:
    query = select(Subject).where(Subject.erased_at.is_(None)).order_by(Subject.id)
    if event_id is not None:
        query = query.join(Consent, Consent.subject_id == Subject.id).where(
            Consent.event_id == event_id
        )
    with store.session() as session:
        for subject in session.scalars(query):
            row: dict[str, Any] = {"pseudonym": subject.pseudonym}
            for qi in QUASI_IDENTIFIERS:
                if qi in TIME_QUASI_IDENTIFIERS:  # the arrival, never as the exact time
                    row[qi] = _arrival_bucket(subject.arrival_at)
                else:
                    row[qi] = getattr(subject, qi)
            yield row


def _subjects_with_pseudonym(store: Any, event_id: str | None) -> pd.DataFrame:
    rows = list(_subject_rows(store, event_id))
    return pd.DataFrame(rows, columns=["pseudonym", *QUASI_IDENTIFIERS], dtype=object)


def subjects_frame(store: Any, *, event_id: str | None = None) -> pd.DataFrame:
    """Quasi-identifiers of every wristband (of one event's consent records, if given)."""
    return _subjects_with_pseudonym(store, event_id).drop(columns="pseudonym")


def sentiment_band(scores: np.ndarray | pd.Series) -> np.ndarray:
    """Lower bound of the :data:`BAND_WIDTH`-point band of 0–100 scores (100 joins 80–100)."""
    values = np.clip(np.asarray(scores, dtype=float), 0.0, 100.0)
    return np.minimum(values // BAND_WIDTH * BAND_WIDTH, 100 - BAND_WIDTH).astype(np.int64)


def metadata_frame(
    store: Any,
    *,
    now: datetime,
    event_id: str | None = None,
    kind: str = SCORE_KIND,
    until: datetime | None = None,
) -> pd.DataFrame:
    """Quasi-identifiers plus the band of each wristband's mean window score.

    ``until`` keeps only records that started before it (e.g. those already past the policy's
    anonymisation point).
    """
    pseudonyms: list[str] = []
    scores: list[float] = []
    for record in store.iter_metadata(now=now, event_id=event_id, kind=kind, until=until):
        score = record.payload.get("score") if isinstance(record.payload, dict) else None
        if record.pseudonym is None or isinstance(score, bool):
            continue
        if isinstance(score, int | float) and np.isfinite(score):
            pseudonyms.append(record.pseudonym)
            scores.append(float(score))
    columns = [*QUASI_IDENTIFIERS, SENTIMENT_BAND]
    if not pseudonyms:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    means = (
        pd.DataFrame({"pseudonym": pseudonyms, "score": scores})
        .groupby("pseudonym", sort=True)["score"]
        .mean()
    )
    bands = pd.DataFrame(
        {"pseudonym": means.index.to_numpy(), SENTIMENT_BAND: sentiment_band(means.to_numpy())}
    )
    subjects = _subjects_with_pseudonym(store, None)
    joined = bands.merge(subjects, on="pseudonym", how="inner")
    return joined[columns].reset_index(drop=True)


def source_frame(
    store: Any, table: str, *, now: datetime, event_id: str | None = None
) -> pd.DataFrame:
    """``subjects`` or ``metadata``."""
    if table == "subjects":
        return subjects_frame(store, event_id=event_id)
    if table == "metadata":
        return metadata_frame(store, now=now, event_id=event_id)
    raise InputError(f"unknown table {table!r}; use one of: {', '.join(TABLES)}")
