"""A read session never makes a commit wait (nor waits for one), and reads one snapshot.

On SQLite every writing transaction takes the write lock up front (``BEGIN IMMEDIATE``); a
session that only reads begins a deferred one (:func:`retention.db.reading`), so a console's
polls and a report's reads run beside the live commits. PostgreSQL reads never took a lock;
both backends must behave the same.
"""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from flowaudit.runtime import Runtime
from retention.models import Subject

WAIT = 20.0  # far below SQLite's 30 s busy timeout, far above any commit on this machine


def _subjects(session: object) -> int:
    return int(session.scalar(select(func.count(Subject.id))) or 0)  # type: ignore[attr-defined]


def test_a_commit_lands_while_a_read_session_is_open(runtime: Runtime) -> None:
    store, now = runtime.store, runtime.now
    with store.transaction(now) as tx:
        tx.register_subject("WB-READ-1")
    reading, committed = threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def reader() -> None:
        with store.session() as session:
            seen["before"] = _subjects(session)
            reading.set()
            # the writer must finish while this read transaction is still open
            seen["writer_done_while_open"] = int(committed.wait(WAIT))
            seen["after_in_same_session"] = _subjects(session)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        assert reading.wait(WAIT)
        with store.transaction(now) as tx:
            tx.register_subject("WB-READ-2")
        committed.set()
    finally:
        committed.set()
        thread.join(WAIT * 2)
    assert seen["before"] == 1 and seen["writer_done_while_open"] == 1
    # SQLite's deferred read and PostgreSQL's read committed differ only here: a new statement
    # on PostgreSQL sees the commit; SQLite keeps the snapshot of its first read
    expected = 1 if runtime.store.engine.dialect.name == "sqlite" else 2
    assert seen["after_in_same_session"] == expected
    with store.session() as session:
        assert _subjects(session) == 2


def test_a_read_session_does_not_wait_for_an_open_commit(runtime: Runtime) -> None:
    store, now = runtime.store, runtime.now
    writing, read_done = threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def writer() -> None:
        with store.transaction(now) as tx:
            tx.register_subject("WB-HELD")
            tx.session.flush()  # the row is written, the transaction (and its lock) held
            writing.set()
            seen["read_done_while_writing"] = int(read_done.wait(WAIT))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert writing.wait(WAIT)
        with store.session() as session:
            seen["read"] = _subjects(session)  # the last committed state, not the open write
        read_done.set()
    finally:
        read_done.set()
        thread.join(WAIT * 2)
    assert seen == {"read": 0, "read_done_while_writing": 1}
