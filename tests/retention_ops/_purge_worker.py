"""A purge worker process for the crash and concurrency tests: the real purge on a real home.

    python -m tests.retention_ops._purge_worker --home H [--db URL] --now T [--batch N]
        [--shred-chunk N] [--go FILE]

Prints ``ready`` once imported and opened (and, with ``--go``, waits for that file to exist so
several workers start together), then runs :func:`retention.purge.purge` and prints its report
as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from flowaudit.config import resolve_settings
from flowaudit.runtime import open_runtime
from retention.ground.times import parse_time
from retention.purge import purge


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True)
    parser.add_argument("--db")
    parser.add_argument("--now", required=True)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--shred-chunk", type=int, default=64)
    parser.add_argument("--go")
    args = parser.parse_args()
    now = parse_time(args.now)
    runtime = open_runtime(resolve_settings(Path(args.home), args.db), now)
    try:
        print("ready", flush=True)
        if args.go:
            while not Path(args.go).exists():
                time.sleep(0.005)
        report = purge(runtime.store, now=now, batch=args.batch, shred_chunk=args.shred_chunk)
        print(json.dumps(report.as_dict(), default=str), flush=True)
    finally:
        runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
