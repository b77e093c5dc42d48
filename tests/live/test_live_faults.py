"""Live workers under faults, against a real nats-server (one per test) and the real store:
kill -9 between commit and ack and before commit, NATS restarted (SIGTERM and SIGKILL) under a
running worker, duplicated and redelivered messages, garbage on the subject, two workers
sharing the consumer. Assertions are on the store's contents (one row per key, one crowd
step per window), never on timings."""

from __future__ import annotations

import signal
import time
from collections import Counter
from typing import Any

import pytest

from pipeline.live.wire import encode_window
from tests.live.worker_fixtures import (
    LiveSetup,
    all_windows,
    consumer_pending,
    live_setup,
    nats,
    publish,
    publish_raw,
    start_worker,
    store_view,
    verified,
)
from tests.servers import NatsServer

__all__ = ["live_setup", "nats"]

pytestmark = pytest.mark.nats

WINDOWS = 4  # × 4 wristbands


def _exactly_once(setup: LiveSetup, windows: list) -> None:
    view = store_view(setup, readable=True)
    counts = Counter(view.keys)
    assert set(counts) == {(w.pseudonym, w.window) for w in windows}  # none lost
    assert max(counts.values()) == 1  # none twice
    assert view.raw_segments == view.score_records == len(windows)
    crowd = Counter(view.crowd_windows)
    assert max(crowd.values()) == 1  # no window stepped twice
    # every committed wristband window is folded into exactly one crowd step: its own, or,
    # when a killed worker held its messages past that step (the window after it was
    # complete and stepped first), the next step, counted as late
    assert view.rows_folded == len(windows)
    stepped_late = {w.window for w in windows} - set(crowd)
    assert view.late >= len(stepped_late)
    assert max(crowd) == max(w.window for w in windows)
    assert view.decisions >= 1 and view.decisions_without_weights == 0  # DSA Art 27


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_kill_9_mid_window_then_another_worker(live_setup: LiveSetup, nats: NatsServer) -> None:
    """kill -9 before a commit, then kill -9 between a commit and its ack, then a third
    worker finishes: every window once, none lost."""
    windows = all_windows(live_setup, WINDOWS)
    publish(nats.url, live_setup, windows)
    for fault in ("before_commit:3", "after_commit:3"):
        killed = start_worker(live_setup, nats.url, "--batch", "4", fault=fault, idle=None)
        assert killed.wait() == -signal.SIGKILL
    last = start_worker(live_setup, nats.url, "--batch", "4", idle=4.0)
    assert last.wait() == 0, last.stderr
    _exactly_once(live_setup, windows)
    metrics = last.metrics()
    assert metrics["redeliveries"] >= 1  # the killed workers' windows came back
    assert metrics["duplicates_skipped"] >= 1  # ... and the one committed was not again
    assert consumer_pending(nats.url, live_setup) == (0, 0)
    assert verified(live_setup) == "ok"


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_nats_restart_under_a_running_worker(live_setup: LiveSetup, nats: NatsServer) -> None:
    """The server stopped with SIGTERM, then killed with SIGKILL, each time restarted on the
    same port and store directory while the worker runs."""
    windows = all_windows(live_setup, 6)
    thirds = [windows[:8], windows[8:16], windows[16:]]
    publish(nats.url, live_setup, thirds[0])
    worker = start_worker(live_setup, nats.url, "--batch", "2", idle=None)
    for n, how in enumerate((signal.SIGTERM, signal.SIGKILL), start=1):
        least = 8 * n - 6  # well into the windows published so far

        def enough(metrics: dict[str, Any], least: int = least) -> bool:
            return int(metrics.get("windows_committed", 0)) >= least

        worker.wait_for(enough)
        nats.restart(how)
        publish(nats.url, live_setup, thirds[n])
    deadline = time.monotonic() + 60
    while len(store_view(live_setup).keys) < len(windows) and time.monotonic() < deadline:
        time.sleep(0.3)
    time.sleep(1.0)  # the last window's crowd step settles
    assert worker.terminate() == 0, worker.stderr
    assert "Traceback" not in worker.stderr
    _exactly_once(live_setup, windows)
    assert verified(live_setup) == "ok"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_duplicates_and_redeliveries_commit_nothing_twice(
    live_setup: LiveSetup, nats: NatsServer
) -> None:
    windows = all_windows(live_setup, 2)
    # a short de-duplication window lets the broker keep a second copy of every message
    publish(nats.url, live_setup, windows, duplicate_window=0.2)
    time.sleep(0.5)
    publish(nats.url, live_setup, windows)
    worker = start_worker(live_setup, nats.url, idle=3.0)  # one worker on SQLite: the demo
    assert worker.wait() == 0, worker.stderr
    metrics = worker.metrics()
    assert metrics["windows_committed"] == len(windows)
    assert metrics["duplicates_skipped"] == len(windows)
    _exactly_once(live_setup, windows)
    # and a worker started again over a consumer replayed from the start skips them all
    again = start_worker(live_setup, nats.url, "--durable", "replay-all", idle=3.0)
    assert again.wait() == 0, again.stderr
    assert again.metrics()["windows_committed"] == 0
    assert again.metrics()["duplicates_skipped"] == 2 * len(windows)
    view = store_view(live_setup)
    assert Counter(view.keys) == Counter({(w.pseudonym, w.window): 1 for w in windows})
    assert max(Counter(view.crowd_windows).values()) == 1
    assert verified(live_setup) == "ok"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_garbage_is_refused_counted_and_terminated(
    live_setup: LiveSetup, nats: NatsServer
) -> None:
    good = all_windows(live_setup, 1)
    subject, headers, payload = encode_window(good[0])
    stranger = "f" * 64  # a pseudonym no roster wristband has
    strange = encode_window(type(good[0])(**{**good[0].__dict__, "pseudonym": stranger}))
    def ids(n: int) -> dict[str, str]:  # own Nats-Msg-Ids: the broker must keep them all
        return {**headers, "Nats-Msg-Id": f"garbage:{n}"}

    garbage = [
        (subject, {"Nats-Msg-Id": "garbage:0"}, b"\x00\xffnot json"),
        (subject, ids(1), b'{"v": 99}'),
        (subject, {**ids(2), "Flowaudit-Window": "7"}, payload),
        strange,
    ]
    publish(nats.url, live_setup, good)
    publish_raw(nats.url, live_setup, garbage)
    worker = start_worker(live_setup, nats.url, idle=3.0)
    assert worker.wait() == 0, worker.stderr
    assert "Traceback" not in worker.stderr
    metrics = worker.metrics()
    assert metrics["refused"] == {"malformed": 3, "unknown_wristband": 1}
    assert metrics["windows_committed"] == len(good)
    assert metrics["redeliveries"] == 0  # terminated, not handed round again
    assert consumer_pending(nats.url, live_setup) == (0, 0)
    view = store_view(live_setup)
    assert sorted(view.keys) == sorted((w.pseudonym, w.window) for w in good)
    assert stranger not in {p for p, _ in view.keys}


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_workers_share_the_consumer(live_setup: LiveSetup, nats: NatsServer) -> None:
    windows = all_windows(live_setup, 6)
    publish(nats.url, live_setup, windows)
    a = start_worker(live_setup, nats.url, "--batch", "2", name="a", idle=4.0)
    b = start_worker(live_setup, nats.url, "--batch", "2", name="b", idle=4.0)
    assert a.wait() == 0, a.stderr
    assert b.wait() == 0, b.stderr
    ma, mb = a.metrics(), b.metrics()
    assert ma["windows_committed"] + mb["windows_committed"] == len(windows)
    _exactly_once(live_setup, windows)
    assert verified(live_setup) == "ok"
