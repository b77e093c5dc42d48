"""Who may work on a retention bucket: one purge worker per bucket, however many run.

PostgreSQL: a session-level advisory lock per bucket, taken with ``pg_try_advisory_lock`` on a
dedicated autocommit connection. It survives the several transactions one bucket needs (audit
entry, key destruction, state change) — a ``FOR UPDATE`` row lock would not, and would block the
store's own update of the row. A worker that cannot get a bucket's lock skips it: another worker
has it. After locking, the caller re-reads the bucket's state, so a bucket finished by someone
else in the meantime is not processed twice.

SQLite has one writer anyway; a whole-run ``flock`` next to the database file keeps two purge
processes from interleaving their steps.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from .db import map_db_errors

__all__ = ["BucketLocker", "bucket_lock_key"]

_NAMESPACE = b"flowaudit/v1/purge-bucket/"


def bucket_lock_key(bucket_id: str) -> int:
    """A signed 64-bit advisory-lock key for one bucket (collisions: ~2^-64)."""
    digest = hashlib.sha256(_NAMESPACE + bucket_id.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class BucketLocker:
    """Context manager: ``with BucketLocker(engine) as locks: if locks.try_lock(id): ...``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._conn: Connection | None = None
        self._held: set[str] = set()
        self._fd: int | None = None

    def __enter__(self) -> BucketLocker:
        with map_db_errors():
            if self.dialect == "postgresql":
                self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            elif self.dialect == "sqlite" and self.engine.url.database:
                path = Path(self.engine.url.database)
                self._fd = os.open(f"{path}.purge-lock", os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)  # wait for another purge to finish
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._conn is not None:
                with contextlib.suppress(Exception):  # closing the session frees its locks too
                    for bucket_id in list(self._held):
                        self.unlock(bucket_id)
                self._conn.close()
        finally:
            self._conn = None
            self._held.clear()
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None

    def try_lock(self, bucket_id: str) -> bool:
        """Take the bucket if no other worker holds it."""
        if self._conn is None:
            return True
        with map_db_errors():
            got = self._conn.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": bucket_lock_key(bucket_id)}
            ).scalar()
        if got:
            self._held.add(bucket_id)
        return bool(got)

    def unlock(self, bucket_id: str) -> None:
        if self._conn is None or bucket_id not in self._held:
            return
        with map_db_errors():
            self._conn.execute(
                text("SELECT pg_advisory_unlock(:k)"), {"k": bucket_lock_key(bucket_id)}
            )
        self._held.discard(bucket_id)

    @contextlib.contextmanager
    def holding(self, bucket_ids: list[str]) -> Iterator[list[str]]:
        """Lock what can be locked of ``bucket_ids``; yield those; release them afterwards."""
        got = [b for b in bucket_ids if self.try_lock(b)]
        try:
            yield got
        finally:
            for bucket_id in got:
                self.unlock(bucket_id)
