"""Writes re-identification test data through the real store API (no fakes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from flowaudit.runtime import Runtime
from retention.policy import load_policy

EVENT_ID = "fete-2026"
STARTS = datetime(2026, 6, 21, 18, 0, tzinfo=UTC)
ENDS = STARTS + timedelta(hours=6)


def populate(
    runtime: Runtime,
    *,
    wristbands: int,
    seed: int = 0,
    with_scores: int | None = None,
    scores_each: int = 2,
    zones: tuple[str, ...] = ("A1", "A2", "B1", "B2"),
    retention: timedelta = timedelta(days=30),
) -> list[str]:
    """An event with ``wristbands`` consenting subjects; the first ``with_scores`` get scores.

    Returns the pseudonyms in registration order.
    """
    rng = np.random.default_rng(seed)
    policy = load_policy("privacy-by-default")
    scored = wristbands if with_scores is None else with_scores
    pseudonyms: list[str] = []
    with runtime.store.transaction(STARTS - timedelta(hours=1), actor="test") as tx:
        tx.register_event(
            EVENT_ID,
            name="Fête de la Musique",
            starts_at=STARTS,
            ends_at=ENDS,
            policy_name=policy.name,
            policy_sha256=policy.sha256,
        )
        for i in range(wristbands):
            pseudonym = tx.register_subject(
                f"WB-{i:06d}",
                zone=str(rng.choice(zones)),
                age_band=str(rng.choice(["18-24", "25-34", "35-44"])),
                ticket_type=str(rng.choice(["day", "vip"])),
                device_model=str(rng.choice(["XW-2", "XW-3"])),
                arrival_at=STARTS + timedelta(minutes=int(rng.integers(0, 120))),
            )
            tx.record_consent(EVENT_ID, pseudonym, status="opted_in", given_at=STARTS)
            pseudonyms.append(pseudonym)
    with runtime.store.transaction(STARTS + timedelta(hours=1), actor="pipeline") as tx:
        for pseudonym in pseudonyms[:scored]:
            for j in range(scores_each):
                tx.put_metadata(
                    event_id=EVENT_ID,
                    pseudonym=pseudonym,
                    kind="window_score",
                    start_at=STARTS + timedelta(minutes=30 + j),
                    payload={"score": float(rng.integers(0, 101)), "window_s": 10},
                    retention=retention,
                )
    return pseudonyms
