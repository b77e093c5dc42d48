"""Key-management cost: KEK rotation against key count, and the shred-ledger check on open.

    .venv/bin/python -P bench/keys.py [--quick] [--pg postgresql+psycopg://…/test]

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
4. **Shared key store** (same server, KV v2 at ``secret/``, 1k keys): creating a key (wrap +
   ``cas=0`` write) and destroying one (tombstone + destroy of old versions) against the file
   store doing the same (one key-store write each) in the same run; the first use of a key in a
   process (KV read + Transit decrypt); the destroy check every store transaction and read
   session runs (``follow_ledger`` on the SQLite log of part 2, nothing new) against a bare
   ``SELECT 1`` on the same session and the file store's per-use check (``--pg URL``: on
   PostgreSQL too); a whole-store read
   and a rotation (rewrap entry by entry).

CPU time would miss the server's share, so wall time (best of 3) is reported; the machine is
shared, so read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from retention import _crypto, db  # noqa: E402
from retention.keys import FileKeyStore, load_master_key  # noqa: E402
from retention.ledger import check_key_store  # noqa: E402
from retention.models import AuditEntry  # noqa: E402
from retention.rotation import rotate_file_kek  # noqa: E402
from tests._pg import fresh_schema  # noqa: E402

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


def _ledger_engine(entries: int, tmp: Path, url: str | None = None) -> Engine:
    """An audit log (SQLite unless ``url``) of ``entries`` entries, 1 % ``bucket.shred``."""
    url = url or f"sqlite:///{tmp / 'ledger.db'}"
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
    return engine


def bench_ledger(entries: int, tmp: Path) -> Engine:
    engine = _ledger_engine(entries, tmp)
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
    return engine


@contextlib.contextmanager
def _bao() -> Iterator[tuple[str, str] | None]:
    """An OpenBao dev server (Transit enabled, KV v2 at secret/): (address, token)."""
    bao = Path(sys.executable).parent / "bao"
    if not bao.exists():
        yield None
        return
    import hvac

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
        yield address, token
    finally:
        proc.terminate()
        proc.wait()


def bench_transit(n: int, tmp: Path, server: tuple[str, str] | None) -> None:
    if server is None:
        print("3. transit: skipped (no bao binary; run `make setup`)")
        return
    from retention.transit import (
        TransitClient,
        TransitConfig,
        TransitKeyStore,
        create_transit_store,
        rotate_transit,
    )

    address, token = server
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


def _per_op(fn: Callable[[int], object], ops: int = 20, runs: int = 3) -> float:
    """Best of ``runs`` loops of ``ops`` calls, per call (each call gets a fresh index)."""
    counter = iter(range(10**9))

    def loop() -> None:
        for _ in range(ops):
            fn(next(counter))

    return best(loop, runs) / ops


def bench_shared(
    n: int, tmp: Path, server: tuple[str, str] | None, engine: Engine, pg_url: str | None
) -> None:
    if server is None:
        print("4. shared: skipped (no bao binary; run `make setup`)")
        return
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from retention.shared_keys import KvLocation, create_shared_store, open_shared_store
    from retention.transit import TransitConfig, rotate_transit

    address, token = server
    config = TransitConfig(address=address, token=token, key="bench-shared")
    _master, file_store = _file_store(tmp / "shared-src", n)
    create_shared_store(config, KvLocation(path="bench"), file_store.snapshot(), wrapped=False)
    shared = open_shared_store(config, KvLocation(path="bench"))

    def file_create(i: int) -> None:
        file_store.bucket_key(f"new:{i}", create=True)
        file_store.flush()

    def shared_create(i: int) -> None:
        shared.bucket_key(f"new:{i}", create=True)

    create_file, create_shared = _per_op(file_create), _per_op(shared_create)
    destroy_file = _per_op(lambda i: file_store.destroy_bucket_keys([f"new:{i}"], NOW))
    destroy_shared = _per_op(lambda i: shared.destroy_bucket_keys([f"new:{i}"], NOW))

    def cold(i: int) -> None:  # a key this process has not unwrapped yet
        shared._state["buckets"].clear()
        shared._plain.clear()
        shared.bucket_key(f"fete:raw_audio:{i % n:08d}")

    first_use = _per_op(cold)
    listing = best(shared.snapshot, runs=1)  # status, backup: list + read every entry
    rotation = best(lambda: rotate_transit(shared, NOW, trim=False), runs=1)
    def check(on: Engine) -> tuple[float, float]:
        shared._seen_seq = 0
        with Session(on) as session:
            shared.follow_ledger(session)  # from 0 to the head once
            follow = _per_op(lambda _i: shared.follow_ledger(session), ops=200)
            round_trip = _per_op(lambda _i: session.execute(text("SELECT 1")), ops=200)
        return follow, round_trip

    follow, round_trip = check(engine)
    pg = None
    if pg_url:
        with fresh_schema(pg_url) as url:
            pg_engine = _ledger_engine(100000, tmp, url)
            pg = check(pg_engine)
            pg_engine.dispose()
    stat_check = _per_op(lambda i: file_store.is_bucket_destroyed(f"x{i}"), ops=200)
    print(f"4. shared key store (KV v2 + Transit, OpenBao dev server), {n} keys, wall per op")
    print(f"   create a key      file {create_file * 1e3:7.2f} ms  shared "
          f"{create_shared * 1e3:7.2f} ms  ratio {create_shared / create_file:.2f}")
    print(f"   destroy a key     file {destroy_file * 1e3:7.2f} ms  shared "
          f"{destroy_shared * 1e3:7.2f} ms  ratio {destroy_shared / destroy_file:.2f}")
    print(f"   first use of a key (KV read + Transit decrypt)  {first_use * 1e3:7.2f} ms")
    print(f"   whole-store read (status, backup)  {listing * 1e3:7.0f} ms;  rotate + rewrap "
          f"entry by entry {rotation * 1e3:7.0f} ms (the Transit file store above: "
          "one batch rewrap + one file)")
    print(f"   destroy check per transaction (follow_ledger, SQLite log, nothing new) "
          f"{follow * 1e3:.3f} ms = {follow / round_trip:.1f}x a bare SELECT 1 "
          f"({round_trip * 1e3:.3f} ms); the file store's per-use check (stat) "
          f"{stat_check * 1e3:.4f} ms")
    if pg is not None:
        print(f"   the same check on PostgreSQL (log of 100000 entries) {pg[0] * 1e3:.3f} ms "
              f"= {pg[0] / pg[1]:.1f}x a bare SELECT 1 ({pg[1] * 1e3:.3f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pg", metavar="URL", default=os.environ.get("FLOWAUDIT_BENCH_PG"),
                        help="also measure part 4's destroy check on this PostgreSQL database "
                        "(a fresh schema, dropped after)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bench_rotation([1000, 10000] if args.quick else [1000, 10000, 100000], root)
        engine = bench_ledger(20000 if args.quick else 100000, root)
        with _bao() as server:
            bench_transit(1000, root, server)
            bench_shared(1000, root, server, engine, args.pg)
        engine.dispose()


if __name__ == "__main__":
    main()
