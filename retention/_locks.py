"""Who may work on a retention bucket: one purge worker per bucket, however many run.

PostgreSQL: a session-level advisory lock per bucket, taken with ``pg_try_advisory_lock`` on a
dedicated autocommit connection. It survives the several transactions one bucket needs (audit
entry, key destruction, state change) — a ``FOR UPDATE`` row lock would not, and would block the
store's own update of the row. A worker that cannot get a bucket's lock skips it: another worker
has it. After locking, the caller re-reads the bucket's state, so a bucket finished by someone
else in the meantime is not processed twice.

Keys are scoped by the connection's schema (advisory locks are per database already), so stores
sharing one database never contend.

SQLite has one writer anyway; a whole-run ``flock`` next to the database file keeps two purge
processes from interleaving their steps.

Runs are locked too, so a run killed with ``kill -9`` is told apart from one still working: a
live run holds its run lock (PostgreSQL: an advisory lock on the run's id, taken before its
``purge_runs`` row commits; SQLite: the whole-run ``flock``) until it ends, and the kernel or the
server drops it when the process dies. A ``running`` row whose lock can be taken is therefore
an interrupted run; :meth:`BucketLocker.claim_run` takes that lock and keeps it, so only one
later run closes it.
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

__all__ = ["BucketLocker", "bucket_lock_key", "run_lock_key"]

_NAMESPACE = b"flowaudit/v1/purge-bucket/"
_RUN_NAMESPACE = b"flowaudit/v1/purge-run/"


def _lock_key(namespace: bytes, scope: str, name: str) -> int:
    digest = hashlib.sha256(namespace + scope.encode() + b"\x00" + name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def bucket_lock_key(bucket_id: str, scope: str = "") -> int:
    """A signed 64-bit advisory-lock key for one bucket (collisions: ~2^-64).

    ``scope`` names the schema the bucket lives in, so stores sharing one database (a schema
    each) never wait for each other's locks.
    """
    return _lock_key(_NAMESPACE, scope, bucket_id)


def run_lock_key(run_id: int, scope: str = "") -> int:
    """The advisory-lock key a live purge run holds on its own ``purge_runs`` id."""
    return _lock_key(_RUN_NAMESPACE, scope, str(run_id))


class BucketLocker:
    """Context manager: ``with BucketLocker(engine) as locks: if locks.try_lock(id): ...``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._conn: Connection | None = None
        self._held: set[str] = set()
        self._runs: set[int] = set()
        self._fd: int | None = None
        self._scope = ""

    def __enter__(self) -> BucketLocker:
        with map_db_errors():
            if self.dialect == "postgresql":
                self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                self._scope = str(self._conn.execute(text("SELECT current_schema()")).scalar())
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
                # the connection goes back to the pool, its session (and session locks) alive:
                # free every bucket and run lock it holds, or they outlive this locker
                try:
                    self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
                except Exception:  # noqa: BLE001 - then end the session itself: that frees them
                    self._conn.invalidate()
                self._conn.close()
        finally:
            self._conn = None
            self._held.clear()
            self._runs.clear()
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
                text("SELECT pg_try_advisory_lock(:k)"),
                {"k": bucket_lock_key(bucket_id, self._scope)},
            ).scalar()
        if got:
            self._held.add(bucket_id)
        return bool(got)

    def hold_run(self, run_id: int) -> None:
        """Mark run ``run_id`` as alive until this locker closes (call before its row commits)."""
        if self._conn is not None:
            with map_db_errors():
                self._conn.execute(
                    text("SELECT pg_advisory_lock(:k)"), {"k": run_lock_key(run_id, self._scope)}
                )
        self._runs.add(run_id)

    def claim_run(self, run_id: int) -> bool:
        """True if run ``run_id`` is dead (nobody holds its lock); its lock is then ours.

        SQLite: this locker holds the whole-run ``flock``, so no other purge is alive. An
        in-memory database has no file to lock and lives in one process: its other runs are dead
        too.
        """
        if run_id in self._runs:
            return False  # our own
        if self._conn is not None:
            with map_db_errors():
                got = self._conn.execute(
                    text("SELECT pg_try_advisory_lock(:k)"),
                    {"k": run_lock_key(run_id, self._scope)},
                ).scalar()
            if not got:
                return False
        self._runs.add(run_id)
        return True

    def unlock(self, bucket_id: str) -> None:
        if self._conn is None or bucket_id not in self._held:
            return
        with map_db_errors():
            self._conn.execute(
                text("SELECT pg_advisory_unlock(:k)"),
                {"k": bucket_lock_key(bucket_id, self._scope)},
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
