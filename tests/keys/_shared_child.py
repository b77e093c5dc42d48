"""A long-running process on one "machine" of the shared-key-store tests, driven over stdin.

    python -m tests.keys._shared_child race HOME COUNT     waits for "go", creates COUNT bucket
                                                           keys, prints one SHA-256 per key
    python -m tests.keys._shared_child reader HOME NOW     one runtime kept open; commands:
        read RECORD_ID   -> "ok <sha256 of the pcm>" or "refused <error class>"
        quit

Its own process, its own home directory: what it caches is what a worker would cache.
"""

from __future__ import annotations

import hashlib
import sys
from datetime import datetime
from pathlib import Path

from flowaudit.config import resolve_settings
from flowaudit.runtime import open_key_store, open_runtime
from retention.errors import FlowauditError


def race(home: Path, count: int) -> None:
    keys = open_key_store(resolve_settings(home))
    print("ready", flush=True)
    sys.stdin.readline()
    digests = [hashlib.sha256(keys.bucket_key(f"race:{i}", create=True)).hexdigest()
               for i in range(count)]
    print(" ".join(digests), flush=True)


def reader(home: Path, now: datetime) -> None:
    rt = open_runtime(resolve_settings(home), now)
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "quit":
            break
        try:
            pcm = rt.store.get_raw(arg, now=now).pcm
        except FlowauditError as exc:
            print(f"refused {type(exc).__name__}", flush=True)
        else:
            print(f"ok {hashlib.sha256(pcm).hexdigest()}", flush=True)
    rt.close()


if __name__ == "__main__":
    mode, home_arg, extra = sys.argv[1:4]
    if mode == "race":
        race(Path(home_arg), int(extra))
    else:
        reader(Path(home_arg), datetime.fromisoformat(extra))
