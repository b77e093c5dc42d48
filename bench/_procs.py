"""Stopping a server process a bench started, one way for every bench.

A bench that leaves its server running would hold the port and the CPU the next bench
measures with; one that waits forever on a wedged server never prints. So: SIGTERM (the
server's graceful shutdown), a bounded wait, then SIGKILL.
"""

from __future__ import annotations

import signal
import subprocess
from typing import Any

__all__ = ["stop"]


def stop(process: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    """SIGTERM ``process`` and wait up to ``timeout`` s; kill it if it is still there."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
