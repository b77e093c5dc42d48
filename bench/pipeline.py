"""Benchmark: the full pipeline against a bare webrtcvad loop over the same frames.

Both run over the same pre-generated synthetic crowd (so synthesis is not timed). The pipeline
runs every stage — gates, per-wristband VAD, features, sentiment, selection, and the encrypted
store on SQLite in a temporary home, one transaction per window — and the bare loop only calls
webrtcvad once per frame. Throughput is "real-time wristband streams per core": seconds of
wristband audio processed per second of wall time, single process. Also prints selection
decision latency (processing only; the article's platforms quote 80–180 ms end to end).

    .venv/bin/python bench/pipeline.py            # 48 wristbands x 2 min
    .venv/bin/python bench/pipeline.py --quick    # 16 wristbands x 1 min
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import webrtcvad
from _webrtcvad import process as _vad_process

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flowaudit.runtime import initialise_home, open_runtime  # noqa: E402
from pipeline.artist import ArtistControl  # noqa: E402
from pipeline.catalogue import load_catalogue  # noqa: E402
from pipeline.event import parse_event  # noqa: E402
from pipeline.frames import FRAME_BYTES, SAMPLE_RATE  # noqa: E402
from pipeline.memory import MemorySource  # noqa: E402
from pipeline.run import run_event  # noqa: E402
from pipeline.selection import Selector  # noqa: E402
from pipeline.sentiment import Snapshot  # noqa: E402
from pipeline.sources import synthetic_for  # noqa: E402
from retention.policy import load_policy  # noqa: E402

START = datetime(2026, 6, 21, 20, 0, tzinfo=UTC)


def bench_event(wristbands: int, seconds: int):  # noqa: ANN201
    doc = {
        "event": {"id": "bench", "name": "bench", "starts": START,
                  "ends": START + timedelta(seconds=seconds)},
        "capture": {"pre_roll": "0s", "post_roll": "0s", "window": "6s", "seed": 1},
        "selection": {"catalogue": str(ROOT / "examples" / "catalogue.csv"),
                      "decision_every": "30s"},
        "wristbands": {"generate": {"count": wristbands, "seed": 1, "staff": 0,
                                    "opted_out": 0.0, "withdrawn": 0.0, "late_arrivals": 0.0}},
    }
    return parse_event(doc, source="<bench>", base=ROOT / "examples")


def frames_for(event, seconds: int) -> MemorySource:  # noqa: ANN001
    crowd = synthetic_for(event)
    windows = list(crowd.windows(START, event.frames_per_window, seconds // 6))
    pcm = np.concatenate([w.pcm for w in windows], axis=1)
    return MemorySource(crowd.serials, pcm, starts_at=START)


def bare_vad(source: MemorySource, aggressiveness: int) -> float:
    """Seconds to run one webrtcvad per wristband over every frame.

    It calls the C function behind ``Vad.is_speech`` directly, as the pipeline does, so the
    baseline is as fast as webrtcvad can be driven from Python.
    """
    tick = time.perf_counter()
    n = FRAME_BYTES // 2
    for b in range(source.pcm.shape[0]):
        vad = webrtcvad.Vad(aggressiveness)
        handle = vad._vad
        view = memoryview(source.pcm[b]).cast("B")
        for i in range(source.pcm.shape[1]):
            _vad_process(handle, SAMPLE_RATE, view[i * FRAME_BYTES : (i + 1) * FRAME_BYTES], n)
    return time.perf_counter() - tick


def full_pipeline(event, source: MemorySource, policy_name: str) -> tuple[float, object]:  # noqa: ANN001
    with tempfile.TemporaryDirectory() as tmp:
        settings = initialise_home(Path(tmp) / "home")
        runtime = open_runtime(settings, START)
        try:
            summary = run_event(runtime.store, event, load_policy(policy_name), source)
        finally:
            runtime.close()
    return summary.wall_seconds, summary


def selection_latency(decisions: int) -> tuple[float, float]:
    catalogue = load_catalogue(ROOT / "examples" / "catalogue.csv")
    selector = Selector(catalogue, ArtistControl("none"), 40.0)
    rng = np.random.default_rng(0)
    times = []
    for _ in range(decisions):
        crowd = float(rng.uniform(10, 95))
        snap = Snapshot(crowd=crowd, crowd_raw=crowd, trend_per_min=float(rng.normal(0, 5)),
                        zones={"front": crowd}, zone_raw={"front": crowd},
                        zone_counts={"front": 50}, active=200)
        tick = time.perf_counter()
        selector.decide(START, snap)
        times.append((time.perf_counter() - tick) * 1000)
        if len(selector.played) > len(catalogue) - 5:
            selector.played.clear()
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run (16 x 60 s)")
    parser.add_argument("--wristbands", type=int, default=None)
    parser.add_argument("--seconds", type=int, default=None)
    args = parser.parse_args()
    wristbands = args.wristbands or (16 if args.quick else 48)
    seconds = args.seconds or (60 if args.quick else 120)
    seconds -= seconds % 6
    event = bench_event(wristbands, seconds)
    source = frames_for(event, seconds)
    audio = wristbands * seconds
    frames = source.pcm.shape[0] * source.pcm.shape[1]
    print(f"pipeline benchmark: {wristbands} wristbands x {seconds} s = {frames:,} frames "
          f"of 30 ms")

    rows = []
    for policy_name in ("privacy-by-default", "spotify-2026"):
        aggressiveness = load_policy(policy_name).capture.vad_aggressiveness
        vad_s = min(bare_vad(source, aggressiveness) for _ in range(2))
        full_s, summary = full_pipeline(event, source, policy_name)
        rows.append((policy_name, vad_s, full_s, summary))
        vad_rt, full_rt = audio / vad_s, audio / full_s
        print(f"\n[{policy_name}] raw audio {'kept' if summary.raw_segments else 'not kept'}")
        print(f"  bare webrtcvad loop   {vad_rt:8.0f} real-time streams per core "
              f"({vad_s / frames * 1e6:.2f} us/frame)")
        print(f"  full pipeline         {full_rt:8.0f} real-time streams per core "
              f"({full_s / frames * 1e6:.2f} us/frame)")
        print(f"  ratio                 {full_rt / vad_rt:8.2f}  (target >= 0.4)")
        lat = summary.latency_ms
        print(f"  in-run decisions      {summary.decisions} "
              f"(p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms)")

    p50, p99 = selection_latency(300 if args.quick else 3000)
    print(f"\nselection decision latency over {'300' if args.quick else '3000'} decisions: "
          f"p50 {p50:.3f} ms, p99 {p99:.3f} ms  (target p99 <= 5 ms)")


if __name__ == "__main__":
    main()
