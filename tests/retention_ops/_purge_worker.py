"""A purge worker process for the crash and concurrency tests: the real purge on a real home.

    python -m tests.retention_ops._purge_worker --home H [--db URL] --now T [--batch N]
        [--shred-chunk N] [--go FILE] [--hold-after-deleted N]

Prints ``ready`` once imported and opened (and, with ``--go``, waits for that file to exist so
several workers start together), then runs :func:`retention.purge.purge` and prints its report
as one JSON line. With ``--hold-after-deleted N`` it stops inside the purge once N rows are
deleted and committed, prints ``held`` and waits to be killed: a crash point chosen without
racing the purge.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from flowaudit.config import resolve_settings
from flowaudit.runtime import open_runtime
from retention.ground.times import parse_time
from retention.purge import purge


def _hold_after(rows: int | None) -> Callable[[str, int, int], None] | None:
    """A progress hook that parks the purge (its batch committed) once ``rows`` are deleted."""
    if rows is None:
        return None

    def hold(stage: str, done: int, _total: int) -> None:
        if stage == "delete" and done >= rows:
            print("held", flush=True)
            while True:
                time.sleep(1)

    return hold


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True)
    parser.add_argument("--db")
    parser.add_argument("--now", required=True)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--shred-chunk", type=int, default=64)
    parser.add_argument("--go")
    parser.add_argument("--hold-after-deleted", type=int)
    args = parser.parse_args()
    now = parse_time(args.now)
    runtime = open_runtime(resolve_settings(Path(args.home), args.db), now)
    try:
        print("ready", flush=True)
        if args.go:
            while not Path(args.go).exists():
                time.sleep(0.005)
        report = purge(
            runtime.store,
            now=now,
            batch=args.batch,
            shred_chunk=args.shred_chunk,
            progress=_hold_after(args.hold_after_deleted),
        )
        print(json.dumps(report.as_dict(), default=str), flush=True)
    finally:
        runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
