"""Stores to report on, built with the real parts: the pipeline, the store API, the purge.

* ``pipeline_stores`` (session): the bundled demo event run by the real pipeline (12 synthetic
  wristbands, 4 virtual minutes) under ``spotify-2026`` and ``privacy-by-default``, each in
  its own SQLite home, with data-subject requests and a real purge afterwards (+80 h for
  spotify: raw audio shredded; +73 h for privacy-by-default: metadata anonymised), the log's
  head signed afterwards as the CLI signs it.
* ``scene``: a smaller event written through the store API on the parametrised backend
  (SQLite and PostgreSQL), with decisions, a run summary, requests and a purge.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from audit.log.checkpoints import checkpoint_after_command
from flowaudit.reporting import run_profile
from flowaudit.runtime import Runtime
from pipeline.event import default_event_file, load_event
from retention.models import Decision, EventRun
from retention.policy import load_policy
from retention.purge import purge
from retention.store import EncryptedStore
from retention.subject_requests import (
    erase_subject,
    export_subject,
    extend_request,
    receive_request,
)

from .chromium_helpers import Trap, blank_page_hosts

_ENV = ("FLOWAUDIT_HOME", "FLOWAUDIT_DB_URL", "FLOWAUDIT_MASTER_KEY", "FLOWAUDIT_NOW")
SOURCE = "synth:12"
DURATION = timedelta(minutes=4)


@dataclass
class Built:
    """A store with one event in it, and the instant the reports describe."""

    runtime: Runtime
    event_id: str
    now: datetime
    profile: str


def add_requests(store: EncryptedStore, now: datetime, serials: list[str], out: Path) -> None:
    """Four data-subject requests through the real DSR API: an access request answered on
    time, an erasure answered late, a portability request left overdue, and an access request
    extended (Art 12(3)) and still open."""
    day = timedelta(days=1)
    export_subject(
        store, serials[0], out / "export", now=now - 20 * day, received_at=now - 40 * day
    )
    receive_request(
        store, serials[2], "portability", now=now - 35 * day, received_at=now - 35 * day
    )
    extended = receive_request(
        store, serials[3], "access", now=now - 20 * day, received_at=now - 20 * day
    )
    extend_request(store, extended, now=now - 19 * day, reason="complexity")
    erase_subject(store, serials[1], now=now, received_at=now - 45 * day)


def _pipeline_store(base: Path, profile: str, after: timedelta) -> Built:
    event = load_event(default_event_file())
    runtime = run_profile(base / profile, profile, event, source=SOURCE, duration=DURATION)
    now = event.ends_at + after
    serials = [w.serial for w in event.wristbands if not w.is_staff][:4]
    add_requests(runtime.store, now, serials, base / f"{profile}-dsr")
    purge(runtime.store, now=now)
    runtime.now = now
    checkpoint_after_command(runtime)  # sign the head, as every CLI command does on success
    return Built(runtime, event.id, now, profile)


@pytest.fixture(scope="session")
def pipeline_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Built]]:
    saved = {k: os.environ.pop(k) for k in _ENV if k in os.environ}
    base = tmp_path_factory.mktemp("report-stores")
    try:
        built = {
            "spotify-2026": _pipeline_store(base, "spotify-2026", timedelta(hours=80)),
            "privacy-by-default": _pipeline_store(base, "privacy-by-default", timedelta(hours=73)),
        }
    finally:
        os.environ.update(saved)
    yield built
    for item in built.values():
        item.runtime.close()


@pytest.fixture(params=["spotify-2026", "privacy-by-default"])
def built(request: pytest.FixtureRequest, pipeline_stores: dict[str, Built]) -> Built:
    return pipeline_stores[str(request.param)]


# -- a store-API scene, on SQLite and PostgreSQL ---------------------------------------------------
SCENE_EVENT = "scene-2026"
SCENE_START = datetime(2026, 6, 21, 18, 0, tzinfo=UTC)


def build_scene(runtime: Runtime, out: Path, profile: str = "spotify-2026") -> Built:
    """An event written through the store API: 10 wristbands, 2 hours, decisions, a purge."""
    policy = load_policy(profile)
    store = runtime.store
    rng = np.random.default_rng(7)
    with store.transaction(SCENE_START - timedelta(hours=1), actor="test") as tx:
        tx.register_event(
            SCENE_EVENT,
            name="Scene event",
            starts_at=SCENE_START,
            ends_at=SCENE_START + timedelta(hours=2),
            policy_name=policy.name,
            policy_sha256=policy.sha256,
            venue="Quai",
        )
        pseudonyms = []
        for i in range(10):
            p = tx.register_subject(
                f"SC-{i:03d}",
                zone="front" if i % 2 else "back",
                age_band="25-34",
                ticket_type="standard",
                device_model="XW-2",
                arrival_at=SCENE_START - timedelta(minutes=10 * (i % 3)),
                is_staff=i == 9,
            )
            status = "opted_in" if i < 7 else ("opted_out" if i == 7 else "withdrawn")
            tx.record_consent(
                SCENE_EVENT,
                p,
                status=status,
                given_at=SCENE_START - timedelta(minutes=30),
                notice_version="v1" if i < 5 else "",
            )
            pseudonyms.append(p)
    run = None
    for k in range(4):  # windows 30 min apart, across two UTC hours
        at = SCENE_START + timedelta(minutes=30 * k)
        with store.transaction(at + timedelta(minutes=1), actor="pipeline") as tx:
            if run is None:
                run = EventRun(
                    event_id=SCENE_EVENT,
                    policy_name=policy.name,
                    source="scene",
                    started_at=at,
                    summary={},
                )
                tx.session.add(run)
                tx.session.flush()
            for p in pseudonyms[:6]:
                tx.put_raw(
                    event_id=SCENE_EVENT,
                    pseudonym=p,
                    start_at=at,
                    pcm=rng.integers(-300, 300, 480 * 4, dtype=np.int16).tobytes(),
                    sample_rate=16000,
                    retention=policy.retention.raw_audio,
                    speech_frames=k % 2,
                )
                tx.put_metadata(
                    event_id=SCENE_EVENT,
                    pseudonym=p,
                    kind="window_score",
                    start_at=at,
                    payload={"score": float(30 + 10 * k)},
                    retention=policy.retention.metadata,
                )
            tx.put_metadata(
                event_id=SCENE_EVENT,
                pseudonym=None,
                kind="crowd_score",
                start_at=at,
                payload={"crowd": float(30 + 10 * k)},
                retention=policy.retention.metadata,
            )
            tx.session.add(
                Decision(
                    event_id=SCENE_EVENT,
                    run_id=run.id,
                    decided_at=at,
                    track_id=f"t{k}",
                    crowd_sentiment=30.0 + 10 * k,
                    adaptive_flow=k == 0,
                    artist_override=k == 3,
                    inputs={"crowd": 30 + 10 * k},
                    parameters={
                        "weights": {"energy": 0.4, "valence": 0.25, "bpm": 0.2 + k / 100},
                        "artist_control": policy.selection.artist_control,
                    },
                    explanation=f"decision {k}",
                    latency_ms=0.5 + k,
                )
            )
    with store.transaction(SCENE_START + timedelta(hours=2), actor="pipeline") as tx:
        assert run is not None
        row = tx.session.get(EventRun, run.id)
        assert row is not None
        row.finished_at = SCENE_START + timedelta(hours=2)
        row.summary = {
            "frames_in": 9000,
            "frames_scored": 6000,
            "frames_stored": 80,
            "dropped": {
                "no_consent": 1000,
                "withdrawn": 500,
                "outside_window": 1200,
                "speech": 4000,
                "staff": 300,
            },
        }
    now = SCENE_START + timedelta(hours=80)
    add_requests(store, now, [f"SC-{i:03d}" for i in range(4)], out)
    purge(store, now=now)
    runtime.now = now
    checkpoint_after_command(runtime)
    return Built(runtime, SCENE_EVENT, now, profile)


@pytest.fixture
def scene(runtime: Runtime, tmp_path: Path) -> Built:
    return build_scene(runtime, tmp_path)


# -- headless Chromium -------------------------------------------------------------------------
@pytest.fixture
def trap() -> Iterator[Trap]:
    t = Trap()
    yield t
    t.close()


@pytest.fixture(scope="session")
def background(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Hosts Chromium contacts on its own, for a blank page, in this session."""
    return blank_page_hosts(tmp_path_factory.mktemp("blank"))
