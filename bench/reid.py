"""Benchmark: the privacy engine (retention.anonymity) against pycanon, in the same run.

A synthetic crowd of 1M wristbands with five quasi-identifiers at realistic cardinalities
(20 zones, 96 quarter-hours, 8 age bands, 5 ticket types, 6 device models) and one sensitive
attribute (the 20-point sentiment band, numeric: ordered EMD). flowaudit computes k, distinct
l, entropy l, t-closeness and every risk figure from one grouping; pycanon is called once per
metric (k_anonymity, l_diversity, entropy_l_diversity, t_closeness), which is how it is used.

pycanon loops over the ~400 000 equivalence classes in Python for l, entropy l and t; on the
full table that takes tens of minutes. By default it therefore runs k on the full table and all
four metrics on a subsample (the first ``--pycanon-rows`` rows), and flowaudit is timed on that
same subsample for the ratio; ``--full-pycanon`` runs all four on the full table. Results must
be identical (pycanon truncates entropy l to an int; t within 1e-9) or the run exits 1.

    .venv/bin/python -P bench/reid.py              # 1M rows, pycanon subsample 50 000
    .venv/bin/python -P bench/reid.py --quick      # 100 000 rows, pycanon subsample 5 000
    .venv/bin/python -P bench/reid.py --full-pycanon
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from retention.anonymity import Lattice, RiskReport, Thresholds, measure, parse_hierarchies
from retention.ground.quasi import QUASI_IDENTIFIERS, SENSITIVE_ATTRIBUTES

QIS = list(QUASI_IDENTIFIERS)
SENSITIVE = list(SENSITIVE_ATTRIBUTES)
HIERARCHIES = parse_hierarchies(
    {
        "arrival_bucket": ["15m", "1h", "1d", "*"],
        "age_band": ["10y", "20y", "*"],
        "zone": ["area", "*"],
        "ticket_type": ["*"],
        "device_model": ["*"],
    }
)


def crowd(rows: int, seed: int) -> pd.DataFrame:
    """The benchmark table (seeded)."""
    rng = np.random.default_rng(seed)
    zones = np.array([f"{a}{i}" for a in "ABCDE" for i in range(1, 5)])  # 20 zones, 5 areas
    quarters = np.array(
        [f"2026-06-21T{h:02d}:{m:02d}Z" for h in range(24) for m in (0, 15, 30, 45)]
    )
    ages = np.array(["<18", "18-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+"])
    tickets = np.array(["day", "weekend", "vip", "press", "guest"])
    devices = np.array([f"XW-{i}" for i in range(1, 7)])
    return pd.DataFrame(
        {
            "zone": zones[rng.integers(0, len(zones), rows)],
            "arrival_bucket": quarters[rng.integers(0, len(quarters), rows)],
            "age_band": ages[rng.integers(0, len(ages), rows)],
            "ticket_type": tickets[rng.integers(0, len(tickets), rows)],
            "device_model": devices[rng.integers(0, len(devices), rows)],
            "mean_sentiment_band": rng.choice([0, 20, 40, 60, 80], rows),
        }
    )


def timed(func: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs, and the last result."""
    best, result = math.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def pycanon_all(frame: pd.DataFrame) -> tuple[float, dict[str, Any], dict[str, float]]:
    from pycanon import anonymity as pycanon

    times: dict[str, float] = {}
    values: dict[str, Any] = {}
    calls = {
        "k": lambda: pycanon.k_anonymity(frame, QIS),
        "l": lambda: pycanon.l_diversity(frame, QIS, SENSITIVE),
        "entropy_l": lambda: pycanon.entropy_l_diversity(frame, QIS, SENSITIVE),
        "t": lambda: pycanon.t_closeness(frame, QIS, SENSITIVE),
    }
    for name, call in calls.items():
        times[name], values[name] = timed(call)
        print(f"    pycanon {name:<10} {times[name]:9.2f} s  -> {values[name]}", flush=True)
    return sum(times.values()), values, times


def same(report: RiskReport, values: dict[str, Any]) -> list[str]:
    """Differences between flowaudit and pycanon (empty when identical)."""
    problems = []
    if report.k != values["k"]:
        problems.append(f"k {report.k} != {values['k']}")
    if "l" in values and report.distinct_l != values["l"]:
        problems.append(f"l {report.distinct_l} != {values['l']}")
    if "entropy_l" in values:
        ours = report.entropy_l or 0.0
        if values["entropy_l"] not in (math.floor(ours + 1e-9), math.floor(ours - 1e-9)):
            problems.append(f"entropy l {ours} !~ {values['entropy_l']}")
    if "t" in values and not math.isclose(report.t_closeness or 0.0, values["t"], abs_tol=1e-9):
        problems.append(f"t {report.t_closeness} != {values['t']}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pycanon-rows", type=int, default=50_000)
    parser.add_argument("--quick", action="store_true", help="100k rows, pycanon on 5k")
    parser.add_argument("--full-pycanon", action="store_true", help="all of pycanon on all rows")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.pycanon_rows = 100_000, 5_000
    warnings.filterwarnings("ignore", message="In a future version, the keys of `groups`")

    frame = crowd(args.rows, args.seed)
    print(f"table: {len(frame):,} rows x {len(QIS)} quasi-identifiers + 1 sensitive attribute")
    ours_full, report = timed(lambda: measure(frame, QIS, SENSITIVE), repeat=3)
    print(f"  flowaudit measure (all figures)  {ours_full:9.3f} s  -> {report.summary()}")
    failures: list[str] = []

    sub_rows = min(args.pycanon_rows, len(frame))
    if args.full_pycanon:
        sub_rows = len(frame)
    subsample = frame.iloc[:sub_rows].reset_index(drop=True)
    ours_sub, sub_report = timed(lambda: measure(subsample, QIS, SENSITIVE), repeat=3)
    label = "full table" if sub_rows == len(frame) else f"subsample of the first {sub_rows:,} rows"
    print(f"\npycanon, k / l / entropy l / t on the {label}:")
    theirs_sub, values, _ = pycanon_all(subsample)
    failures += same(sub_report, values)
    print(f"    flowaudit (same rows)   {ours_sub:9.3f} s")
    ratio_sub = theirs_sub / ours_sub

    ratio_k = None
    if sub_rows < len(frame):
        from pycanon import anonymity as pycanon

        print(f"\npycanon k_anonymity on the full {len(frame):,} rows:")
        theirs_k, k = timed(lambda: pycanon.k_anonymity(frame, QIS))
        print(f"    pycanon k          {theirs_k:9.2f} s  -> {k}")
        failures += same(report, {"k": k})
        ratio_k = theirs_k / ours_full

    print(f"\nexport-gate lattice search on the full {len(frame):,} rows (privacy-by-default):")
    lattice_time, result = timed(
        lambda: Lattice(frame, QIS, SENSITIVE, HIERARCHIES, Thresholds()).search()
    )
    best = result.best
    chosen = "none passes" if best is None else best.describe()
    print(
        f"    {lattice_time:9.2f} s, {result.nodes_evaluated} of {result.nodes_total} nodes "
        f"evaluated -> {chosen}"
    )

    print("\nresults:", "identical" if not failures else "DIFFERENT: " + "; ".join(failures))
    print(
        f"speed-up, all four metrics, {label}: {ratio_sub:,.0f}x "
        f"(pycanon {theirs_sub:.1f} s vs flowaudit {ours_sub:.3f} s)"
    )
    if ratio_k is not None:
        print(
            f"speed-up, full {len(frame):,} rows, pycanon k alone vs flowaudit's every figure: "
            f"{ratio_k:,.0f}x"
        )
        print(
            "(pycanon's l / entropy l / t were not run on the full table: pass --full-pycanon; "
            "their cost grows with the number of classes)"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
