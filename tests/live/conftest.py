"""Shared fixtures of the live-mode tests (issue 11): a JetStream server, a home with an event
whose set is playing right now, a running gateway (the real CLI, as a subprocess), tokens.

L1 (gateway) wrote these; L2 (workers) appends its own fixtures below.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowaudit.config import Settings
from flowaudit.runtime import initialise_home, open_runtime
from pipeline.event import EventSpec, load_event
from pipeline.frames import FRAME_MS
from pipeline.live.tokens import DeviceTokens
from tests.servers import NatsServer, free_port, nats_server, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
#: keeps raw audio 24 h without speech: file storage, and the windows carry PCM
LIVE_POLICY = "apple-music-2025"
CONSENTING = [f"WB-LIVE-{i:02d}" for i in range(1, 9)]
OPTED_OUT = "WB-LIVE-NO"
STAFF = "WB-LIVE-STAFF"
WINDOW_SECONDS = 3


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FLOWAUDIT_")}


def write_live_event(path: Path, *, now: datetime | None = None, event_id: str = "live-set",
                     extra_serials: int = 0) -> Path:
    """An event whose set started 10 minutes ago and plays for two more hours."""
    now = now or datetime.now(UTC)
    starts = (now - timedelta(minutes=10)).replace(microsecond=0)
    given = (now - timedelta(hours=1)).replace(microsecond=0)
    stamp = lambda at: at.isoformat().replace("+00:00", "Z")  # noqa: E731
    catalogue = ROOT / "pipeline" / "demo_event" / "catalogue.csv"
    lines = [
        "[event]", f'id = "{event_id}"', 'name = "Live set"', 'venue = "Test venue"',
        f'starts = "{stamp(starts)}"', f'ends = "{stamp(starts + timedelta(hours=2))}"',
        "[capture]", 'pre_roll = "1m"', 'post_roll = "1m"', f'window = "{WINDOW_SECONDS}s"',
        'score_every = "30s"', "[selection]", f'catalogue = "{catalogue}"',
        'decision_every = "30s"',
    ]
    serials = CONSENTING + [f"WB-LOAD-{i:05d}" for i in range(extra_serials)]
    for i, serial in enumerate(serials):
        lines += ["[[wristbands.list]]", f'serial = "{serial}"',
                  f'zone = "{("front", "bar")[i % 2]}"', f'given_at = "{stamp(given)}"']
    lines += ["[[wristbands.list]]", f'serial = "{OPTED_OUT}"', 'zone = "front"',
              'consent = "opted_out"']
    lines += ["[[wristbands.list]]", f'serial = "{STAFF}"', 'zone = "bar"', "is_staff = true",
              f'given_at = "{stamp(given)}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def aligned_t0_ms(spec: EventSpec, seconds_ago: float = 40.0) -> int:
    """The start (unix ms) of an event window about ``seconds_ago`` in the past, so a stream
    stamped from it fills whole windows and its last one is already over."""
    capture = int(spec.capture_starts.timestamp() * 1000)
    window_ms = spec.frames_per_window * FRAME_MS
    target = int((time.time() - seconds_ago) * 1000)
    return capture + (target - capture) // window_ms * window_ms


@dataclass
class GatewayProcess:
    """``flowaudit gateway serve`` running in a subprocess, its output in ``log``."""

    process: subprocess.Popen[bytes]
    url: str
    port: int
    log: Path

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(self.url + "/v1/stats", timeout=10).json())

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def start_gateway(home: Path, event: Path, nats_url: str, log: Path, *,
                  policy: str = LIVE_POLICY, extra: tuple[str, ...] = ()) -> GatewayProcess:
    port = free_port()
    command = [sys.executable, "-m", "flowaudit", "gateway", "serve", "--home", str(home),
               "--event", str(event), "--policy", policy, "--nats", nats_url,
               "--port", str(port), *extra]
    handle = log.open("wb")
    process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                               env=_clean_env(), cwd=ROOT)
    handle.close()
    try:
        wait_for_port(port, timeout=60, process=process)
        # the socket listens before the gateway has made its stream on the broker; it says
        # "listening on" once both are done
        deadline = time.monotonic() + 60
        while "listening on" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("not ready")
            time.sleep(0.02)
    except RuntimeError:
        raise RuntimeError("gateway did not start: " + log.read_text(errors="replace")) from None
    return GatewayProcess(process, f"http://127.0.0.1:{port}", port, log)


@pytest.fixture(scope="module")
def live_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("live")


@pytest.fixture(scope="module")
def jetstream(live_dir: Path) -> Iterator[NatsServer]:
    with nats_server(live_dir / "nats") as server:
        yield server


@pytest.fixture(scope="module")
def live_home(live_dir: Path) -> Settings:
    return initialise_home(live_dir / "home", policy=LIVE_POLICY, environ={})


@pytest.fixture(scope="module")
def live_event(live_dir: Path) -> Path:
    return write_live_event(live_dir / "event.toml")


@pytest.fixture(scope="module")
def live_spec(live_event: Path) -> EventSpec:
    return load_event(live_event)


@pytest.fixture(scope="module")
def gateway(live_home: Settings, live_event: Path, jetstream: NatsServer,
            live_dir: Path) -> Iterator[GatewayProcess]:
    process = start_gateway(live_home.home, live_event, jetstream.url, live_dir / "gateway.log")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def tokens(live_home: Settings, live_spec: EventSpec) -> Iterator[DeviceTokens]:
    runtime = open_runtime(live_home, datetime.now(UTC), environ={})
    yield DeviceTokens(runtime.store, live_spec)
    runtime.close()


@pytest.fixture(scope="module")
def issue_token(tokens: DeviceTokens) -> Callable[[str], str]:
    """``issue_token(serial)``: a fresh device token for a wristband on the roster."""
    return lambda serial: tokens.issue(serial, datetime.now(UTC)).token


@pytest.fixture(scope="module")
def pseudonym_of(tokens: DeviceTokens) -> Callable[[str], str]:
    return tokens.store.pseudonym


def stream_messages(url: str, stream: str) -> list[Any]:
    """Every message the stream holds (subject, headers, data), oldest first."""

    async def read() -> list[Any]:
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        conn = await nats.connect(url)
        try:
            js = conn.jetstream()
            info = await js.stream_info(stream)
            total = info.state.messages
            if not total:
                return []
            sub = await js.pull_subscribe(
                "", stream=stream,
                config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL,
                                      ack_policy=AckPolicy.NONE))
            out: list[Any] = []
            while len(out) < total:
                out += await sub.fetch(min(256, total - len(out)), timeout=5)
            await sub.unsubscribe()
            return out
        finally:
            await conn.close()

    return asyncio.run(read())


def stream_count(url: str, stream: str) -> int:
    async def count() -> int:
        import nats

        conn = await nats.connect(url)
        try:
            return int((await conn.jetstream().stream_info(stream)).state.messages)
        finally:
            await conn.close()

    return asyncio.run(count())
