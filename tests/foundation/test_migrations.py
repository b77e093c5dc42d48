"""The schema changes only by migrations, and they go up and down cleanly on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

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


def _bytes_freed(url: str, value: int | None = None) -> list[int]:
    """Insert a purge run freeing ``value`` bytes (if given); return every run's figure."""
    engine = db.make_engine(url)
    try:
        with engine.begin() as conn:
            if value is not None:
                conn.execute(
                    text(
                        "INSERT INTO purge_runs (started_at, as_of, dry_run, buckets_shredded, "
                        "rows_deleted, bytes_freed, status) VALUES (:t, :t, false, 0, 0, :b, 'done')"
                    ),
                    {"t": datetime(2026, 6, 25, tzinfo=UTC), "b": value},
                )
            return list(
                conn.execute(text("SELECT bytes_freed FROM purge_runs ORDER BY id")).scalars()
            )
    finally:
        engine.dispose()


def test_bytes_freed_is_64_bit_and_a_downgrade_clamps_it(home: Settings) -> None:
    """0002 widens purge_runs.bytes_freed: 5 GiB fits; back on 0001 it is clamped to 2^31-1."""
    five_gib = 5 * 2**30
    assert _bytes_freed(home.db_url, five_gib) == [five_gib]
    db.downgrade(home.db_url, "0001_initial")
    assert _bytes_freed(home.db_url) == [2**31 - 1]
    db.upgrade(home.db_url)
    assert _bytes_freed(home.db_url, five_gib) == [2**31 - 1, five_gib]
