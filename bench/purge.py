"""Purge cost: time to make expired data unreadable (shred) vs time to delete it, as rows grow.

    .venv/bin/python -P bench/purge.py [--quick] [--postgres] [--sizes 10000,100000,1000000]

For each size a fresh SQLite home (and, with ``--postgres``, a fresh PostgreSQL schema) gets
132 hourly raw-audio buckets. Each bucket is opened through the real store (one sealed record,
so its key lives in the real key store); the other rows are bulk-inserted with plain SQL (they
need not be individually encrypted to time their deletion). Buckets expire in 11 rounds of 12:

* **shred** — per round, the real purge step: audit entry, destroy the 12 bucket keys in the
  key store, mark them SHREDDED. Reported as the median of rounds 2-11. It reads no row, so
  it should not grow with the number of rows (target: 1M rows within 2x of 10k rows).
* **delete** — then every shredded row is deleted in batches of 5,000 and, on SQLite, the WAL
  is checkpointed and truncated.

The baseline is the 10k-row run of the same invocation; ratios are against it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, select, text

from flowaudit.runtime import Runtime, initialise_home, open_runtime
from retention._deletion import truncate_sqlite_wal
from retention._locks import BucketLocker
from retention.errors import RecordShreddedError
from retention.models import RawSegment
from retention.purge import PurgeReport, delete_shredded, shred_expired
from retention.store import RAW_AUDIO, bucket_id_for

PG_URL = os.environ.get(
    "FLOWAUDIT_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
NOW = datetime(2026, 6, 21, 0, 0, tzinfo=UTC)
ROUNDS, PER_ROUND = 11, 12  # the first round is a warm-up, not counted
BUCKETS = ROUNDS * PER_ROUND
EVENT = "bench"
COLUMNS = (
    "id, event_id, subject_pseudonym, start_at, expires_at, key_id, nonce, ciphertext, "
    "commitment, created_at, bucket_id, duration_ms, sample_rate, speech_frames, byte_length"
)


def _round_time(r: int) -> datetime:
    """When round r's buckets (hours 24r .. 24r+23, 1 h retention) have all expired."""
    return NOW + timedelta(hours=PER_ROUND * (r + 1) + 1)


def _open_buckets(runtime: Runtime) -> list[str]:
    """One real sealed record per hour: creates the bucket row and its key in the key store."""
    store = runtime.store
    with store.transaction(NOW, actor="bench") as tx:
        tx.register_event(
            EVENT,
            name="bench",
            starts_at=NOW,
            ends_at=NOW + timedelta(days=6),
            policy_name="spotify-2026",
            policy_sha256="0" * 64,
        )
        for hour in range(BUCKETS):
            tx.put_raw(
                event_id=EVENT,
                pseudonym=None,
                start_at=NOW + timedelta(hours=hour),
                pcm=os.urandom(64),
                sample_rate=16000,
                retention=timedelta(hours=1),
            )
    return [bucket_id_for(EVENT, RAW_AUDIO, NOW + timedelta(hours=h)) for h in range(BUCKETS)]


def _rows(count: int, bucket_ids: list[str], sqlite: bool) -> Iterator[tuple]:
    """Rows in time order (as a live event writes them), random ids like the store's uuid4."""
    created = NOW.replace(tzinfo=None) if sqlite else NOW
    per_bucket, extra = divmod(count, BUCKETS)
    for hour in range(BUCKETS):
        for j in range(per_bucket + (1 if hour < extra else 0)):
            start = NOW + timedelta(hours=hour, milliseconds=j)
            if sqlite:
                start = start.replace(tzinfo=None)
            blob = os.urandom(92)
            yield (
                blob[76:].hex(),
                EVENT,
                None,
                start,
                start + timedelta(hours=1),
                bucket_ids[hour],
                blob[:12],
                blob[12:60],
                blob[60:76],
                created,
                bucket_ids[hour],
                30,
                16000,
                0,
                32,
            )


def _bulk_insert(runtime: Runtime, count: int, bucket_ids: list[str]) -> None:
    raw = runtime.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if runtime.engine.dialect.name == "sqlite":
            fmt = "%Y-%m-%d %H:%M:%S.%f"
            cursor.execute("BEGIN")
            chunk: list[tuple] = []
            sql = f"INSERT INTO raw_segments ({COLUMNS}) VALUES ({', '.join('?' * 15)})"
            for row in _rows(count, bucket_ids, sqlite=True):
                row = (
                    *row[:3],
                    row[3].strftime(fmt),
                    row[4].strftime(fmt),
                    *row[5:9],
                    row[9].strftime(fmt),
                    *row[10:],
                )
                chunk.append(row)
                if len(chunk) == 50_000:
                    cursor.executemany(sql, chunk)
                    chunk.clear()
            cursor.executemany(sql, chunk)
            cursor.execute("COMMIT")
        else:
            with cursor.copy(f"COPY raw_segments ({COLUMNS}) FROM STDIN") as copy:
                for row in _rows(count, bucket_ids, sqlite=False):
                    copy.write_row(row)
            raw.commit()
            cursor.execute("ANALYZE raw_segments")
            raw.commit()
        cursor.close()
    finally:
        raw.close()
    truncate_sqlite_wal(runtime.engine)


def _assert_unreadable(runtime: Runtime, bucket_ids: list[str]) -> None:
    """Shredded means undecryptable now, before any row is deleted."""
    store = runtime.store
    with store.session() as session:
        rows = list(
            session.scalars(
                select(RawSegment).where(RawSegment.bucket_id.in_(bucket_ids)).limit(50)
            )
        )
    assert rows
    for row in rows:
        try:
            store._open_raw(row, NOW)  # pretend it is still within retention: the key decides
        except RecordShreddedError:
            continue
        raise AssertionError(f"row {row.id} still decrypts after its bucket was shredded")


def run_size(count: int, db_url: str | None) -> tuple[float, float, int]:
    """Median shred seconds (24 buckets), delete seconds (all rows), rows deleted."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = initialise_home(Path(tmp) / "home", db_url=db_url)
        runtime = open_runtime(settings, NOW)
        try:
            bucket_ids = _open_buckets(runtime)
            _bulk_insert(runtime, count - BUCKETS, bucket_ids)
            # flush the bulk insert's dirty pages now: otherwise the key store's fsync during
            # the shred waits for the file system to write them back, and we would time that
            os.sync()
            shred_times = []
            report = PurgeReport(run_id=0, as_of=NOW)
            with BucketLocker(runtime.engine) as locks:
                for r in range(ROUNDS):
                    at = _round_time(r)
                    before = len(report.buckets_shredded)
                    start = time.perf_counter()
                    shred_expired(runtime.store, now=at, report=report, locks=locks)
                    shred_times.append(time.perf_counter() - start)
                    assert len(report.buckets_shredded) - before == PER_ROUND
                    _assert_unreadable(runtime, report.buckets_shredded[before:])
                start = time.perf_counter()
                delete_shredded(
                    runtime.store,
                    now=_round_time(ROUNDS - 1),
                    report=report,
                    locks=locks,
                    batch=5000,
                )
                truncate_sqlite_wal(runtime.engine)
                delete = time.perf_counter() - start
            assert report.rows_deleted == count, (report.rows_deleted, count)
            print(
                f"    ({count:,} rows) shred rounds ms: "
                + " ".join(f"{t * 1000:.0f}" for t in shred_times)
            )
            return statistics.median(shred_times[1:]), delete, report.rows_deleted
        finally:
            runtime.close()


def _pg_schema() -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return schema, f"{PG_URL}?options=-csearch_path%3D{schema}"


def _drop(schema: str) -> None:
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="10000,100000,1000000",
        help="comma-separated row counts; the first is the baseline",
    )
    parser.add_argument("--quick", action="store_true", help="10k and 100k rows only")
    parser.add_argument(
        "--postgres", action="store_true", help="also run on PostgreSQL (FLOWAUDIT_BENCH_PG_URL)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes = [s for s in sizes if s <= 100_000]
    backends = ["sqlite"] + (["postgresql"] if args.postgres else [])
    print(
        f"{BUCKETS} hourly buckets, shred = median of {ROUNDS - 1} rounds x {PER_ROUND} "
        "buckets (after one warm-up round); "
        "delete = every row, batches of 5,000"
    )
    for backend in backends:
        print(f"\n{backend}")
        print(
            f"{'rows':>10}  {'shred':>9} {'vs base':>8}  {'delete':>9} {'vs base':>8}  "
            f"{'delete/shred':>12}"
        )
        base: tuple[float, float] | None = None
        verdict = []
        for count in sizes:
            schema = None
            url = None
            if backend == "postgresql":
                schema, url = _pg_schema()
            try:
                shred, delete, _ = run_size(count, url)
            finally:
                if schema:
                    _drop(schema)
            base = base or (shred, delete)
            print(
                f"{count:>10,}  {shred * 1000:>7.1f}ms {shred / base[0]:>7.2f}x  "
                f"{delete:>8.2f}s {delete / base[1]:>7.2f}x  {delete / shred:>11.0f}x"
            )
            verdict.append((count, shred / base[0]))
        worst = max(r for _, r in verdict)
        print(
            f"  shred at {verdict[-1][0]:,} rows = {verdict[-1][1]:.2f}x the {sizes[0]:,}-row "
            f"shred (target <= 2x): {'met' if worst <= 2 else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
