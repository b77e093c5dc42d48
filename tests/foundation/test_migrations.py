"""The schema changes only by migrations, and they go up and down cleanly on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

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
