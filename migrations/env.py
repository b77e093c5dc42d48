"""Alembic environment for flowaudit (stock offline/online shape)."""

from __future__ import annotations

from alembic import context

from retention.db import make_engine
from retention.errors import SchemaError
from retention.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    """The URL :func:`retention.db.alembic_config` put there (or an ``alembic.ini``'s)."""
    url = config.attributes.get("flowaudit_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SchemaError("no database URL to migrate; run `flowaudit db upgrade --home DIR`")
    return str(url)


def run_migrations_offline() -> None:
    """Emit SQL to stdout without a database connection."""
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations against a live connection (SQLite uses batch mode for ALTERs)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_url())
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
