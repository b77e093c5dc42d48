"""A home with live events under each artist_control mode, for the console API tests.

Each event is driven window by window in the test's own thread (:class:`LiveDriver.advance`
of ``page_fixtures``: the real WindowCommitter and CrowdStepper), so a test knows exactly what
was committed when it asks the API. One home per backend per module (SQLite file, or a fresh
PostgreSQL schema dropped afterwards).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from flowaudit.config import Settings
from flowaudit.console.keys import issue_key
from flowaudit.runtime import open_runtime
from retention.models import AuditEntry, Decision
from tests.conftest import PG_BASE_URL
from tests.console.page_fixtures import ConsoleEvent, LiveDriver, make_event, new_home, pg_schema

with warnings.catch_warnings():  # starlette's TestClient wants httpx2; httpx works
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from starlette.testclient import TestClient

__all__ = ["TestClient", "Home", "console_home", "database", "decisions", "audit", "POLICIES",
           "bearer", "error_of"]

#: event id -> policy (artist_control none / partial / full; tiktok-2026 allows scorers)
POLICIES = {"ev-none": "spotify-2026", "ev-partial": "apple-music-2025",
            "ev-full": "privacy-by-default", "ev-scorers": "tiktok-2026"}


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
def console_home(tmp: Path, backend: str, pg_available: bool,
                 events: dict[str, str] | None = None, warm: int = 6) -> Iterator[Home]:
    """A home with ``events`` (id -> policy) registered and ``warm`` windows committed."""
    with database(backend, pg_available) as db_url:
        settings = new_home(tmp / "home", db_url)
        now = datetime.now(UTC).replace(microsecond=0)
        specs = {eid: make_event(tmp, eid, policy, starts=now)
                 for eid, policy in (events or POLICIES).items()}
        drivers = {eid: LiveDriver(settings, spec, seed=3) for eid, spec in specs.items()}
        home = Home(settings, backend, specs, drivers)
        try:
            for eid in specs:
                home.advance(eid, warm)
            yield home
        finally:
            for driver in drivers.values():
                driver.runtime.close()


def _rows(settings: Settings, query: Any) -> list[Any]:
    """The rows ``query`` selects, detached, read through a runtime of their own."""
    runtime = open_runtime(settings, datetime.now(UTC))
    try:
        with runtime.store.session() as session:
            rows = list(session.scalars(query))
            session.expunge_all()
            return rows
    finally:
        runtime.close()


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
