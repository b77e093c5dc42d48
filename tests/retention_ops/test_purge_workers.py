"""Four purge workers (processes) on one PostgreSQL database: each bucket handled exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit.log.verify import verify_log
from flowaudit.config import resolve_settings
from flowaudit.runtime import initialise_home, open_runtime
from retention.ground.actions import Action
from retention.models import BUCKET_ACTIVE, BUCKET_DELETED

from ._data import audit_entries, buckets, row_counts, seed_crowd

ROOT = Path(__file__).resolve().parents[2]
WORKERS = {"postgres": 4, "sqlite": 2}  # SQLite: one writer, a run-wide lock
ENV_CLEAN = {k: v for k, v in os.environ.items() if not k.startswith("FLOWAUDIT_")}


def _run_workers(home: Path, db: str | None, at: datetime, go: Path, workers: int) -> list[dict]:
    procs = []
    for _ in range(workers):
        command = [
            sys.executable,
            "-m",
            "tests.retention_ops._purge_worker",
            "--home",
            str(home),
            "--now",
            at.isoformat(),
            "--batch",
            "3",
            "--shred-chunk",
            "1",
            "--go",
            str(go),
        ]
        if db:
            command += ["--db", db]
        procs.append(
            subprocess.Popen(
                command,
                cwd=ROOT,
                env=ENV_CLEAN,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for proc in procs:  # every worker is imported and connected ...
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", (line, proc.stderr.read() if proc.stderr else "")
    go.touch()  # ... then all start at once
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "error" not in err.lower(), err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


@pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"]
)
def test_concurrent_workers_shred_and_delete_every_bucket_exactly_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = str(request.getfixturevalue("pg_url")) if backend == "postgres" else None
    now = datetime(2026, 6, 21, 20, 0, tzinfo=UTC)
    home = tmp_path / "home"
    initialise_home(home, db_url=db, environ=ENV_CLEAN)
    settings = resolve_settings(home, db, ENV_CLEAN)
    at = now + timedelta(hours=75, minutes=30)
    runtime = open_runtime(settings, now, ENV_CLEAN)
    try:
        seed_crowd(
            runtime.store,
            now,
            event_id="w-a",
            policy="privacy-by-default",
            subjects=12,
            hours=5,
            raw_per_hour=1,
            meta_per_hour=1,
            seed=31,
        )
        seed_crowd(
            runtime.store,
            now,
            event_id="w-b",
            subjects=2,
            hours=16,
            raw_per_hour=2,
            meta_per_hour=1,
            raw_retention=timedelta(hours=1),
            meta_retention=timedelta(hours=2),
            seed=32,
        )
        before = buckets(runtime.store)
        rows_before = row_counts(runtime.store)
    finally:
        runtime.close()
    due_for_anonymisation = {
        b
        for b, row in before.items()
        if row.id.startswith("w-a:metadata:") and row.starts_at + timedelta(hours=72) <= at
    }
    expired = {
        b for b, row in before.items() if row.expires_at is not None and row.expires_at <= at
    } | due_for_anonymisation
    assert len(expired) > 30

    reports = _run_workers(home, db, at, tmp_path / "go", WORKERS[backend])

    runtime = open_runtime(settings, at, ENV_CLEAN)
    try:
        store = runtime.store
        # every key destroyed by exactly one "bucket.shred" entry ...
        shred_claims = Counter(
            b for e in audit_entries(store, "bucket.shred") for b in e.details["bucket_ids"]
        )
        assert set(shred_claims) == expired
        assert set(shred_claims.values()) == {1}
        # ... and named by exactly one receipt as shredded and one as deleted
        receipts = [e.details for e in audit_entries(store, Action.PURGE_RECEIPT)]
        assert len(receipts) == WORKERS[backend]
        for key in ("buckets_shredded", "buckets_deleted"):
            claims = Counter(b for r in receipts for b in r[key])
            assert set(claims) == expired and set(claims.values()) == {1}, key
        assert sum(r["rows_deleted"] for r in reports) == sum(rows_before[b] for b in expired)
        # each due metadata bucket anonymised once: no duplicated aggregates
        anonymised = Counter(e.object_id for e in audit_entries(store, "metadata.anonymise"))
        assert set(anonymised) == due_for_anonymisation and set(anonymised.values()) == {1}
        after = buckets(store)
        for bucket_id in expired:
            assert after[bucket_id].state == BUCKET_DELETED
            assert runtime.keys.is_bucket_destroyed(bucket_id)
        rows_after = row_counts(store)
        assert not set(rows_after) & expired
        for bucket_id, row in after.items():
            if bucket_id not in expired:
                assert row.state == BUCKET_ACTIVE
                assert not runtime.keys.is_bucket_destroyed(bucket_id)
                if bucket_id in rows_before:
                    assert rows_after[bucket_id] == rows_before[bucket_id]  # live rows intact
        assert verify_log(runtime.engine, None).ok
    finally:
        runtime.close()
