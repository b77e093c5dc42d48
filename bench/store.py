"""Store throughput on 10-second 16 kHz segments, against raw AES-GCM in the same run.

    .venv/bin/python -P bench/store.py [--segments N] [--quick] [--no-postgres]

For each backend it writes N segments through `EncryptedStore` (HKDF record keys, AES-256-GCM
with AAD, key commitment, database insert, audit entry in the same transaction), then reads them
back, and prints MB/s next to a bare `AESGCM.encrypt/decrypt` loop over the same segments.
Targets: ≥ 0.5 of raw AES-GCM on SQLite, ≥ 0.3 on PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import create_engine, text

from flowaudit.runtime import initialise_home, open_runtime

SEGMENT_BYTES = 16_000 * 2 * 10  # 10 s of 16 kHz mono int16
PG_URL = os.environ.get(
    "FLOWAUDIT_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
NOW = datetime(2026, 6, 21, 20, 0, tzinfo=UTC)


def raw_aes_gcm(segments: list[bytes]) -> tuple[float, float]:
    """Seconds to encrypt and to decrypt every segment with one key, as the baseline."""
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    aad = b"bench"
    start = time.perf_counter()
    sealed = []
    for pcm in segments:
        nonce = os.urandom(12)
        sealed.append((nonce, aead.encrypt(nonce, pcm, aad)))
    enc = time.perf_counter() - start
    start = time.perf_counter()
    for nonce, blob in sealed:
        aead.decrypt(nonce, blob, aad)
    return enc, time.perf_counter() - start


def store_round(
    home: Path, db_url: str | None, segments: list[bytes], batch: int
) -> tuple[float, float]:
    settings = initialise_home(home, db_url=db_url)
    rt = open_runtime(settings, NOW)
    store = rt.store
    with store.transaction(NOW) as tx:
        tx.register_event(
            "bench",
            name="bench",
            starts_at=NOW,
            ends_at=NOW + timedelta(hours=6),
            policy_name="spotify-2026",
            policy_sha256="0" * 64,
        )
        wristbands = [tx.register_subject(f"WB-{i:05d}") for i in range(16)]
    ids: list[str] = []
    start = time.perf_counter()
    for first in range(0, len(segments), batch):
        with store.transaction(NOW, actor="bench") as tx:
            for i, pcm in enumerate(segments[first : first + batch], start=first):
                ids.append(
                    tx.put_raw(
                        event_id="bench",
                        pseudonym=wristbands[i % len(wristbands)],
                        start_at=NOW + timedelta(seconds=10 * (i // len(wristbands))),
                        pcm=pcm,
                        sample_rate=16000,
                        retention=timedelta(hours=72),
                    )
                )
    write = time.perf_counter() - start
    start = time.perf_counter()
    total = sum(len(s.pcm) for s in store.iter_raw(now=NOW, event_id="bench", batch=batch))
    read = time.perf_counter() - start
    assert total == len(segments) * SEGMENT_BYTES
    rt.close()
    return write, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=300)
    parser.add_argument("--batch", type=int, default=50, help="segments per transaction")
    parser.add_argument("--quick", action="store_true", help="60 segments")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    count = 60 if args.quick else args.segments
    segments = [os.urandom(SEGMENT_BYTES) for _ in range(count)]
    megabytes = count * SEGMENT_BYTES / 1e6
    enc, dec = raw_aes_gcm(segments)
    print(f"{count} segments x 10 s (16 kHz int16) = {megabytes:.0f} MB")
    print(
        f"{'raw AES-GCM':<12} write {megabytes / enc:8.1f} MB/s   read {megabytes / dec:8.1f} MB/s"
    )
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if not args.no_postgres:
        backends.append(("postgresql", None))
    for name, _ in backends:
        with tempfile.TemporaryDirectory() as tmp:
            url = None
            schema = None
            if name == "postgresql":
                schema = f"bench_{uuid.uuid4().hex[:8]}"
                admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE SCHEMA "{schema}"'))
                url = f"{PG_URL}?options=-csearch_path%3D{schema}"
            try:
                write, read = store_round(Path(tmp) / "home", url, segments, args.batch)
            finally:
                if schema:
                    with admin.connect() as conn:
                        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                    admin.dispose()
        # throughput ratio: store MB/s over raw AES-GCM MB/s, i.e. raw time over store time
        print(
            f"{name:<12} write {megabytes / write:8.1f} MB/s ({enc / write:.2f} of raw)   "
            f"read {megabytes / read:8.1f} MB/s ({dec / read:.2f} of raw)"
        )


if __name__ == "__main__":
    main()
