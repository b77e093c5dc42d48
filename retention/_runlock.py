"""Who is running an event right now: a lock the live run holds and the operating system drops.

A run's row says ``running`` from its first transaction on; only the process doing the run
knows it is still alive. So the run also holds a lock that ends with its process, whatever
kills it (``kill -9``, power loss, OOM): a row that says ``running`` while nobody holds its
event's lock belongs to a run that was interrupted.

PostgreSQL: a session-level advisory lock on a dedicated connection; the server frees it when
the connection ends, which the kernel does when the process dies. The key covers the database,
the schema and the event id, so homes sharing one server do not see each other's runs. Whether
a run is live is read from ``pg_locks`` without taking the lock.

SQLite: an ``flock`` on a small file next to the database file, one per event (named by a
digest, not the event id).

A live event's workers each hold the lock *shared* (``RunLock(…, shared=True)``): the run is
live while any of them is, on any machine (PostgreSQL), and a batch run of the event, which
takes it exclusively, is refused meanwhile.

An in-memory database lives and dies with its process, so a set in this process stands in
for the file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import threading
import time
from collections import Counter
from pathlib import Path
from types import TracebackType

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from .db import map_db_errors

__all__ = ["RunLock", "run_is_live"]

_NAMESPACE = b"flowaudit/v1/event-run/"
_memory_held: set[tuple[int, str]] = set()
_memory_shared: Counter[tuple[int, str]] = Counter()
_memory_guard = threading.Lock()


def _digest(*parts: str) -> bytes:
    return hashlib.sha256(_NAMESPACE + "\x00".join(parts).encode()).digest()


def _pg_key(conn: Connection, event_id: str) -> int:
    """A signed 64-bit advisory-lock key for this database, schema and event."""
    database, schema = conn.execute(text("SELECT current_database(), current_schema()")).one()
    return int.from_bytes(_digest(str(database), str(schema or ""), event_id)[:8], "big",
                          signed=True)


def _sqlite_file(engine: Engine, event_id: str) -> Path | None:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(f"{database}.run-{_digest(event_id).hex()[:16]}.lock")


class RunLock:
    """Held for the whole of one event's run: ``with RunLock(engine, event_id) as lock:``.

    :meth:`acquire` returns False when another live process holds it.
    """

    def __init__(self, engine: Engine, event_id: str, *, shared: bool = False) -> None:
        self.engine = engine
        self.event_id = event_id
        self.shared = shared  # live workers: each holds it shared, a batch run exclusively
        self._conn: Connection | None = None
        self._key: int | None = None
        self._fd: int | None = None
        self._memory: tuple[int, str] | None = None

    def acquire(self, wait_seconds: float = 0.0) -> bool:
        """Take the lock, retrying up to ``wait_seconds``: a server notices a dead client's
        closed connection a moment after the process is gone, and a reader may hold the file
        lock for an instant."""
        deadline = time.monotonic() + wait_seconds
        while True:
            if self._try():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _try(self) -> bool:
        with map_db_errors():
            if self.engine.dialect.name == "postgresql":
                return self._try_pg()
        path = _sqlite_file(self.engine, self.event_id)
        if path is None:
            token = (id(self.engine), self.event_id)
            with _memory_guard:
                if token in _memory_held or (not self.shared and _memory_shared[token]):
                    return False
                if self.shared:
                    _memory_shared[token] += 1
                else:
                    _memory_held.add(token)
            self._memory = token
            return True
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise
        self._fd = fd
        return True

    def _try_pg(self) -> bool:
        if self._conn is None:
            self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._key = _pg_key(self._conn, self.event_id)
        how = "pg_try_advisory_lock_shared" if self.shared else "pg_try_advisory_lock"
        got = self._conn.execute(text(f"SELECT {how}(:k)"), {"k": self._key})
        return bool(got.scalar())

    def release(self) -> None:
        """Let go (idempotent); closing the connection would free the lock as well."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                how = "pg_advisory_unlock_shared" if self.shared else "pg_advisory_unlock"
                self._conn.execute(text(f"SELECT {how}(:k)"), {"k": self._key})
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._memory is not None:
            with _memory_guard:
                if self.shared:
                    _memory_shared[self._memory] -= 1
                else:
                    _memory_held.discard(self._memory)
            self._memory = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def run_is_live(engine: Engine, event_id: str) -> bool:
    """True if a live process holds this event's run lock; takes nothing itself on PostgreSQL."""
    with map_db_errors():
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                key = _pg_key(conn, event_id) & 0xFFFFFFFFFFFFFFFF
                held = conn.execute(
                    text(
                        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
                        " AND granted AND objsubid = 1 AND classid::bigint = :hi"
                        " AND objid::bigint = :lo AND database = (SELECT oid FROM pg_database"
                        " WHERE datname = current_database()))"
                    ),
                    {"hi": key >> 32, "lo": key & 0xFFFFFFFF},
                ).scalar()
                conn.rollback()
                return bool(held)
    path = _sqlite_file(engine, event_id)
    if path is None:
        with _memory_guard:
            token = (id(engine), event_id)
            return token in _memory_held or _memory_shared[token] > 0
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False  # no run of this event ever took the lock here
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
