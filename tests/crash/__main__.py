"""The full kill -9 matrix (``make crash``): every scenario on both backends, with counts.

    python -m tests.crash [--trials 28] [--seed 14] [--scenario purge|dsr-erase]...
        [--backend sqlite|postgres]... [--workdir DIR]

Prints one row per scenario and backend: trials, identical, differing, crashed (the rerun
failed), killed (SIGKILL landed while the command ran), and the uninterrupted run's duration;
then the details of every trial that was not identical. Exit status 1 if any was not.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from .harness import CrashSummary, Launcher, run_scenario
from .scenarios import SCENARIOS

BACKENDS = ("sqlite", "postgres")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.crash", description=__doc__)
    parser.add_argument("--trials", type=int, default=28)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--backend", action="append", choices=BACKENDS)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    names = args.scenario or list(SCENARIOS)
    backends = args.backend or list(BACKENDS)
    summaries: list[CrashSummary] = []
    with tempfile.TemporaryDirectory(prefix="flowaudit-crash-") as tmp:
        root = args.workdir or Path(tmp)
        header = f"{'command':<10} {'backend':<10} {'trials':>6} {'identical':>9} {'differing':>9} "
        header += f"{'crashed':>7} {'killed':>6} {'run (s)':>8}"
        print(header, flush=True)
        with Launcher() as launcher:
            for name in names:
                for backend in backends:
                    summary = run_scenario(
                        launcher,
                        SCENARIOS[name],
                        backend,
                        trials=args.trials,
                        seed=args.seed,
                        workdir=root / f"{name}-{backend}",
                    )
                    summaries.append(summary)
                    c = summary.counts()
                    print(
                        f"{summary.name:<10} {backend:<10} {c['trials']:>6} {c['identical']:>9} "
                        f"{c['differing']:>9} {c['crashed']:>7} {c['killed']:>6} "
                        f"{summary.reference_seconds:>8.2f}",
                        flush=True,
                    )
    bad = [s for s in summaries if s.identical != len(s.trials)]
    for summary in bad:
        print(summary.report())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
