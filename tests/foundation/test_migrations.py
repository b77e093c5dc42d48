"""The schema changes only by migrations, and they go up and down cleanly on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from flowaudit.config import Settings
from retention import db
from retention.models import Base


def _tables(url: str) -> set[str]:
    engine = db.make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(home: Settings) -> None:
    url = home.db_url
    assert _tables(url) == set(Base.metadata.tables)
    db.downgrade(url, "base")
    assert _tables(url) == set()
    db.upgrade(url)
    assert _tables(url) == set(Base.metadata.tables)
    engine = db.make_engine(url)
    try:
        assert db.current_revision(engine) == db.head_revision()
        db.check_schema(engine)
    finally:
        engine.dispose()


def test_models_match_migrations(home: Settings) -> None:
    """Autogenerate finds nothing to do: every model change came with a migration."""
    engine = db.make_engine(home.db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def _tally(url: str, column: str, value: int | None = None) -> list[int]:
    """Insert a purge run with ``column`` = ``value`` (if given); return every run's figure."""
    engine = db.make_engine(url)
    figures = {"rows_deleted": 0, "bytes_freed": 0} | ({column: value} if value else {})
    try:
        with engine.begin() as conn:
            if value is not None:
                conn.execute(
                    text(
                        "INSERT INTO purge_runs (started_at, as_of, dry_run, buckets_shredded, "
                        "rows_deleted, bytes_freed, status) VALUES (:t, :t, false, 0, :r, :b, 'done')"
                    ),
                    {"t": datetime(2026, 6, 25, tzinfo=UTC), "r": figures["rows_deleted"],
                     "b": figures["bytes_freed"]},
                )
            return list(conn.execute(text(f"SELECT {column} FROM purge_runs ORDER BY id")).scalars())
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("column", "widened_by", "before"),
    [
        ("bytes_freed", "0002_purge_bytes_freed_bigint", "0001_initial"),
        ("rows_deleted", "0007_purge_rows_deleted_bigint", "0006_console"),
    ],
)
def test_purge_tallies_are_64_bit_and_a_downgrade_clamps_them(
    home: Settings, column: str, widened_by: str, before: str
) -> None:
    """Each widening migration: 5 Gi fits; back before it, the figure is clamped to 2^31-1."""
    big = 5 * 2**30
    assert _tally(home.db_url, column, big) == [big]
    db.downgrade(home.db_url, before)
    assert _tally(home.db_url, column) == [2**31 - 1]
    db.upgrade(home.db_url, widened_by)  # this migration alone makes room again
    assert _tally(home.db_url, column, big) == [2**31 - 1, big]
    db.upgrade(home.db_url)
