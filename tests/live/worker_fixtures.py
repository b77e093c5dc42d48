"""Fixtures and helpers for the live worker tests: a home, a small event, a JetStream server of
the test's own, windows published with the gateway's own wire format, worker processes run as
``flowaudit worker`` (the real CLI), and reads of what the store holds.

Import the fixtures into a test module (``from tests.live.worker_fixtures import …``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from audit.log.checkpoints import load_signer
from audit.log.verify import verify_log
from flowaudit.config import Settings
from flowaudit.runtime import initialise_home, open_runtime
from pipeline.event import EventSpec, load_event
from pipeline.features import FEATURE_NAMES
from pipeline.frames import FRAME_BYTES
from pipeline.gates import DROP_REASONS
from pipeline.live.stream_config import stream_config
from pipeline.live.wire import LiveWindow, encode_window, stream_name, window_start
from retention.models import Decision, LiveCrowdWindow, LiveState, LiveWindowRecord
from retention.policy import Policy, load_policy
from tests.pipeline.pipeline_helpers import SET_START, event_doc, to_toml
from tests.servers import NatsServer

__all__ = [
    "LIVE_POLICY",
    "LiveSetup",
    "live_setup",
    "nats",
    "make_window",
    "publish",
    "publish_raw",
    "WorkerProcess",
    "start_worker",
    "StoreView",
    "store_view",
    "verified",
]

LIVE_POLICY = "spotify-2026"  # keeps raw audio 72 h: windows carry PCM, file storage
READ_AT = datetime(2026, 6, 22, 0, 0, tzinfo=UTC)
_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LiveSetup:
    """A home on the test's backend, the event file, its policy and roster pseudonyms."""

    home: Path
    settings: Settings
    event_file: Path
    event: EventSpec
    policy: Policy
    pseudonyms: list[str]
    zones: list[str]
    tmp: Path
    workers: list[WorkerProcess] = field(default_factory=list)


@pytest.fixture
def live_setup(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveSetup]:
    """4 wristbands, 6 s windows, a 5 min set at 20:00Z (1 min pre-roll)."""
    for var in ("FLOWAUDIT_HOME", "FLOWAUDIT_DB_URL", "FLOWAUDIT_MASTER_KEY", "FLOWAUDIT_NOW",
                "FLOWAUDIT_WORKER_FAULT"):
        monkeypatch.delenv(var, raising=False)
    settings = initialise_home(tmp_path / "home", db_url=db_url or None, policy=LIVE_POLICY)
    event_file = tmp_path / "event.toml"
    doc = event_doc(**{"event__id": "live-set", "wristbands__generate__count": 4})
    event_file.write_text(to_toml(doc), encoding="utf-8")
    event = load_event(event_file)
    runtime = open_runtime(settings, SET_START)
    try:
        pseudonyms = [runtime.store.pseudonym(w.serial) for w in event.wristbands]
    finally:
        runtime.close()
    setup = LiveSetup(tmp_path / "home", settings, event_file, event, load_policy(LIVE_POLICY),
                      pseudonyms, [w.zone for w in event.wristbands], tmp_path)
    yield setup
    for worker in setup.workers:
        worker.kill()


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    """This test's own JetStream server (its store survives restarts within the test)."""
    server = NatsServer(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop(signal.SIGKILL)


def make_window(setup: LiveSetup, b: int, k: int, *, seed: int = 0) -> LiveWindow:
    """Wristband ``b``'s window ``k`` (in the set, so crowd steps decide), as the gateway
    would publish it: plausible features, a few drops, 10 storable frames of PCM."""
    rng = np.random.default_rng(seed * 10_000 + b * 100 + k)
    event = setup.event
    start = window_start(event.capture_starts, event.window, k + 10)  # inside the set
    fpw = event.frames_per_window
    features = {
        "level_dbfs": float(rng.uniform(-35, -15)),
        "clap_rate": float(rng.uniform(0, 2.5)),
        "flux": float(rng.uniform(0.1, 0.4)),
        "centroid_hz": float(rng.uniform(500, 1800)),
        "voiced_ratio": float(rng.uniform(0, 1)),
        "frames": float(fpw - 20),
    }
    assert set(features) == set(FEATURE_NAMES)
    drops = dict.fromkeys(DROP_REASONS, 0)
    drops["speech"] = 20
    offsets = tuple(range(5, 15))
    pcm = rng.integers(-2000, 2000, size=len(offsets) * FRAME_BYTES // 2,
                       dtype=np.int16).astype("<i2").tobytes()
    return LiveWindow(
        event_id=event.id, zone=setup.zones[b], pseudonym=setup.pseudonyms[b], window=k + 10,
        start_at=start, frames_per_window=fpw, frames_received=fpw, frames_processed=fpw - 20,
        frames_voiced=20, features=features, drops=drops, sent_at=time.time(), pcm=pcm,
        pcm_frames=offsets,
    )


def publish(url: str, setup: LiveSetup, windows: Iterable[LiveWindow], *,
            duplicate_window: float | None = None) -> int:
    """Publish windows with the gateway's wire format (creating the stream from the policy)."""
    return asyncio.run(_publish(url, setup, [encode_window(w) for w in windows],
                                duplicate_window))


def publish_raw(url: str, setup: LiveSetup, messages: list[tuple[str, dict[str, str], bytes]]
                ) -> int:
    """Publish arbitrary (subject, headers, payload) on the event's stream: garbage tests."""
    return asyncio.run(_publish(url, setup, messages, None))


async def _publish(url: str, setup: LiveSetup, messages: list[tuple[str, dict[str, str], bytes]],
                   duplicate_window: float | None) -> int:
    import nats as nats_client
    from nats.js.errors import NotFoundError

    conn = await nats_client.connect(url)
    try:
        js = conn.jetstream()
        overrides: dict[str, Any] = {}
        if duplicate_window is not None:
            overrides["duplicate_window"] = duplicate_window
        config = stream_config(setup.event.id, setup.policy, **overrides)
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)
        for subject, headers, payload in messages:
            await js.publish(subject, payload, headers=headers)
    finally:
        await conn.close()
    return len(messages)


def consumer_pending(url: str, setup: LiveSetup, durable: str = "flowaudit-workers"
                     ) -> tuple[int, int]:
    """``(num_pending, num_ack_pending)`` of the workers' consumer."""

    async def read() -> tuple[int, int]:
        import nats as nats_client

        conn = await nats_client.connect(url)
        try:
            info = await conn.jetstream().consumer_info(stream_name(setup.event.id), durable)
            return int(info.num_pending), int(info.num_ack_pending)
        finally:
            await conn.close()

    return asyncio.run(read())


class WorkerProcess:
    """A ``flowaudit worker`` process and its metrics file."""

    def __init__(self, process: subprocess.Popen[str], metrics: Path) -> None:
        self.process, self.metrics_file = process, metrics
        self.stdout = self.stderr = ""

    def wait(self, timeout: float = 90) -> int:
        try:
            self.stdout, self.stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        return self.process.returncode

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.wait()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()

    def metrics(self) -> dict[str, Any]:
        return json.loads(self.metrics_file.read_text()) if self.metrics_file.exists() else {}

    def wait_for(self, check: Callable[[dict[str, Any]], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check(self.metrics()):
                return
            if self.process.poll() is not None:
                return
            time.sleep(0.1)
        raise AssertionError(f"worker did not get there: {self.metrics()}")


def start_worker(setup: LiveSetup, url: str, *extra: str, name: str = "w",
                 fault: str | None = None, idle: float | None = 4.0) -> WorkerProcess:
    metrics = setup.tmp / f"metrics-{name}-{len(setup.workers)}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWAUDIT_")}
    if fault:
        env["FLOWAUDIT_WORKER_FAULT"] = fault
    command = [
        sys.executable, "-m", "flowaudit", "worker", "--home", str(setup.home),
        "--event", str(setup.event_file), "--policy", LIVE_POLICY, "--nats", url,
        "--ack-wait", "2", "--settle", "0.5", "--metrics-file", str(metrics),
        "--format", "json", *extra,
    ]
    if idle is not None:
        command += ["--exit-when-idle", str(idle)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, cwd=_ROOT)
    worker = WorkerProcess(process, metrics)
    setup.workers.append(worker)
    return worker


@dataclass
class StoreView:
    """What the store holds for the live event."""

    keys: list[tuple[str, int]]  # (pseudonym, window) per live_windows row
    crowd_windows: list[int]
    decisions: int
    decisions_without_weights: int
    raw_segments: int
    score_records: int
    rows_folded: int = 0  # wristband windows the crowd steps folded (on time or late)
    late: int = 0  # of those, the ones folded into a later window's step


def store_view(setup: LiveSetup, *, readable: bool = False) -> StoreView:
    """``readable``: also open every sealed record (only once the workers are done)."""
    from retention.models import MetadataRecord, RawSegment

    runtime = open_runtime(setup.settings, READ_AT)
    try:
        with runtime.store.session() as session:
            keys = [(p, int(w)) for p, w in session.execute(
                select(LiveWindowRecord.subject_pseudonym, LiveWindowRecord.window))]
            crowd = [int(w) for w in session.scalars(select(LiveCrowdWindow.window))]
            state = session.scalar(select(LiveState.state)) or {}
            params = list(session.scalars(select(Decision.parameters)))
            raw = session.scalar(select(func.count()).select_from(RawSegment)) or 0
            scores = session.scalar(select(func.count()).select_from(MetadataRecord)
                                    .where(MetadataRecord.kind == "window_score")) or 0
        if readable:  # every sealed record opens (no worker sealed with a key another lost)
            opened = (sum(1 for _ in runtime.store.iter_raw(now=READ_AT)),
                      sum(1 for _ in runtime.store.iter_metadata(now=READ_AT,
                                                                 kind="window_score")))
            assert opened == (raw, scores)
    finally:
        runtime.close()
    return StoreView(keys, crowd, len(params),
                     sum(1 for p in params if not (p or {}).get("weights")), int(raw),
                     int(scores), int(state.get("rows_folded") or 0), int(state.get("late") or 0))


def verified(setup: LiveSetup) -> str:
    """``ok``, or the audit log's first problem (chain, signatures, no unsigned tail)."""
    runtime = open_runtime(setup.settings, READ_AT)
    try:
        signer = load_signer(Path(runtime.settings.signing_key_file))
        assert signer is not None
        report = verify_log(runtime.engine, signer.public_key)
    finally:
        runtime.close()
    first = report.first_problem
    return "ok" if report.ok else f"{first.kind} at seq {first.seq}" if first else "failed"


def all_windows(setup: LiveSetup, windows: int, *, seed: int = 0) -> list[LiveWindow]:
    """Every wristband's windows 0..windows-1, in window order (as a gateway sends them)."""
    return [make_window(setup, b, k, seed=seed)
            for k in range(windows) for b in range(len(setup.pseudonyms))]
