"""Key-management cost: KEK rotation against key count, and the shred-ledger check on open.

    .venv/bin/python -P bench/keys.py [--quick]

1. **File KEK rotation** of a key store holding N keys (1k, 10k, 100k; ``--quick``: 1k, 10k):
   ``rotate_file_kek`` (snapshot, new key file, keystore.bin re-sealed, rename). Baseline in the
   same run: one ordinary key-store write of the same store (``flush`` of one new key), which
   re-seals the whole file too — so the ratio is what rotation adds beyond a normal write.
2. **Shred-ledger check on open** (``check_key_store``) on a SQLite log of M entries (100k;
   ``--quick``: 20k) of which 1 % are ``bucket.shred`` entries: from the key store's recorded
   position (the usual case: nothing newer), and from 0 (a key store that never recorded one:
   the whole ledger is read). Baseline: ``db.check_schema``, which every open already runs.
3. **Transit rotation** (if the ``bao`` binary is installed): an OpenBao dev server on a free
   loopback port, N wrapped keys (1k); ``rotate_transit`` (rotate + batch rewrap + file
   replace) against the baseline of wrapping the same N keys once (batch encrypt).

CPU time would miss the server's share, so wall time (best of 3) is reported; the machine is
shared, so read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402

from retention import _crypto, db  # noqa: E402
from retention.keys import FileKeyStore, load_master_key  # noqa: E402
from retention.ledger import check_key_store  # noqa: E402
from retention.models import AuditEntry  # noqa: E402
from retention.rotation import rotate_file_kek  # noqa: E402

NOW = datetime(2026, 6, 21, 20, tzinfo=UTC)


def best(fn: Callable[[], object], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _file_store(root: Path, n: int) -> tuple[Path, FileKeyStore]:
    root.mkdir(parents=True)
    master = root / "master.key"
    master.write_bytes(base64.b64encode(os.urandom(32)) + b"\n")
    os.chmod(master, 0o600)
    store = FileKeyStore.create(root / "keystore.bin", load_master_key(master, {}))
    for i in range(n):
        store.bucket_key(f"fete:raw_audio:{i:08d}", create=True)
    store.flush()
    return master, store


def bench_rotation(sizes: list[int], tmp: Path) -> None:
    print("1. file KEK rotation (wall, best of 3)")
    print(f"   {'keys':>8} {'one write ms':>13} {'rotate ms':>10} {'ratio':>6}")
    for n in sizes:
        master, store = _file_store(tmp / f"rot{n}", n)
        base, rotate = _rotation_times(master, store)
        print(f"   {n:>8} {base * 1e3:>13.1f} {rotate * 1e3:>10.1f} {rotate / base:>6.2f}")


def _rotation_times(master: Path, store: FileKeyStore) -> tuple[float, float]:
    counter = iter(range(10**9))

    def write() -> None:
        store.bucket_key(f"extra:{next(counter)}", create=True)
        store.flush()

    return best(write), best(lambda: rotate_file_kek(master, store, NOW))


def bench_ledger(entries: int, tmp: Path) -> None:
    url = f"sqlite:///{tmp / 'ledger.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    rows = []
    for seq in range(1, entries + 1):
        shred = seq % 100 == 0
        rows.append({
            "seq": seq, "at": NOW, "actor": "bench",
            "action": "bucket.shred" if shred else "raw.put",
            "object_type": "x", "object_id": str(seq),
            "details": {"bucket_ids": [f"b{seq}"]} if shred else {"subject": "p"},
            "prev_hash": "0" * 64, "hash": "0" * 64,
        })  # fmt: skip
    with engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(insert(AuditEntry), rows[start : start + 5000])
    _master, keys = _file_store(tmp / "ledger-keys", 100)
    base = best(lambda: db.check_schema(engine), runs=5)
    check_key_store(engine, keys)  # the store now knows the head…
    keys.bucket_key("one-more", create=True)
    keys.flush()  # …and records it with its next write
    incremental = best(lambda: check_key_store(engine, keys), runs=5)
    full = best(lambda: check_key_store(engine, keys, after_seq=0), runs=5)
    print(f"2. shred-ledger check on open, SQLite log of {entries} entries "
          f"({entries // 100} shred entries), wall best of 5")
    print(f"   baseline check_schema     {base * 1e3:8.2f} ms")
    print(f"   ledger from its position  {incremental * 1e3:8.2f} ms  "
          f"ratio {incremental / base:.2f}")
    print(f"   ledger from 0 (full)      {full * 1e3:8.2f} ms  ratio {full / base:.2f}")
    engine.dispose()


def bench_transit(n: int, tmp: Path) -> None:
    bao = Path(sys.executable).parent / "bao"
    if not bao.exists():
        print("3. transit: skipped (no bao binary; run `make setup`)")
        return
    import hvac

    from retention.transit import (
        TransitClient,
        TransitConfig,
        TransitKeyStore,
        create_transit_store,
        rotate_transit,
    )
    from tests.servers import free_port, wait_for_port

    port, token = free_port(), os.urandom(8).hex()
    proc = subprocess.Popen(
        [str(bao), "server", "-dev", f"-dev-listen-address=127.0.0.1:{port}",
         f"-dev-root-token-id={token}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, process=proc)
        address = f"http://127.0.0.1:{port}"
        hvac.Client(url=address, token=token).sys.enable_secrets_engine("transit")
        config = TransitConfig(address=address, token=token, key="bench")
        client = TransitClient(config)
        client.ensure_key()
        raw = [_crypto.random_key() for _ in range(n)]
        base = best(lambda: client.encrypt_many(raw))
        state = {
            "buckets": {f"b{i}": base64.b64encode(k).decode() for i, k in enumerate(raw)},
            "subjects": {}, "destroyed_buckets": {}, "destroyed_subjects": {},
            "ledger_seq": 0, "pepper": base64.b64encode(_crypto.random_key()).decode(),
        }  # fmt: skip
        path = tmp / "keystore.transit.json"
        create_transit_store(path, config, state)
        store = TransitKeyStore(path, client)
        rotate = best(lambda: rotate_transit(store, NOW, trim=False))
        trim = best(lambda: rotate_transit(store, NOW, trim=True), runs=1)
        print(f"3. Transit (OpenBao dev server), {n} wrapped keys, wall")
        print(f"   baseline wrap {n} keys     {base * 1e3:8.1f} ms")
        print(f"   rotate + rewrap           {rotate * 1e3:8.1f} ms  ratio {rotate / base:.2f}")
        print(f"   rotate + rewrap + trim    {trim * 1e3:8.1f} ms  ratio {trim / base:.2f}")
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bench_rotation([1000, 10000] if args.quick else [1000, 10000, 100000], root)
        bench_ledger(20000 if args.quick else 100000, root)
        bench_transit(1000, root)


if __name__ == "__main__":
    main()
