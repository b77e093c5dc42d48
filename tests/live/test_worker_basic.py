"""One worker on SQLite (the one-machine demo): every window committed once, crowd steps and
decisions with their main parameters, the audit log verifies."""

from __future__ import annotations

import pytest

from tests.live.worker_fixtures import (
    LiveSetup,
    all_windows,
    live_setup,
    nats,
    publish,
    start_worker,
    store_view,
    verified,
)
from tests.servers import NatsServer

__all__ = ["live_setup", "nats"]

pytestmark = pytest.mark.nats


@pytest.mark.parametrize("backend", ["sqlite"])
def test_one_worker_commits_every_window_once(live_setup: LiveSetup, nats: NatsServer) -> None:
    windows = all_windows(live_setup, 5)
    publish(nats.url, live_setup, windows)
    worker = start_worker(live_setup, nats.url, idle=3.0)
    assert worker.wait() == 0, worker.stderr
    view = store_view(live_setup)
    assert sorted(view.keys) == sorted((w.pseudonym, w.window) for w in windows)
    assert sorted(view.crowd_windows) == sorted({w.window for w in windows})
    assert view.raw_segments == view.score_records == len(windows)
    assert view.decisions >= 1 and view.decisions_without_weights == 0
    metrics = worker.metrics()
    assert metrics["windows_committed"] == len(windows)
    assert metrics["duplicates_skipped"] == 0
    assert verified(live_setup) == "ok"
