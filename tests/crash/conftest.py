"""Fixtures of the kill -9 trials: one fork server for the session, both backends.

PostgreSQL trials need the server (each copy is a database of its own); with ``CI=true`` an
unreachable server fails them, as everywhere else in the suite.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .harness import Launcher

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def launcher() -> Iterator[Launcher]:
    with Launcher() as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def crash_backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and not request.getfixturevalue("pg_available"):
        if IN_CI:
            pytest.fail("PostgreSQL is unreachable and CI=true")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    return str(request.param)
