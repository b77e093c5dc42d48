"""``run-event --source nats:… --follow``: a live tail of the frame stream while a publisher
is still publishing; it ends on SIGTERM or when the event's capture end passes, and either way
finishes the run (summary, finished run, the audit log verifies)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from flowaudit.runtime import initialise_home, open_runtime
from pipeline.event import load_event
from pipeline.frames import FRAME_SAMPLES
from pipeline.nats_source import SERIAL_HEADER, START_HEADER, STREAM, SUBJECT_PREFIX
from retention.store import RUN_FINISHED
from tests.live.worker_fixtures import nats
from tests.pipeline.pipeline_helpers import event_doc, to_toml
from tests.servers import NatsServer

__all__ = ["nats"]

pytestmark = pytest.mark.nats
_ROOT = Path(__file__).resolve().parents[2]


class Publisher(threading.Thread):
    """Publishes 300 ms of frames per wristband every 300 ms, stamped with the wall clock."""

    def __init__(self, url: str, wristbands: list[tuple[str, str]]) -> None:
        super().__init__(daemon=True)
        self.url, self.wristbands = url, wristbands
        self.done = threading.Event()
        self.sent = 0

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        import nats as nats_client

        conn = await nats_client.connect(self.url)
        js = conn.jetstream()
        await js.add_stream(name=STREAM, subjects=[f"{SUBJECT_PREFIX}.>"])
        rng = np.random.default_rng(1)
        while not self.done.is_set():
            at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            for serial, zone in self.wristbands:
                pcm = (rng.normal(0, 3000, 10 * FRAME_SAMPLES)).astype("<i2").tobytes()
                await js.publish(f"{SUBJECT_PREFIX}.{zone}", pcm,
                                 headers={SERIAL_HEADER: serial, START_HEADER: at})
                self.sent += 1
            await asyncio.sleep(0.3)
        await conn.close()


def _setup(tmp_path: Path, *, seconds: int) -> tuple[Path, Path, list[tuple[str, str]]]:
    for var in ("FLOWAUDIT_HOME", "FLOWAUDIT_DB_URL", "FLOWAUDIT_MASTER_KEY", "FLOWAUDIT_NOW"):
        os.environ.pop(var, None)
    initialise_home(tmp_path / "home", policy="spotify-2026")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    doc = event_doc(**{"event__id": "follow-set", "event__starts": start,
                       "event__ends": start + timedelta(seconds=seconds),
                       "capture__pre_roll": "3s", "capture__post_roll": "0s",
                       "capture__window": "3s", "capture__score_every": "3s",
                       "wristbands__generate__count": 3})
    event_file = tmp_path / "event.toml"
    event_file.write_text(to_toml(doc), encoding="utf-8")
    event = load_event(event_file)
    return tmp_path / "home", event_file, [(w.serial, w.zone) for w in event.wristbands]


def _follow(home: Path, event_file: Path, url: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWAUDIT_")}
    return subprocess.Popen(
        [sys.executable, "-m", "flowaudit", "run-event", "--home", str(home), "--event",
         str(event_file), "--policy", "spotify-2026", "--source", "nats:" + url,
         "--follow", "--format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=_ROOT)


def _finished(home: Path) -> tuple[str, str]:
    from audit.log.checkpoints import load_signer
    from audit.log.verify import verify_log
    from flowaudit.config import resolve_settings

    runtime = open_runtime(resolve_settings(home, None, {}), datetime.now(UTC))
    try:
        runs = runtime.store.runs("follow-set")
        signer = load_signer(Path(runtime.settings.signing_key_file))
        assert signer is not None
        report = verify_log(runtime.engine, signer.public_key)
    finally:
        runtime.close()
    return runs[-1].status, "ok" if report.ok else str(report.first_problem)


def test_follow_until_sigterm_while_publishing(tmp_path: Path, nats: NatsServer) -> None:
    home, event_file, wristbands = _setup(tmp_path, seconds=600)
    publisher = Publisher(nats.url, wristbands)
    publisher.start()
    try:
        while publisher.sent == 0:
            time.sleep(0.05)
        follow = _follow(home, event_file, nats.url)
        time.sleep(14)  # start-up, then a few live windows
        assert follow.poll() is None  # still following: the event is far from over
        follow.send_signal(signal.SIGTERM)
        out, err = follow.communicate(timeout=60)
    finally:
        publisher.done.set()
        publisher.join(10)
    assert follow.returncode == 0, err
    summary = json.loads(out)
    assert summary["windows"] >= 1 and summary["frames_in"] > 0
    assert summary["windows"] < 200  # ended by SIGTERM, not by the plan
    assert _finished(home) == (RUN_FINISHED, "ok")


def test_follow_ends_when_the_event_ends(tmp_path: Path, nats: NatsServer) -> None:
    home, event_file, wristbands = _setup(tmp_path, seconds=6)
    publisher = Publisher(nats.url, wristbands)
    publisher.start()
    try:
        follow = _follow(home, event_file, nats.url)
        out, err = follow.communicate(timeout=90)  # no signal: the capture end stops it
    finally:
        publisher.done.set()
        publisher.join(10)
    assert follow.returncode == 0, err
    summary = json.loads(out)
    assert summary["windows"] == 3  # 3 s pre-roll + 6 s set, 3 s windows
    assert summary["frames_in"] > 0
    assert _finished(home) == (RUN_FINISHED, "ok")
