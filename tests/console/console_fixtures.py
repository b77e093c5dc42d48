"""A home with live events under each artist_control mode, for the console API tests.

Each event is driven window by window in the test's own thread (:class:`LiveDriver.advance`
of ``page_fixtures``: the real WindowCommitter and CrowdStepper), so a test knows exactly what
was committed when it asks the API. One home per backend per module (SQLite file, or a fresh
PostgreSQL schema dropped afterwards): a module makes its ``home`` fixture with
:func:`home_fixture`, and its ``server`` / ``client`` with :func:`server_fixture` /
:func:`client_fixture`, so the modules whose homes differ only in what is built share one
definition. Also here: the scorer tests' home (:func:`scorer_home`) and the SSE client the
stream tests read with (:class:`Reader`).
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from flowaudit.config import Settings
from flowaudit.console.app import create_app
from flowaudit.console.keys import issue_key
from flowaudit.runtime import open_runtime
from retention.models import AuditEntry, Decision
from tests.conftest import PG_BASE_URL
from tests.console.page_fixtures import (
    ConsoleEvent,
    ConsoleServer,
    LiveDriver,
    make_event,
    new_home,
    pg_schema,
)

with warnings.catch_warnings():  # starlette's TestClient wants httpx2; httpx works
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from starlette.testclient import TestClient

__all__ = ["TestClient", "Home", "console_home", "scorer_home", "database", "decisions", "audit",
           "read", "bands", "gated_in", "POLICIES", "SCORERS", "NONE", "BACKENDS", "bearer",
           "error_of", "home_fixture", "server_fixture", "client_fixture", "Sse", "Reader"]

#: event id -> policy (artist_control none / partial / full; tiktok-2026 allows scorers)
POLICIES = {"ev-none": "spotify-2026", "ev-partial": "apple-music-2025",
            "ev-full": "privacy-by-default", "ev-scorers": "tiktok-2026"}
#: the scorer tests' events: scorers allowed (tiktok-2026), and not (spotify-2026)
SCORERS, NONE = "ev-scorers", "ev-none"
#: every home fixture runs once per backend
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@dataclass
class Home:
    settings: Settings
    backend: str
    events: dict[str, ConsoleEvent]
    drivers: dict[str, LiveDriver]

    def key(self, event_id: str, role: str, label: str = "test", **limits: Any) -> str:
        return str(issue_key(self.settings, role=role, label=label, event_id=event_id,
                             **limits))

    def advance(self, event_id: str, windows: int = 1) -> None:
        for _ in range(windows):
            self.drivers[event_id].advance()


def database(backend: str, pg_available: bool) -> Any:
    if backend == "sqlite":
        return nullcontext("")
    if not pg_available:
        pytest.fail(f"PostgreSQL at {PG_BASE_URL} is unreachable; start it with `make services`")
    return pg_schema(PG_BASE_URL)


@contextmanager
def _live_home(tmp: Path, backend: str, pg_available: bool,
               events: dict[str, tuple[str, int, int]]) -> Iterator[Home]:
    """A home with ``events`` (id -> policy, wristbands, windows committed) registered, each
    event warmed in turn."""
    with database(backend, pg_available) as db_url:
        settings = new_home(tmp / "home", db_url)
        now = datetime.now(UTC).replace(microsecond=0)
        specs = {eid: make_event(tmp, eid, policy, starts=now, wristbands=count)
                 for eid, (policy, count, _) in events.items()}
        drivers = {eid: LiveDriver(settings, spec, seed=3) for eid, spec in specs.items()}
        home = Home(settings, backend, specs, drivers)
        try:
            for eid, (_, _, warm) in events.items():
                home.advance(eid, warm)
            yield home
        finally:
            for driver in drivers.values():
                driver.runtime.close()


def console_home(tmp: Path, backend: str, pg_available: bool,
                 events: dict[str, str] | None = None,
                 warm: int = 6) -> AbstractContextManager[Home]:
    """A home with ``events`` (id -> policy) registered and ``warm`` windows committed."""
    return _live_home(tmp, backend, pg_available,
                      {eid: (policy, 12, warm) for eid, policy in (events or POLICIES).items()})


def scorer_home(tmp: Path, backend: str, pg_available: bool) -> AbstractContextManager[Home]:
    """ev-scorers (tiktok-2026: scorers allowed) with 20 wristbands, ev-none (spotify-2026)."""
    return _live_home(tmp, backend, pg_available,
                      {SCORERS: ("tiktok-2026", 20, 6), NONE: ("spotify-2026", 12, 2)})


def home_fixture(name: str, build: Callable[..., AbstractContextManager[Home]] = console_home,
                 **options: Any) -> Any:
    """A module's ``home`` fixture: ``build(tmp, backend, pg_available, **options)`` once per
    backend, in a temp dir named ``<name>-<backend>``."""

    @pytest.fixture(scope="module", params=BACKENDS)
    def home(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             pg_available: bool) -> Iterator[Home]:
        tmp = tmp_path_factory.mktemp(f"{name}-{request.param}")
        with build(tmp, str(request.param), pg_available, **options) as h:
            yield h

    return home


def server_fixture() -> Any:
    """A module's ``server`` fixture: the console app over its ``home`` under real uvicorn,
    polling the store every 50 ms (so a stream test waits little for a commit)."""

    @pytest.fixture(scope="module")
    def server(home: Home) -> Iterator[ConsoleServer]:
        s = ConsoleServer(create_app(home.settings, poll_interval=0.05)).start()
        try:
            yield s
        finally:
            s.stop()

    return server


def client_fixture() -> Any:
    """A module's ``client`` fixture: the console app over its ``home``, in process."""

    @pytest.fixture(scope="module")
    def client(home: Home) -> Iterator[TestClient]:
        with TestClient(create_app(home.settings)) as c:
            yield c

    return client


def bands(home: Home) -> dict[str, tuple[str, str, str, bool]]:
    """serial -> (store pseudonym, zone, consent, staff) of ev-scorers' roster."""
    driver = home.drivers[SCORERS]
    serials = [w.serial for w in home.events[SCORERS].spec.wristbands]
    return dict(zip(serials, driver.bands, strict=True))


def gated_in(home: Home) -> dict[str, str]:
    """store pseudonym -> zone of the wristbands whose windows pass the gates."""
    return {p: zone for p, zone, consent, staff in bands(home).values()
            if consent != "opted_out" and not staff}


def read(settings: Settings, fn: Any) -> Any:
    """``fn(store)`` on a runtime of its own (closed afterwards)."""
    runtime = open_runtime(settings, datetime.now(UTC))
    try:
        return fn(runtime.store)
    finally:
        runtime.close()


def _rows(settings: Settings, query: Any) -> list[Any]:
    """The rows ``query`` selects, detached, read through a runtime of their own."""
    def go(store: Any) -> list[Any]:
        with store.session() as session:
            rows = list(session.scalars(query))
            session.expunge_all()
            return rows
    out: list[Any] = read(settings, go)
    return out


def decisions(settings: Settings, event_id: str) -> list[Decision]:
    return _rows(settings, select(Decision).where(Decision.event_id == event_id)
                 .order_by(Decision.id))


def audit(settings: Settings, action: str) -> list[AuditEntry]:
    return _rows(settings, select(AuditEntry).where(AuditEntry.action == action)
                 .order_by(AuditEntry.seq))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def error_of(response: Any) -> str:
    """The API error's code, once the body is checked to be the one error shape."""
    body = response.json()
    assert set(body["error"]) == {"code", "message"} and body["error"]["message"]
    return str(body["error"]["code"])


# -- an SSE client --------------------------------------------------------------------------
@dataclass
class Sse:
    kind: str
    id: str | None
    data: dict[str, Any]


@dataclass
class Reader:
    """Reads one SSE response in a thread into a queue (so the test can commit meanwhile)."""

    url: str
    headers: dict[str, str]
    events: queue.Queue[Sse] = field(default_factory=queue.Queue)
    status: int | None = None
    comments: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _client: httpx.Client | None = None
    _socket: socket.socket | None = None
    error: BaseException | None = None

    def start(self) -> Reader:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._client = httpx.Client(timeout=httpx.Timeout(10.0, read=30.0))
            with self._client as client, \
                    client.stream("GET", self.url, headers=self.headers) as response:
                self.status = response.status_code
                self._socket = response.extensions["network_stream"].get_extra_info("socket")
                kind, ident, data = "message", None, []
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith(":"):
                        self.comments += 1
                    elif line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("id:"):
                        ident = line[3:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif line == "" and data:
                        self.events.put(Sse(kind, ident, json.loads("\n".join(data))))
                        kind, ident, data = "message", None, []
        except BaseException as exc:  # reported by take()
            if not self._stop.is_set():
                self.error = exc

    def take(self, until: Callable[[list[Sse]], bool], timeout: float = 20.0) -> list[Sse]:
        got: list[Sse] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None:
                raise AssertionError(f"the stream failed: {self.error!r}")
            try:
                got.append(self.events.get(timeout=0.05))
            except queue.Empty:
                continue
            if until(got):
                return got
        raise AssertionError(f"timed out; got {[(e.kind, e.id) for e in got]}")

    def running(self) -> bool:
        """Still reading: the response has not ended."""
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Go away: the connection is closed at once, as a browser tab closing does.

        ``shutdown`` first: on Linux a socket closed while another thread is blocked reading it
        stays open (no FIN) until that read returns, so the server would not see the client
        go until it next wrote to it."""
        self._stop.set()
        if self._socket is not None:
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed by the server
                pass
        if self._client is not None:
            self._client.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
