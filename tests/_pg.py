"""The tests' PostgreSQL: the server's URL and a fresh schema, dropped afterwards.

One helper for the per-test ``pg_url`` fixture (tests/conftest.py) and the per-module console
homes (tests/console/page_fixtures.py), so both create and drop a schema the same way.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

__all__ = ["PG_BASE_URL", "fresh_schema"]

PG_BASE_URL = os.environ.get(
    "FLOWAUDIT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def fresh_schema(base_url: str = PG_BASE_URL) -> Iterator[str]:
    """A URL on ``base_url`` whose search_path is a new schema, dropped with all it holds."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
