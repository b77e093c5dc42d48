"""``flowaudit worker`` as a command: one-line errors (NATS unreachable, no such stream, wrong
policy), graceful SIGTERM, and — in process — the idempotency property of a window commit
under any order of deliveries and redeliveries."""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowaudit.runtime import open_runtime
from pipeline.live.commit import WindowCommitter
from pipeline.live.selector import CrowdStepper
from pipeline.sentiment import BuiltinScorer
from retention.store import RUN_FINISHED
from tests.live.worker_fixtures import (
    READ_AT,
    LiveSetup,
    all_windows,
    live_setup,
    make_window,
    nats,
    publish,
    start_worker,
    store_view,
)
from tests.servers import NatsServer

__all__ = ["live_setup", "nats"]

_ROOT = Path(__file__).resolve().parents[2]


def _worker(setup: LiveSetup, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWAUDIT_")}
    return subprocess.run(
        [sys.executable, "-m", "flowaudit", "worker", "--home", str(setup.home), "--event",
         str(setup.event_file), *args],
        capture_output=True, text=True, env=env, cwd=_ROOT, timeout=120)


def _one_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.nats
@pytest.mark.parametrize("backend", ["sqlite"])
def test_errors_are_one_line(live_setup: LiveSetup, nats: NatsServer) -> None:
    _one_line(_worker(live_setup, "--policy", "spotify-2026", "--nats", "nats://127.0.0.1:1"),
              "NATS at nats://127.0.0.1:1 is unreachable")
    _one_line(_worker(live_setup, "--policy", "spotify-2026", "--nats", nats.url),
              "no JetStream stream FLOWAUDIT_LIVE_LIVE_SET")
    # the event is registered under spotify-2026 now: a worker under another policy is refused
    _one_line(_worker(live_setup, "--policy", "apple-music-2025", "--nats", nats.url),
              "start the workers with --policy spotify-2026")
    assert store_view(live_setup).keys == []  # nothing stored by any of them


@pytest.mark.nats
@pytest.mark.parametrize("backend", ["sqlite"])
def test_sigterm_finishes_the_window_in_hand(live_setup: LiveSetup, nats: NatsServer) -> None:
    windows = all_windows(live_setup, 3)
    publish(nats.url, live_setup, windows)
    worker = start_worker(live_setup, nats.url, "--batch", "1", idle=None)
    worker.wait_for(lambda m: m.get("windows_committed", 0) >= 2)
    worker.process.send_signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.stderr
    done = worker.metrics()["windows_committed"]
    view = store_view(live_setup)
    assert len(view.keys) == done  # the window in hand was committed and acked...
    rest = start_worker(live_setup, nats.url, idle=3.0)
    assert rest.wait() == 0, rest.stderr
    assert rest.metrics()["windows_committed"] == len(windows) - done  # ...none lost
    # a worker that leaves windows in the stream does not close the run; the one that drains
    # it (the capture of this event is long over) does, once
    flags = (worker.metrics()["run_finished"], rest.metrics()["run_finished"])
    assert flags == ((False, True) if done < len(windows) else (True, False))
    runtime = open_runtime(live_setup.settings, READ_AT)
    try:
        assert runtime.store.runs(live_setup.event.id)[-1].status == RUN_FINISHED
    finally:
        runtime.close()
    assert sorted(store_view(live_setup).keys) == sorted((w.pseudonym, w.window)
                                                         for w in windows)


_round = itertools.count()


@pytest.mark.parametrize("backend", ["sqlite"])
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(deliveries=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2)), min_size=1,
                           max_size=14))
def test_any_delivery_order_commits_each_window_once(
    live_setup: LiveSetup, deliveries: list[tuple[int, int]]
) -> None:
    """Deliveries with repeats in any order: the first of each key commits, the rest nothing."""
    offset = 100 * next(_round)  # each example uses windows of its own
    runtime = open_runtime(live_setup.settings, READ_AT)
    try:
        scorer = BuiltinScorer()
        stepper = CrowdStepper(runtime.store, live_setup.event, live_setup.policy,
                               scorer.main_parameters(), scorer.name)
        stepper.register()
        committer = WindowCommitter(runtime.store, live_setup.event, live_setup.policy, scorer)
        seen: set[tuple[int, int]] = set()
        for b, k in deliveries:
            window = make_window(live_setup, b, k)
            window = dataclasses.replace(window, window=window.window + offset)
            result = committer.commit(window)
            assert result.committed == ((b, k) not in seen)
            seen.add((b, k))
        rows = runtime.store.live_windows(live_setup.event.id, after=offset + 9)
        mine = [(r.pseudonym, r.window) for r in rows if offset + 10 <= r.window < offset + 20]
        assert sorted(mine) == sorted((live_setup.pseudonyms[b], k + 10 + offset)
                                      for b, k in seen)
    finally:
        runtime.close()
