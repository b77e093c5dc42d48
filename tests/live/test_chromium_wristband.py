"""Real Chromium (Debian's /usr/bin/chromium, driven by Playwright) is a wristband: a page
fetches a WAV, decodes it to 16 kHz int16, opens a DataChannel to the gateway with one WHIP
POST and streams the frames; a ``flowaudit worker`` commits them to the store.

Screenshots and the browser's console are kept under the test's tmp dir (``chromium/``).
"""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import sys
import threading
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    CONSENTING,
    LIVE_POLICY,
    GatewayProcess,
    aligned_t0_ms,
    start_gateway,
    stream_messages,
)
from sqlalchemy import select

from flowaudit.config import Settings
from flowaudit.runtime import open_runtime
from pipeline.event import EventSpec
from pipeline.live.wire import WRISTBAND_HEADER, stream_name
from tests.servers import NatsServer, free_port

PAGE = Path(__file__).parent / "chromium" / "wristband.html"
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-features=WebRtcHideLocalIpsWithMdns"]
WINDOWS = 3


@pytest.fixture(scope="module")
def site(live_dir: Path, live_spec: EventSpec) -> Iterator[str]:
    """The page and a 48 kHz WAV of synthetic crowd, served on loopback (no CDN)."""
    from test_gateway_stream import crowd

    root = live_dir / "site"
    root.mkdir()
    shutil.copy(PAGE, root / "wristband.html")
    audio = crowd(live_spec, 1, WINDOWS, seed=21)[0]
    with wave.open(str(root / "crowd.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48_000)
        out.writeframes(np.repeat(audio, 3).astype("<i2").tobytes())
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def cors_gateway(live_home: Settings, live_event: Path, jetstream: NatsServer, live_dir: Path,
                 site: str) -> Iterator[GatewayProcess]:
    process = start_gateway(live_home.home, live_event, jetstream.url,
                            live_dir / "gateway-chromium.log", extra=("--cors-origin", site))
    yield process
    process.stop()


def test_chromium_streams_a_wav_over_a_datachannel_into_the_store(
    cors_gateway: GatewayProcess, site: str, jetstream: NatsServer, live_spec: EventSpec,
    live_home: Settings, live_event: Path, live_dir: Path,
    issue_token: Callable[[str], str], pseudonym_of: Callable[[str], str],
) -> None:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: `make system-deps` (apt-get install chromium)")
    artefacts = live_dir / "chromium"
    artefacts.mkdir()
    serial = CONSENTING[0]
    t0 = aligned_t0_ms(live_spec, seconds_ago=120)
    url = (f"{site}/wristband.html?gateway={cors_gateway.url}&token={issue_token(serial)}"
           f"&wav={site}/crowd.wav&t0={t0}")
    console: list[str] = []
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(artefacts / "profile"), executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = context.new_page()
            page.on("console", lambda m: console.append(m.text))
            page.goto(url)
            page.wait_for_function("window.wristband && (window.wristband.done || "
                                   "window.wristband.failed)", timeout=60_000)
            page.screenshot(path=str(artefacts / "wristband.png"))
            state = page.evaluate("window.wristband")
        finally:
            (artefacts / "console.log").write_text("\n".join(console), encoding="utf-8")
            context.close()
    assert state["failed"] is None, console
    assert state["errors"] == [] and state["frames"] >= WINDOWS * live_spec.frames_per_window
    assert state["published"] == state["frames"] - 1

    pseudonym = pseudonym_of(serial)
    published = [m for m in stream_messages(jetstream.url, stream_name(live_spec.id))
                 if m.headers[WRISTBAND_HEADER] == pseudonym]
    assert len(published) >= WINDOWS

    worker = subprocess.run(
        [sys.executable, "-m", "flowaudit", "worker", "--home", str(live_home.home),
         "--event", str(live_event), "--policy", LIVE_POLICY, "--nats", jetstream.url,
         "--exit-when-idle", "3", "--format", "json"],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert worker.returncode == 0, worker.stderr
    from retention.models import LiveWindowRecord

    runtime = open_runtime(live_home, live_spec.ends_at, environ={})
    try:
        with runtime.store.session() as session:
            windows = sorted(int(w) for w in session.scalars(
                select(LiveWindowRecord.window)
                .where(LiveWindowRecord.subject_pseudonym == pseudonym)))
    finally:
        runtime.close()
    first = (t0 - int(live_spec.capture_starts.timestamp() * 1000)) // (
        live_spec.frames_per_window * 30)
    assert windows[:WINDOWS] == list(range(first, first + WINDOWS))
    assert len(windows) == len(set(windows)) == len(published)
