"""Engines, sessions and the migration wrapper for SQLite (embedded) and PostgreSQL.

SQLite runs with ``secure_delete=ON`` so deleted ciphertext is zeroed in the file, WAL
journaling, and foreign keys enforced. The schema is created and changed only by alembic
migrations (the ``migrations`` package, shipped in the wheel); :func:`check_schema` refuses a
database that is behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker

from .errors import SchemaError, StoreError
from .ground.resources import package_path

__all__ = [
    "make_engine",
    "session_scope",
    "alembic_config",
    "upgrade",
    "downgrade",
    "current_revision",
    "head_revision",
    "check_schema",
    "map_db_errors",
    "sqlite_checkpoint",
    "redact_url",
]


def redact_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable database URL>"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, see _sqlite_begin
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA page_size=65536")  # only takes effect on a new, empty file
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA mmap_size=268435456")
    cursor.close()


#: execution option of a connection that only reads (:func:`reading`)
READ_ONLY = "flowaudit_read_only"


def _sqlite_begin(conn: Any) -> None:
    """Take the write lock up front: SQLite has one writer, and the audit chain needs it.

    A connection that only reads (:func:`reading`) begins a deferred transaction instead: in
    WAL mode it reads a consistent snapshot without taking the write lock, so a console's polls
    or a report never make a live commit wait, nor wait for one.
    """
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def reading(engine: Engine) -> Engine:
    """The engine, for sessions that only read (their transactions are never committed)."""
    return engine.execution_options(**{READ_ONLY: True})


def make_engine(url: str) -> Engine:
    """An engine for ``sqlite:///file`` or ``postgresql+psycopg://…``, errors mapped to ours."""
    try:
        if url.startswith("sqlite"):
            if url.strip() in ("sqlite://", "sqlite:///:memory:"):
                raise StoreError("in-memory SQLite is not supported; give a file: sqlite:///x.db")
            path = url.split("///", 1)[-1].split("?", 1)[0]
            if path and not Path(path).parent.exists():
                raise StoreError(
                    f"database directory '{Path(path).parent}' does not exist; "
                    "run `flowaudit init` or fix FLOWAUDIT_DB_URL"
                )
            engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise StoreError(
            f"database URL {redact_url(url)!r} is not usable ({type(exc).__name__}); "
            "use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB"
        ) from exc
    return engine


@contextlib.contextmanager
def map_db_errors(url: str | None = None) -> Iterator[None]:
    """Turn SQLAlchemy/driver errors into :class:`StoreError` without echoing row data."""
    try:
        yield
    except OperationalError as exc:
        where = f" {redact_url(url)}" if url else ""
        reason = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
        raise StoreError(f"database{where} failed: {reason}") from exc
    except IntegrityError as exc:
        raise StoreError(
            "the database refused the write (a constraint failed: duplicate or dangling row); "
            "nothing from this transaction was stored"
        ) from exc
    except SQLAlchemyError as exc:
        raise StoreError(
            f"database operation failed ({type(exc).__name__}); "
            "check the database is migrated (`flowaudit db upgrade`)"
        ) from exc


@contextlib.contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str) -> Config:
    """Alembic's configuration for ``url``, built in code: flowaudit ships no ``alembic.ini``.

    The script location is the installed ``migrations`` package (package data, found with
    :mod:`importlib.resources`), so migrating works from a wheel as well as from a checkout.
    """
    config = Config()
    config.set_main_option("script_location", str(package_path("migrations")))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["flowaudit_url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database up to ``revision``."""
    with map_db_errors(url):
        command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database down to ``revision``."""
    with map_db_errors(url):
        command.downgrade(alembic_config(url), revision)


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with map_db_errors(), engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_schema(engine: Engine) -> None:
    """Refuse to work on a database that is not at the head revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaError(
            f"database is at revision {current or 'none (empty)'} but this flowaudit needs {head}; "
            "run `flowaudit db upgrade`"
        )


def sqlite_checkpoint(engine: Engine) -> bool:
    """Fold the WAL into the file and truncate it, so deleted pages do not linger there.

    Runs on the raw driver connection: the PRAGMA must not sit inside the BEGIN IMMEDIATE
    transaction our engines open, or SQLite refuses it. Returns False if readers blocked it.
    """
    if engine.dialect.name != "sqlite":
        return True
    with map_db_errors():
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            row = cursor.fetchone()
            cursor.close()
        finally:
            raw.close()
    return not (row and row[0])
