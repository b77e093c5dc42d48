"""Fixtures of the kill -9 trials: one fork server for the session, both backends.

PostgreSQL trials need the server (each copy is a database of its own); with ``CI=true`` an
unreachable server fails them, as everywhere else in the suite.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .harness import Launcher


@pytest.fixture(scope="session")
def launcher() -> Iterator[Launcher]:
    with Launcher() as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def crash_backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and not request.getfixturevalue("pg_available"):
        pytest.fail("PostgreSQL is unreachable; start it with `make services`")
    return str(request.param)
