"""Audit-log cost: append overhead on the pipeline and on bare store writes, verify speed, and
Merkle proof generation and verification against log size.

    .venv/bin/python -P bench/audit.py [--quick] [--entries N] [--windows N] [--wristbands N]
                                       [--proof-sizes 1000,10000,...]

1. **Append overhead in the pipeline.** ``run_event`` over the bundled demo event (synthetic
   crowd, gates, features, sentiment, selection, encrypted store) with the hash-chained
   ``AuditLog`` (signer attached: a checkpoint every 1000 entries and one at the end) and with a
   recorder that writes nothing. The share of the pipeline's CPU time spent on the log is
   ``1 − t_none / t_audit``. Target ≤ 10 %.
2. **Append overhead on bare store writes** — the harshest case, no audio work at all: one
   transaction per window with each wristband's sealed window score (and, for the raw case, a
   sealed 1-second PCM segment), the crowd aggregate and a drop-count entry.
3. **Verify speed.** A log of N entries (default 1M) shaped like the pipeline's is generated
   with the real hash functions, then ``verify_log`` streams and re-hashes it; the baseline is a
   plain ``hashlib.sha256`` loop over the same bytes (prev hash ‖ canonical entry) already in
   memory. Target ≥ 200k entries/s. The verifier also rebuilds the Merkle tree (two more
   SHA-256 per entry on average) and compares the stored nodes.
4. **Proofs against log size.** On the same log, at 1k, 10k, 100k and 1M entries (``--quick``:
   up to 50k), a signed checkpoint per size; for 200 random entries: the inclusion proof from
   the stored tree (``StoredTree.inclusion``: one indexed query for the stored nodes and one
   range of <= 16 entries), the full bundle (``inclusion_bundle``: proof, entry bytes, checkpoint
   note checked, bundle self-verified), its offline verification (``verify_bundle``), and a
   consistency proof from half the size. Baselines measured in the same run: one bare SHA-256
   per tree level (the floor of any O(log n) proof check), and recomputing the root from all
   leaf hashes in memory (what a proof saves). Goal < 1 ms per proof at 1M entries.

CPU time (``time.process_time``) is compared, best of several interleaved runs, because wall
time on a shared machine mostly measures the neighbours.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from audit.log.chain import (
    GENESIS_HASH,
    AuditLog,
    canonical_entry,
    entry_hash,
    normalise_details,
    read_head,
)
from audit.log.checkpoints import (
    TREE_ORIGIN,
    CheckpointSigner,
    attach_signer,
    checkpoint_after_command,
    load_signer,
)
from audit.log.merkle import MemoryTree, leaf_hash
from audit.log.notes import Verifier, key_hash
from audit.log.proofs import consistency_bundle, inclusion_bundle, verify_bundle
from audit.log.tree import StoredTree, rebuild_nodes
from audit.log.verify import verify_log
from flowaudit.runtime import Runtime, initialise_home, open_runtime
from pipeline.event import default_event_file
from retention.models import AuditEntry
from retention.store import EncryptedStore

START = datetime(2026, 6, 21, 18, 0, tzinfo=UTC)
PCM_SECOND = bytes(range(256)) * 125  # 32 000 bytes: 1 s of 16 kHz int16


class NullRecorder:
    """Writes no audit entry: the baseline for the append overhead."""

    def record(self, session: Session, **_: Any) -> None:
        return None


def _workload(runtime: Runtime, windows: int, wristbands: int, raw: bool) -> tuple[float, float]:
    """(wall, CPU) seconds to write ``windows`` pipeline-like transactions."""
    store = runtime.store
    with store.transaction(START, actor="pipeline") as tx:
        tx.register_event(
            "bench",
            name="bench",
            starts_at=START,
            ends_at=START + timedelta(hours=6),
            policy_name="bench",
            policy_sha256="0" * 64,
        )
        bands = [tx.register_subject(f"WB-{i:05d}", zone="A") for i in range(wristbands)]
    began, cpu = time.perf_counter(), time.process_time()
    for w in range(windows):
        at = START + timedelta(seconds=w)
        with store.transaction(at + timedelta(seconds=1), actor="pipeline") as tx:
            for pseudonym in bands:
                if raw:
                    tx.put_raw(
                        event_id="bench",
                        pseudonym=pseudonym,
                        start_at=at,
                        pcm=PCM_SECOND,
                        sample_rate=16000,
                        retention=timedelta(hours=72),
                    )
                tx.put_metadata(
                    event_id="bench",
                    pseudonym=pseudonym,
                    kind="window_score",
                    start_at=at,
                    payload={"sentiment": 61.5, "level": -23.1, "voiced": 0.12, "onsets": 3},
                    retention=timedelta(days=30),
                )
            tx.put_metadata(
                event_id="bench",
                pseudonym=None,
                kind="crowd_score",
                start_at=at,
                payload={"crowd": 60.2, "zones": {"A": 60.2}},
                retention=timedelta(days=30),
                anonymised=True,
            )
            tx.audit("capture.drop", "event", "bench", {"window": w, "vad": 12, "consent": 0})
    if isinstance(store.recorder, AuditLog):
        checkpoint_after_command(runtime)
    return time.perf_counter() - began, time.process_time() - cpu


def _fresh(root: Path, name: str, audited: bool) -> Runtime:
    settings = initialise_home(root / name, environ={})
    runtime = open_runtime(settings, START, environ={})
    if audited:
        attach_signer(runtime)
    else:
        runtime.store = EncryptedStore(
            runtime.engine, runtime.keys, master_key=_master(settings), recorder=NullRecorder()
        )
    return runtime


def _master(settings: Any) -> bytes:
    from retention.keys import load_master_key

    return load_master_key(settings.master_key_file, {})


def append_overhead(windows: int, wristbands: int, raw: bool, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` wall and CPU time with and without the log, runs interleaved."""
    best = {(mode, clock): float("inf") for mode in ("audit", "none") for clock in ("wall", "cpu")}
    for r in range(repeats):
        for mode in ("none", "audit") if r % 2 == 0 else ("audit", "none"):
            with tempfile.TemporaryDirectory() as tmp:
                runtime = _fresh(Path(tmp), mode, audited=mode == "audit")
                try:
                    wall, cpu = _workload(runtime, windows, wristbands, raw)
                finally:
                    runtime.close()
            best[mode, "wall"] = min(best[mode, "wall"], wall)
            best[mode, "cpu"] = min(best[mode, "cpu"], cpu)
    return {
        "wall_audit": best["audit", "wall"],
        "wall_none": best["none", "wall"],
        "cpu_audit": best["audit", "cpu"],
        "cpu_none": best["none", "cpu"],
        "share_wall": 1 - best["none", "wall"] / best["audit", "wall"],
        "share_cpu": 1 - best["none", "cpu"] / best["audit", "cpu"],
    }


# -- the real pipeline ---------------------------------------------------------------------------
EXAMPLES = default_event_file().parent  # the demo event shipped in the pipeline package


def _small_event(target: Path, wristbands: int) -> Path:
    """The bundled demo event with ``wristbands`` generated wristbands and absolute paths."""
    source = (EXAMPLES / "fete-2026.toml").read_text(encoding="utf-8")
    source = re.sub(r"(?m)^count = \d+", f"count = {wristbands}", source)
    source = source.replace('"catalogue.csv"', f'"{EXAMPLES / "catalogue.csv"}"')
    source = source.replace('"artist/', f'"{EXAMPLES}/artist/')
    target.write_text(source, encoding="utf-8")
    return target


def pipeline_overhead(policy_name: str, wristbands: int, repeats: int) -> dict[str, float]:
    """CPU seconds of ``run_event`` with and without the log (best of ``repeats``)."""
    from pipeline.event import load_event
    from pipeline.run import run_event
    from pipeline.sources import open_source
    from retention.policy import load_policy

    policy = load_policy(policy_name)
    best = {"audit": float("inf"), "none": float("inf")}
    entries = 0
    for r in range(repeats):
        for mode in ("none", "audit") if r % 2 == 0 else ("audit", "none"):
            with tempfile.TemporaryDirectory() as tmp:
                spec = load_event(_small_event(Path(tmp) / "event.toml", wristbands))
                runtime = _fresh(Path(tmp), mode, audited=mode == "audit")
                try:
                    source = open_source("synth", spec)
                    cpu = time.process_time()
                    run_event(runtime.store, spec, policy, source, source_label="synth")
                    if mode == "audit":
                        checkpoint_after_command(runtime)
                    best[mode] = min(best[mode], time.process_time() - cpu)
                    if mode == "audit":
                        with runtime.store.session() as session:
                            entries = read_head(session)[0]
                finally:
                    runtime.close()
    return {
        "cpu_audit": best["audit"],
        "cpu_none": best["none"],
        "share": 1 - best["none"] / best["audit"],
        "entries": entries,
    }


# -- verify speed ---------------------------------------------------------------------------------
def build_log(
    runtime: Runtime, entries: int, chunk: int = 20000, bodies: list[bytes] | None = None
) -> list[bytes]:
    """Insert ``entries`` chained entries (real hash functions) and build their Merkle tree as
    migration 0003 does; return the chain-hashed bytes (and the leaves' data in ``bodies``)."""
    prev, hashed = GENESIS_HASH, []
    rows: list[dict[str, Any]] = []
    signer = load_signer(runtime.settings.signing_key_file)
    assert signer is not None
    actions = ("metadata.put", "metadata.put", "metadata.put", "raw.put", "capture.drop")
    with runtime.engine.begin() as conn:
        for seq in range(1, entries + 1):
            at = START + timedelta(milliseconds=250 * (seq // 40))
            action = actions[seq % len(actions)]
            details = normalise_details(
                {
                    "event": "bench",
                    "subject": hashlib.sha256(str(seq % 500).encode()).hexdigest(),
                    "bucket": f"bench:metadata:{at:%Y%m%dT%H}",
                    "kind": "window_score",
                }
                if action != "capture.drop"
                else {"window": seq, "vad": seq % 17, "consent": 0, "window_only": 1}
            )
            body = canonical_entry(
                seq, at, "pipeline", action, "record", f"{seq:032x}", json.dumps(details)
            )
            digest = entry_hash(prev, body)
            hashed.append(prev.encode() + body)
            if bodies is not None:
                bodies.append(body)
            rows.append(
                {
                    "seq": seq,
                    "at": at,
                    "actor": "pipeline",
                    "action": action,
                    "object_type": "record",
                    "object_id": f"{seq:032x}",
                    "details": details,
                    "prev_hash": prev,
                    "hash": digest,
                }
            )
            prev = digest
            if len(rows) == chunk:
                conn.execute(insert(AuditEntry.__table__), rows)
                rows = []
        if rows:
            conn.execute(insert(AuditEntry.__table__), rows)
        rebuild_nodes(conn)
    runtime.now = START + timedelta(days=1)
    checkpoint_after_command(runtime)
    return hashed


def sha_baseline(hashed: list[bytes]) -> float:
    sha256 = hashlib.sha256
    began = time.perf_counter()
    for blob in hashed:
        sha256(blob).hexdigest()
    return time.perf_counter() - began


def _median_ms(samples: list[float]) -> float:
    ordered = sorted(samples)
    return 1000 * ordered[len(ordered) // 2]


def _sign_size(conn: Any, signer: CheckpointSigner, size: int) -> Any:
    """A Merkle checkpoint row of ``size`` (as a command would have signed it)."""
    from sqlalchemy import text

    from retention.models import AuditCheckpoint

    head = conn.execute(text("SELECT hash FROM audit_log WHERE seq = :s"), {"s": size}).scalar()
    row = signer.checkpoint(size, head, START + timedelta(days=1), StoredTree(conn, size).root())
    conn.execute(
        insert(AuditCheckpoint),
        [
            {
                "seq": row.seq,
                "head_hash": row.head_hash,
                "at": row.at,
                "key_id": row.key_id,
                "signature": row.signature,
                "tree_size": row.tree_size,
                "root_hash": row.root_hash,
            }
        ],
    )
    return row


def proof_speed(
    runtime: Runtime, bodies: list[bytes], sizes: list[int], samples: int = 200
) -> list[dict[str, float]]:
    """Per-proof times (median ms) at each size, with the two baselines."""
    import random

    signing_key = load_signer(runtime.settings.signing_key_file)
    assert signing_key is not None
    public = signing_key.public_key
    verifier = Verifier(TREE_ORIGIN, key_hash(TREE_ORIGIN, public), public)
    rng = random.Random(7)
    leaves = [leaf_hash(b) for b in bodies]
    out = []
    with runtime.engine.connect() as conn:
        for size in sizes:
            checkpoint = _sign_size(conn, signing_key, size)
            half = _sign_size(conn, signing_key, max(1, size // 2))
            conn.commit()
            checkpoint.id, half.id = 0, 0
            seqs = [rng.randint(1, size) for _ in range(samples)]
            gen, bundle_t, check, cons, floor = [], [], [], [], []
            bundles = []
            for seq in seqs:
                t = time.perf_counter()
                StoredTree(conn, size).inclusion(seq - 1)
                gen.append(time.perf_counter() - t)
                t = time.perf_counter()
                bundles.append(inclusion_bundle(conn, seq, checkpoint, public))
                bundle_t.append(time.perf_counter() - t)
            for bundle in bundles:
                t = time.perf_counter()
                verify_bundle(bundle, verifier)
                check.append(time.perf_counter() - t)
            for _ in range(min(samples, 50)):
                t = time.perf_counter()
                StoredTree(conn, size).consistency(max(1, size // 2))
                cons.append(time.perf_counter() - t)
            depth = max(1, (size - 1).bit_length())
            node = bytes(65)
            for _ in range(samples):
                t = time.perf_counter()
                for _level in range(depth):
                    hashlib.sha256(node).digest()
                floor.append(time.perf_counter() - t)
            t = time.perf_counter()
            tree = MemoryTree()
            for h in leaves[:size]:
                tree.append_hash(h)
            root = tree.root()
            from_leaves = time.perf_counter() - t
            assert root.hex() == checkpoint.root_hash
            consistency_bundle(conn, half, checkpoint, public)  # checks itself
            out.append(
                {
                    "size": size,
                    "depth": depth,
                    "gen_ms": _median_ms(gen),
                    "bundle_ms": _median_ms(bundle_t),
                    "verify_ms": _median_ms(check),
                    "consistency_ms": _median_ms(cons),
                    "floor_ms": _median_ms(floor),
                    "from_leaves_ms": 1000 * from_leaves,
                }
            )
    return out


def verify_speed(
    entries: int, repeats: int, proof_sizes: list[int] | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = initialise_home(Path(tmp) / "home", environ={})
        runtime = open_runtime(settings, START, environ={})
        try:
            t0 = time.perf_counter()
            bodies: list[bytes] = []
            hashed = build_log(runtime, entries, bodies=bodies)
            built = time.perf_counter() - t0
            signer = load_signer(settings.signing_key_file)
            assert signer is not None
            best_verify = best_sha = float("inf")
            for _ in range(repeats):
                report = verify_log(runtime.engine, signer.public_key)
                assert report.ok and report.entries == entries, report.problems[:3]
                best_verify = min(best_verify, report.elapsed_s)
                best_sha = min(best_sha, sha_baseline(hashed))
            size = Path(runtime.engine.url.database or "").stat().st_size
            proofs = proof_speed(runtime, bodies, [n for n in proof_sizes or [] if n <= entries])
        finally:
            runtime.close()
    return {
        "proofs": proofs,
        "entries": entries,
        "build_s": built,
        "verify_s": best_verify,
        "verify_rate": entries / best_verify,
        "sha_s": best_sha,
        "sha_rate": entries / best_sha,
        "db_mb": size / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--entries", type=int, help="log size for the verify benchmark")
    parser.add_argument("--windows", type=int, help="windows in the bare-store workload")
    parser.add_argument("--wristbands", type=int, help="wristbands in the pipeline run")
    parser.add_argument(
        "--proof-sizes", help="comma-separated log sizes for the proof benchmark (<= --entries)"
    )
    args = parser.parse_args()
    entries = args.entries or (50_000 if args.quick else 1_000_000)
    default_sizes = "1000,10000,50000" if args.quick else "1000,10000,100000,1000000"
    proof_sizes = [int(n) for n in (args.proof_sizes or default_sizes).split(",")]
    windows = args.windows or (20 if args.quick else 120)
    wristbands = 20 if args.quick else 50
    bands = args.wristbands or (24 if args.quick else 60)
    repeats = 2 if args.quick else 3

    print(f"1. append overhead in the pipeline: run_event, demo event, {bands} wristbands, SQLite")
    for policy in ("privacy-by-default", "spotify-2026"):
        p = pipeline_overhead(policy, bands, repeats)
        print(
            f"   {policy}: CPU {p['cpu_audit']:.2f} s with the log vs {p['cpu_none']:.2f} s "
            f"without -> log share {100 * p['share']:.1f} % of the pipeline's time "
            f"(target <= 10 %); {p['entries']:,} entries"
        )
    print(f"2. append overhead on bare store writes: {windows} windows x {wristbands} wristbands")
    for label, raw in (("metadata only", False), ("raw + metadata", True)):
        r = append_overhead(windows, wristbands, raw, repeats)
        written = windows * (wristbands * (2 if raw else 1) + 2)
        print(
            f"   {label}: CPU {r['cpu_audit']:.2f} s with the log vs {r['cpu_none']:.2f} s "
            f"without -> log share {100 * r['share_cpu']:.1f} %; ~{written:,} entries "
            f"({1e6 * (r['cpu_audit'] - r['cpu_none']) / written:.0f} us CPU per entry)"
        )
    print(f"3. verify: {entries:,} entries (SQLite), best of {repeats}")
    v = verify_speed(entries, repeats, proof_sizes)
    print(
        f"   built in {v['build_s']:.1f} s ({v['db_mb']:.0f} MB, Merkle nodes included); verify "
        f"{v['verify_s']:.2f} s = {v['verify_rate']:,.0f} entries/s (target >= 200,000; chain, "
        f"Merkle root and stored nodes); plain SHA-256 loop over the same bytes "
        f"{v['sha_rate']:,.0f} entries/s; ratio {v['verify_rate'] / v['sha_rate']:.2f}"
    )
    print("4. Merkle proofs against log size (median of 200 random entries, SQLite)")
    print(
        "   entries    depth  inclusion  bundle  verify  consistency | 1 SHA-256/level  "
        "root from all leaves"
    )
    for p in v["proofs"]:
        print(
            f"   {p['size']:>9,}  {p['depth']:>5}  {p['gen_ms']:7.3f} ms {p['bundle_ms']:6.3f} ms "
            f"{p['verify_ms']:6.3f} ms {p['consistency_ms']:7.3f} ms | {p['floor_ms']:9.4f} ms  "
            f"{p['from_leaves_ms']:12.1f} ms  (inclusion / floor "
            f"{p['gen_ms'] / p['floor_ms']:.0f}x; from leaves / inclusion "
            f"{p['from_leaves_ms'] / p['gen_ms']:,.0f}x)"
        )


if __name__ == "__main__":
    main()
