"""Bounded deletion of ciphertext rows, and folding SQLite's WAL away afterwards.

Each batch is its own short transaction, so a purge of millions of rows never holds the write
lock for long, never builds one huge undo log, and loses at most one batch of progress to a
crash (the next run deletes what is left: deletion is idempotent). A caller that must account
for the rows after a crash passes ``tally``: it records the batch's counts in the batch's own
transaction, so the tally and the deletion commit (or vanish) together.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from .db import sqlite_checkpoint
from .models import MetadataRecord, RawSegment
from .store import EncryptedStore

__all__ = ["SEALED_MODELS", "Tally", "delete_rows_batch", "sealed_bytes", "truncate_sqlite_wal"]

#: ``tally(session, model, rows, bytes)``: called inside a batch's transaction when it deleted rows.
Tally = Callable[[Session, type[Any], int, int], None]

SEALED_MODELS: tuple[type[RawSegment] | type[MetadataRecord], ...] = (RawSegment, MetadataRecord)


def sealed_bytes(model: type[RawSegment] | type[MetadataRecord]) -> Any:
    """SQL expression: the stored size of one sealed record (ciphertext, nonce, commitment)."""
    return (
        func.coalesce(func.length(model.ciphertext), 0)
        + func.coalesce(func.length(model.nonce), 0)
        + func.coalesce(func.length(model.commitment), 0)
    )


def delete_rows_batch(
    store: EncryptedStore,
    model: type[RawSegment] | type[MetadataRecord],
    where: Any,
    *,
    batch: int,
    now: datetime,
    actor: str,
    tally: Tally | None = None,
) -> tuple[int, int]:
    """Delete at most ``batch`` rows matching ``where``; return ``(rows, bytes)`` deleted."""
    with store.transaction(now, actor=actor) as tx:
        found = tx.session.execute(
            select(model.id, sealed_bytes(model)).where(where).limit(batch)
        ).all()
        if not found:
            return 0, 0
        ids = [row[0] for row in found]
        tx.session.execute(
            delete(model).where(model.id.in_(ids)).execution_options(synchronize_session=False)
        )
        size = sum(int(row[1] or 0) for row in found)
        if tally is not None:
            tally(tx.session, model, len(ids), size)
    return len(ids), size


def truncate_sqlite_wal(engine: Engine) -> bool:
    """Truncate SQLite's WAL after deleting; one implementation lives in :mod:`retention.db`."""
    return sqlite_checkpoint(engine)
