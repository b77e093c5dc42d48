"""The same event under different policies: what is stored, for how long, and on both backends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from pipeline_helpers import SET_START
from sqlalchemy import func, select

from flowaudit.runtime import Runtime
from pipeline import load_event, run_event, synthetic_for
from retention.models import Consent, EventRun, MetadataRecord, RawSegment, Subject
from retention.policy import load_policy

SMALL = {"capture__pre_roll": "30s", "capture__post_roll": "30s",
         "event__ends": SET_START + timedelta(minutes=2),
         "wristbands__generate": {"count": 12, "seed": 5, "staff": 1, "opted_out": 0.2,
                                  "withdrawn": 0.0, "late_arrivals": 0.0}}


def _count(runtime: Runtime, model: type, event_id: str, **where: object) -> int:
    query = select(func.count()).select_from(model).where(model.event_id == event_id)
    for key, value in where.items():
        query = query.where(getattr(model, key) == value)
    with runtime.store.session() as session:
        return int(session.scalar(query) or 0)


def test_tiktok_stores_no_raw_audio_and_spotify_does(
    write_event: Callable[..., Path], pipeline_runtime: Runtime
) -> None:
    event = load_event(write_event(**SMALL))
    tiktok = run_event(pipeline_runtime.store, event, load_policy("tiktok-2026"),
                       synthetic_for(event), event_id="as-tiktok")
    spotify = run_event(pipeline_runtime.store, event, load_policy("spotify-2026"),
                        synthetic_for(event), event_id="as-spotify")
    assert tiktok.raw_segments == 0 and _count(pipeline_runtime, RawSegment, "as-tiktok") == 0
    assert spotify.raw_segments == _count(pipeline_runtime, RawSegment, "as-spotify") > 0
    assert spotify.speech_seconds_stored > 0  # store_speech = true there
    # the spotify profile has no window gate: the "always listening" wristband is stored
    with pipeline_runtime.store.session() as session:
        last = session.scalar(select(func.max(RawSegment.start_at))
                              .where(RawSegment.event_id == "as-spotify"))
        expiry = session.scalar(select(func.min(RawSegment.expires_at))
                                .where(RawSegment.event_id == "as-spotify"))
        first = session.scalar(select(func.min(RawSegment.start_at))
                               .where(RawSegment.event_id == "as-spotify"))
    assert last >= event.ends_at
    assert expiry == first + timedelta(hours=72)
    # both score the crowd; metadata retention follows each policy
    for event_id, retention in (("as-tiktok", timedelta(days=7)), ("as-spotify", None)):
        with pipeline_runtime.store.session() as session:
            rows = session.execute(select(MetadataRecord.start_at, MetadataRecord.expires_at)
                                   .where(MetadataRecord.event_id == event_id,
                                          MetadataRecord.kind == "window_score")).all()
        assert rows
        for start, expires in rows:
            assert expires == (None if retention is None else start + retention)


def test_registration_minimises_what_is_kept(
    write_event: Callable[..., Path], pipeline_runtime: Runtime
) -> None:
    event = load_event(write_event(**SMALL))
    run_event(pipeline_runtime.store, event, load_policy("privacy-by-default"),
              synthetic_for(event))
    roster = event.roster()
    with pipeline_runtime.store.session() as session:
        subjects = {s.pseudonym: s for s in session.scalars(select(Subject))}
        consents = session.scalars(select(Consent)).all()
        run = session.scalars(select(EventRun)).one()
    assert len(consents) == len(roster)
    for serial, wb in roster.items():
        subject = subjects[pipeline_runtime.store.pseudonym(serial)]
        if wb.consent == "opted_out":
            assert subject.zone is None and subject.age_band is None  # only the refusal kept
        elif wb.is_staff:
            assert subject.is_staff and subject.zone is None
        else:
            assert subject.zone == wb.zone and subject.arrival_at == wb.arrival_at
    assert run.finished_at == event.capture_ends
    assert run.summary["status"] == "finished" and run.summary["timeline"]


@pytest.mark.parametrize("policy_name", ["spotify-2026"])
def test_runs_on_both_backends(
    policy_name: str, write_event: Callable[..., Path], runtime: Runtime
) -> None:
    event = load_event(write_event(**SMALL))
    summary = run_event(runtime.store, event, load_policy(policy_name), synthetic_for(event))
    assert summary.raw_segments == _count(runtime, RawSegment, event.id) > 0
    assert summary.window_scores == _count(runtime, MetadataRecord, event.id,
                                           kind="window_score")
    segment = next(runtime.store.iter_raw(now=SET_START, event_id=event.id))
    assert len(segment.pcm) == segment.duration_ms * 32  # 16 kHz int16, decrypted intact


def test_a_second_run_of_the_same_event_is_refused(
    write_event: Callable[..., Path], pipeline_runtime: Runtime
) -> None:
    from retention.errors import InputError

    event = load_event(write_event(**SMALL))
    run_event(pipeline_runtime.store, event, load_policy("tiktok-2026"), synthetic_for(event))
    with pytest.raises(InputError, match="already ran in this home"):
        run_event(pipeline_runtime.store, event, load_policy("spotify-2026"),
                  synthetic_for(event))
