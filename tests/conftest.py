"""Real fixtures: a temp SQLite home, a fresh PostgreSQL schema per test, a fixed ``now``.

PostgreSQL tests are marked ``postgres``. They never skip: an unreachable server fails them
(`make test` starts it first), and the session records how many PostgreSQL tests passed so
`.ci/run` can fail when none did.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from flowaudit.config import Settings
from flowaudit.runtime import Runtime, initialise_home, open_runtime
from tests._pg import PG_BASE_URL, fresh_schema

_ROOT = Path(__file__).resolve().parent.parent
_pg_passed = 0


def _pg_available() -> bool:
    try:
        engine = create_engine(PG_BASE_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_available() -> bool:
    return _pg_available()


@pytest.fixture
def now() -> datetime:
    """A fixed instant during the demo event (Fête de la Musique, 21 June 2026, 22:00 Paris)."""
    return datetime(2026, 6, 21, 20, 0, tzinfo=UTC)


@pytest.fixture
def pg_url(pg_available: bool) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    if not pg_available:  # the suite runs on the real server: `make test` starts it
        pytest.fail(f"PostgreSQL at {PG_BASE_URL} is unreachable; start it with `make services`")
    with fresh_schema(PG_BASE_URL) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database URL for the parametrised backend (SQLite file in the home, or a PG schema)."""
    if backend == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return ""  # empty: the home's own SQLite file


@pytest.fixture
def home(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """An initialised data home in a temp dir, on the parametrised backend."""
    for var in ("FLOWAUDIT_HOME", "FLOWAUDIT_DB_URL", "FLOWAUDIT_MASTER_KEY", "FLOWAUDIT_NOW"):
        monkeypatch.delenv(var, raising=False)
    return initialise_home(tmp_path / "home", db_url=db_url or None)


@pytest.fixture
def sqlite_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """An initialised data home on SQLite only."""
    for var in ("FLOWAUDIT_HOME", "FLOWAUDIT_DB_URL", "FLOWAUDIT_MASTER_KEY", "FLOWAUDIT_NOW"):
        monkeypatch.delenv(var, raising=False)
    return initialise_home(tmp_path / "home")


@pytest.fixture
def runtime(home: Settings, now: datetime) -> Iterator[Runtime]:
    rt = open_runtime(home, now)
    yield rt
    rt.close()


@pytest.fixture
def sqlite_runtime(sqlite_home: Settings, now: datetime) -> Iterator[Runtime]:
    rt = open_runtime(sqlite_home, now)
    yield rt
    rt.close()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _pg_passed
    if report.when == "call" and report.passed and "postgres" in report.keywords:
        _pg_passed += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller sees every
        return  # report and writes the count once
    (_ROOT / ".pytest-postgres-count").write_text(f"{_pg_passed}\n")
