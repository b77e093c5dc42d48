"""``flowaudit console``: check what it is asked to serve, then run uvicorn until SIGTERM.

The checks give one clear line each before anything listens: the home (``resolve_settings``
refuses one that was never initialised), the event (must be stored in the home: the live
workers register it; a replay needs it there too), the port (bound once beforehand, so "in
use" is said plainly rather than as a uvicorn traceback), the speed of a replay.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flowaudit.config import Settings
from retention.errors import InputError, NotFoundError

from .app import create_app
from .reader import Reader
from .replay import Replay

__all__ = ["ServeOptions", "serve_console", "check_port"]


@dataclass(frozen=True)
class ServeOptions:
    event_id: str
    host: str = "127.0.0.1"
    port: int = 8780
    replay: bool = False
    speed: float = 1.0
    event_file: Path | None = None
    catalogue: Path | None = None
    poll: float = 0.25


def check_port(host: str, port: int) -> None:
    """Refuse a port another process holds (one line), before uvicorn tries."""
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port}; use 0 to 65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InputError(f"port {port} on {host} is in use; stop what holds it or "
                                 "choose another --port") from None
            raise InputError(f"cannot listen on {host}:{port} ({exc.strerror}); check "
                             "--host") from None


def serve_console(settings: Settings, options: ServeOptions,
                  ready: Callable[[str], None]) -> None:
    import uvicorn

    if options.replay and not (0.1 <= options.speed <= 1000):
        raise InputError(f"--speed {options.speed:g}; use 0.1 to 1000 (times real time)")
    check_port(options.host, options.port)
    replay = Replay(options.event_id, options.speed) if options.replay else None
    app = create_app(settings, event_files=[options.event_file] if options.event_file else (),
                     catalogue=options.catalogue, replay=replay, poll_interval=options.poll)
    reader: Reader = app.state.service.reader
    if reader.event(options.event_id) is None:
        app.state.service.runtime.close()
        raise NotFoundError(f"no event {options.event_id!r} in this home; the live workers "
                            "register it when they start (`flowaudit status` lists events)")
    config = uvicorn.Config(app, host=options.host, port=options.port, log_level="warning",
                            lifespan="on", timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    url = f"http://{options.host}:{options.port}/console/{options.event_id}"
    mode = f"replay at {options.speed:g}x" if options.replay else "live"
    ready(f"console for event {options.event_id} ({mode}) at {url}")
    server.run()
