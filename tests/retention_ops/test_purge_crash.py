"""Crash safety of the purge at chosen points: a killed run is told from a live one and closed.

The random-moment kill -9 trials of the real CLI live in ``tests/crash`` (``make crash`` runs the
full matrix). Here the kill lands at a point chosen from outside — the test watches the store
until the purge worker has shredded buckets and deleted rows, then sends SIGKILL — so every
assertion is about one known crash point, on both backends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from flowaudit.config import Settings
from flowaudit.runtime import Runtime, open_runtime
from retention._locks import BucketLocker
from retention.ground.actions import Action
from retention.models import (
    BUCKET_ACTIVE,
    BUCKET_DELETED,
    BUCKET_SHREDDED,
    PurgeRun,
    RetentionBucket,
)
from retention.purge import RUN_INTERRUPTED, _open_run, purge, run_actor

from ._data import audit_entries, buckets, row_counts, seed_crowd

ROOT = Path(__file__).resolve().parents[2]
ENV_CLEAN = {k: v for k, v in os.environ.items() if not k.startswith("FLOWAUDIT_")}


def _seed(runtime: Runtime, now: datetime) -> None:
    """Raw audio with 1 h retention over 8 hours: many buckets and rows expire together."""
    seed_crowd(
        runtime.store,
        now,
        event_id="kill",
        subjects=4,
        hours=8,
        raw_per_hour=3,
        meta_per_hour=1,
        raw_retention=timedelta(hours=1),
        meta_retention=None,
        seed=41,
    )


def _run(runtime: Runtime, run_id: int) -> PurgeRun:
    with runtime.store.session() as session:
        run = session.get(PurgeRun, run_id)
        assert run is not None
        return run


def _kill_mid_delete(home: Settings, at: datetime) -> int:
    """Start a purge worker; SIGKILL it once it has deleted rows; return its run id."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.retention_ops._purge_worker",
            "--home",
            str(home.home),
            "--db",
            home.db_url,
            "--now",
            at.isoformat(),
            "--batch",
            "1",
            "--shred-chunk",
            "1",
            "--hold-after-deleted",
            "3",
        ],
        cwd=ROOT,
        env=ENV_CLEAN,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    held = proc.stdout.readline().strip()  # the worker parks inside the purge, batch committed
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert held == "held" and proc.returncode == -signal.SIGKILL, f"the purge did not hold: {err}"
    watcher = open_runtime(home, at, ENV_CLEAN)
    try:
        with watcher.store.session() as session:
            (run_id,) = session.scalars(select(PurgeRun.id).where(PurgeRun.status == "running"))
    finally:
        watcher.close()
    return int(run_id)


def test_a_purge_killed_mid_delete_is_closed_as_interrupted_and_fully_receipted(
    home: Settings, now: datetime
) -> None:
    runtime = open_runtime(home, now, ENV_CLEAN)
    at = now + timedelta(hours=10)
    try:
        _seed(runtime, now)
        before = buckets(runtime.store)
        rows_before = row_counts(runtime.store)
    finally:
        runtime.close()
    expired = sorted(b for b, row in before.items() if row.expires_at and row.expires_at <= at)
    expired_rows = sum(rows_before.get(b, 0) for b in expired)

    killed = _kill_mid_delete(home, at)

    runtime = open_runtime(home, at, ENV_CLEAN)
    try:
        dead = _run(runtime, killed)
        assert dead.status == "running" and dead.rows_deleted >= 3  # what the kill left
        half_done = {b.id: b.state for b in buckets(runtime.store).values() if b.id in expired}
        assert BUCKET_SHREDDED in half_done.values()
        report = purge(runtime.store, now=at, batch=5)
        assert [r.run_id for r in report.resumed] == [killed]
        assert _run(runtime, killed).status == RUN_INTERRUPTED
        assert _run(runtime, report.run_id).status == "done"
        (receipt,) = [
            e.details
            for e in audit_entries(runtime.store, Action.PURGE_RECEIPT)
            if e.object_id == str(report.run_id)
        ]
        # the killed run wrote no receipt: this one covers its shredding and its deleted rows
        assert len(audit_entries(runtime.store, Action.PURGE_RECEIPT)) == 1
        assert receipt["resumed_runs"] == [killed]
        assert sorted(receipt["buckets_shredded"]) == expired
        assert sorted(receipt["buckets_deleted"]) == expired
        assert receipt["rows_deleted"] == expired_rows == report.rows_deleted + dead.rows_deleted
        states = {b.id: b.state for b in buckets(runtime.store).values()}
        assert all(states[b] == BUCKET_DELETED for b in expired)
        assert all(s == BUCKET_ACTIVE for b, s in states.items() if b not in expired)
        # the killed run's shred entries name it: that is how its buckets were found
        actors = {e.actor for e in audit_entries(runtime.store, Action.BUCKET_SHRED)}
        assert run_actor(killed) in actors
        again = purge(runtime.store, now=at)  # nothing left to resume or do
        assert (again.resumed, again.buckets_shredded, again.rows_deleted) == ([], [], 0)
    finally:
        runtime.close()


@pytest.mark.postgres
def test_a_live_run_is_never_taken_for_an_interrupted_one(
    pg_url: str, tmp_path: Path, now: datetime
) -> None:
    """A run whose lock is held stays ``running``; once its session ends it is closed."""
    from flowaudit.runtime import initialise_home

    settings = initialise_home(tmp_path / "home", db_url=pg_url, environ=ENV_CLEAN)
    runtime = open_runtime(settings, now, ENV_CLEAN)
    try:
        _seed(runtime, now)
        at = now + timedelta(hours=10)
        with BucketLocker(runtime.engine) as live:  # another worker, mid-run
            alive = _open_run(runtime.store, at, False, live)
            first = purge(runtime.store, now=at)
            assert first.resumed == [] and _run(runtime, alive).status == "running"
        second = purge(runtime.store, now=at)  # its session ended without a receipt
        assert [r.run_id for r in second.resumed] == [alive]
        assert _run(runtime, alive).status == RUN_INTERRUPTED
        assert second.resumed[0].buckets_shredded == ()  # it had shredded nothing
    finally:
        runtime.close()


def test_a_dry_run_closes_no_run_and_claims_nothing(sqlite_runtime: Runtime, now: datetime) -> None:
    """A dry run changes nothing, not even a dead run's row (the next real run closes it)."""
    _seed(sqlite_runtime, now)
    at = now + timedelta(hours=10)
    with BucketLocker(sqlite_runtime.engine) as gone:
        dead = _open_run(sqlite_runtime.store, at, False, gone)
    dry = purge(sqlite_runtime.store, now=at, dry_run=True)
    assert dry.resumed == [] and _run(sqlite_runtime, dead).status == "running"
    real = purge(sqlite_runtime.store, now=at)
    assert [r.run_id for r in real.resumed] == [dead]
    assert _run(sqlite_runtime, dead).status == RUN_INTERRUPTED


def test_a_rerun_on_a_shredded_state_deletes_without_shredding_again(
    sqlite_runtime: Runtime, now: datetime
) -> None:
    """A deterministic crash point: killed right after shredding, before any deletion."""
    runtime = sqlite_runtime
    _seed(runtime, now)
    at = now + timedelta(hours=10)
    with runtime.store.session() as session:
        expired = [
            b.id
            for b in session.query(RetentionBucket).filter(
                RetentionBucket.expires_at <= at, RetentionBucket.state == BUCKET_ACTIVE
            )
        ]
    runtime.store.shred_buckets(expired, now=at)
    with runtime.store.session() as session:
        states = {
            b.state for b in session.query(RetentionBucket).filter(RetentionBucket.id.in_(expired))
        }
    assert states == {BUCKET_SHREDDED}
    report = purge(runtime.store, now=at)
    assert sorted(report.buckets_deleted) == sorted(expired)
    assert report.buckets_shredded == []  # not shredded a second time
