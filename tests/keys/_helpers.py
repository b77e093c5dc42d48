"""Shared steps of the key-management tests: the real CLI, and an old copy of ciphertext rows.

An "old copy" is what a database backup, a replica or a WAL segment keeps after a purge: the
sealed rows themselves. Re-inserting them is how a test asks the only question that matters —
does anything still decrypt them?
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from typer.testing import CliRunner, Result

from flowaudit.cli import app
from flowaudit.runtime import Runtime
from retention.ground.actions import Action
from retention.models import AuditEntry, RawSegment


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def home_args(runtime: Runtime, now: datetime) -> list[str]:
    return ["--home", str(runtime.settings.home), "--now", now.isoformat()]


def copy_raw_rows(runtime: Runtime, **where: Any) -> list[dict[str, Any]]:
    """The sealed raw rows as a backup of the database would keep them."""
    with runtime.store.session() as session:
        query = select(RawSegment)
        for name, value in where.items():
            query = query.where(getattr(RawSegment, name) == value)
        rows = list(session.scalars(query))
        return [
            {c.name: getattr(row, c.name) for c in RawSegment.__table__.columns} for row in rows
        ]


def put_back(runtime: Runtime, rows: list[dict[str, Any]]) -> None:
    """Re-insert old sealed rows (a restored database backup or replica)."""
    with runtime.engine.begin() as conn:
        conn.execute(insert(RawSegment), rows)


def entries(runtime: Runtime, action: Action) -> list[AuditEntry]:
    with runtime.store.session() as session:
        return list(
            session.scalars(select(AuditEntry).where(AuditEntry.action == action.value))
        )


def log_size(runtime: Runtime) -> int:
    with runtime.store.session() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)
