"""Crash safety: kill -9 a purge at random points, rerun, and land where an unbroken run lands.

Each trial copies one prepared SQLite home, starts the real purge in a subprocess with tiny
batches (so a kill lands mid-run: between a shred's audit entry and its key, inside the key
store rewrite, between delete batches, before the receipt), kills it, reruns the purge to
completion and compares the end state with an uninterrupted purge of another copy.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from audit.log.verify import verify_log
from flowaudit.config import resolve_settings
from flowaudit.runtime import Runtime, initialise_home, open_runtime
from retention.ground.actions import Action
from retention.models import BUCKET_ACTIVE, BUCKET_DELETED, BUCKET_SHREDDED, RetentionBucket
from retention.purge import purge

from ._data import audit_entries, seed_crowd, snapshot

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 5
PURGE_AT_OFFSET = timedelta(hours=75, minutes=30)
ENV_CLEAN = {k: v for k, v in os.environ.items() if not k.startswith("FLOWAUDIT_")}


def _open(home: Path, now: datetime) -> Runtime:
    return open_runtime(resolve_settings(home, None, ENV_CLEAN), now, ENV_CLEAN)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, datetime]]:
    """One home with raw audio and metadata of two events, due for shred and anonymisation."""
    from datetime import UTC

    now = datetime(2026, 6, 21, 20, 0, tzinfo=UTC)
    home = tmp_path_factory.mktemp("crash") / "template"
    initialise_home(home, environ=ENV_CLEAN)
    runtime = _open(home, now)
    try:
        seed_crowd(
            runtime.store,
            now,
            event_id="crash-a",
            policy="privacy-by-default",
            subjects=16,
            hours=5,
            raw_per_hour=1,
            meta_per_hour=1,
            seed=11,
        )
        seed_crowd(
            runtime.store,
            now,
            event_id="crash-b",
            subjects=3,
            hours=12,
            raw_per_hour=2,
            meta_per_hour=1,
            raw_retention=timedelta(hours=1),
            meta_retention=timedelta(hours=2),
            seed=12,
        )
    finally:
        runtime.close()
    yield home, now + PURGE_AT_OFFSET


def _copy(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest)
    return dest


def _spawn(home: Path, at: datetime) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.retention_ops._purge_worker",
            "--home",
            str(home),
            "--now",
            at.isoformat(),
            "--batch",
            "2",
            "--shred-chunk",
            "1",
        ],
        cwd=ROOT,
        env=ENV_CLEAN,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", (line, proc.stderr.read() if proc.stderr else "")


def _check_end_state(home: Path, at: datetime) -> dict:
    runtime = _open(home, at)
    try:
        state = snapshot(runtime, at)
        assert verify_log(runtime.engine, None).ok
        with runtime.store.session() as session:
            buckets = list(session.query(RetentionBucket))
        named: set[str] = set()
        for entry in audit_entries(runtime.store, Action.PURGE_RECEIPT):
            if not entry.details["dry_run"]:
                named.update(entry.details["buckets_shredded"])
                named.update(entry.details["buckets_deleted"])
        for bucket in buckets:
            expired = bucket.expires_at is not None and bucket.expires_at <= at
            assert bucket.state == (BUCKET_DELETED if expired else BUCKET_ACTIVE), bucket.id
            if expired:
                assert bucket.id in named, f"{bucket.id} gone but no receipt names it"
        deleted = [
            b
            for b in audit_entries(runtime.store, Action.PURGE_RECEIPT)
            for b in b.details["buckets_deleted"]
        ]
        assert len(deleted) == len(set(deleted))  # each deletion claimed by exactly one run
        return state
    finally:
        runtime.close()


def test_kill_minus_nine_at_random_points_then_rerun_equals_an_unbroken_purge(
    template: tuple[Path, datetime], tmp_path: Path
) -> None:
    source, at = template
    reference_home = _copy(source, tmp_path / "reference")
    proc = _spawn(reference_home, at)
    _wait_ready(proc)
    started = time.monotonic()
    out, err = proc.communicate(timeout=120)
    duration = time.monotonic() - started
    print(f"uninterrupted purge: {duration:.2f} s")
    assert proc.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["rows_deleted"] > 150 and len(report["buckets_shredded"]) > 25
    reference = _check_end_state(reference_home, at)
    # the live data the uninterrupted run kept: raw audio of crash-a hours 3-4, aggregates,
    # re-stored crowd scores and the one linkable metadata hour not yet due for anonymisation
    assert reference["raw"] and any(m[0] == "" for m in reference["metadata"])

    rng = random.Random(20260621)
    killed_mid_run = 0
    interrupted_states = 0
    for trial in range(TRIALS):
        home = _copy(source, tmp_path / f"trial-{trial}")
        proc = _spawn(home, at)
        _wait_ready(proc)
        time.sleep(rng.uniform(0.0, duration))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        if proc.returncode == -signal.SIGKILL:
            killed_mid_run += 1
            runtime = _open(home, at)
            try:
                if snapshot(runtime, at) != reference:
                    interrupted_states += 1
            finally:
                runtime.close()
        runtime = _open(home, at)
        try:
            purge(runtime.store, now=at, batch=7)  # the rerun
        finally:
            runtime.close()
        assert _check_end_state(home, at) == reference, f"trial {trial} diverged"
    assert killed_mid_run >= 1 and interrupted_states >= 1  # the kills really interrupted work


def test_a_killed_purge_leaves_no_bucket_half_way_after_the_rerun_on_a_shredded_state(
    template: tuple[Path, datetime], tmp_path: Path
) -> None:
    """A deterministic crash point: killed right after shredding, before any deletion."""
    source, at = template
    home = _copy(source, tmp_path / "shredded-only")
    runtime = _open(home, at)
    try:
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
                b.state
                for b in session.query(RetentionBucket).filter(RetentionBucket.id.in_(expired))
            }
        assert states == {BUCKET_SHREDDED}
        report = purge(runtime.store, now=at)
        assert set(expired) <= set(report.buckets_deleted)
        assert set(report.buckets_shredded).isdisjoint(expired)  # not shredded a second time
        # the rest were anonymised metadata buckets, shredded and deleted in this same run
        assert set(report.buckets_deleted) - set(expired) == set(report.buckets_shredded)
    finally:
        runtime.close()
