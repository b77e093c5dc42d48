"""When the live crowd step is taken: as soon as its window is complete, never twice.

- A window every wristband of the roster has committed is due at once, even the first one
  (no window before it to compare with, its ``--settle`` far off); one band short, it waits.
- The worker's completion hint (:class:`pipeline.live.worker._Completion`) says "look now"
  once per window, when a batch completes it as far as that worker has seen; a pull that
  brought part of a burst knows how many wristbands are still to come for its window.
- A real ``flowaudit worker`` with ``--settle 3600`` takes the first window's step once the
  whole roster has committed it (before this, that step waited for ``--settle``).
"""

from __future__ import annotations

import contextlib

import pytest

from flowaudit.runtime import open_runtime, signing
from pipeline.live.commit import WindowCommitter
from pipeline.live.selector import CrowdStepper
from pipeline.live.worker import _Completion
from pipeline.sentiment import BuiltinScorer
from tests.live.worker_fixtures import (
    LiveSetup,
    live_setup,
    make_window,
    nats,
    publish,
    start_worker,
    store_view,
    verified,
)
from tests.pipeline.pipeline_helpers import SET_START
from tests.servers import NatsServer

__all__ = ["live_setup", "nats"]

BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgres"])


@BOTH
def test_a_window_the_whole_roster_committed_is_stepped_at_once(live_setup: LiveSetup) -> None:
    setup = live_setup
    at = make_window(setup, 0, 0).start_at.timestamp() + 60
    runtime = open_runtime(setup.settings, SET_START)
    with contextlib.closing(runtime), signing(runtime):
        scorer = BuiltinScorer()
        committer = WindowCommitter(runtime.store, setup.event, setup.policy, scorer)
        # the clock stands still: no window is ever --settle seconds old
        stepper = CrowdStepper(runtime.store, setup.event, setup.policy,
                               scorer.main_parameters(), scorer.name, settle=3600,
                               clock=lambda: at)
        stepper.register()
        bands = range(len(setup.pseudonyms))
        committer.commit_batch([make_window(setup, b, 0) for b in bands if b != 2])
        assert stepper.step_all() == 0  # one band short, nothing before it: not settled
        committer.commit(make_window(setup, 2, 0))
        assert stepper.step_all() == 1  # the whole roster: due now
        assert stepper.step_all() == 0
        state = runtime.store.live_state(setup.event.id)
        assert state is not None and state.crowd_window == 10
        assert state.state["rows_folded"] == len(setup.pseudonyms)
    assert verified(setup) == "ok"


ROSTER = {"a", "b", "c", "d"}


@pytest.mark.parametrize(("batches", "looks"), [
    ([[("a", 0), ("b", 0), ("c", 0), ("d", 0)]], [True]),  # the whole roster at once
    ([[("a", 0), ("b", 0)], [("c", 0), ("d", 0)]], [False, True]),  # in two batches
    ([[("a", 0), ("b", 0)]], [False]),  # first window, half the roster: no look
    # the window before had a, b (c, d gone quiet): a, b in this one complete it
    ([[("a", 0), ("b", 0)], [("a", 1)], [("b", 1)]], [False, False, True]),
    # a window is looked at once; a redelivered copy of it asks for nothing more
    ([[("a", 0), ("b", 0), ("c", 0), ("d", 0)], [("a", 0)]], [True, False]),
    # a late window of an older window asks for nothing
    ([[("a", 0), ("b", 0), ("c", 0)], [("a", 1), ("b", 1), ("c", 1)], [("d", 0)]],
     [False, True, False]),
])
def test_the_completion_hint_looks_once_per_completed_window(
    batches: list[list[tuple[str, int]]], looks: list[bool]
) -> None:
    hint = _Completion(ROSTER)
    seen = [hint.add([_W(p, k) for p, k in batch]) for batch in batches]
    assert seen == looks


class _W:
    """The two fields of a LiveWindow the hint reads."""

    def __init__(self, pseudonym: str, window: int) -> None:
        self.pseudonym, self.window = pseudonym, window


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_worker_steps_the_first_window_without_waiting_for_settle(
    live_setup: LiveSetup, nats: NatsServer
) -> None:
    bands = range(len(live_setup.pseudonyms))
    publish(nats.url, live_setup, [make_window(live_setup, b, 0) for b in bands])
    worker = start_worker(live_setup, nats.url, "--settle", "3600", idle=3.0)
    assert worker.wait() == 0, worker.stderr
    view = store_view(live_setup)
    assert len(view.keys) == len(live_setup.pseudonyms)
    assert view.crowd_windows == [10]  # with --settle 3600 it came from the whole roster
    assert verified(live_setup) == "ok"


@pytest.mark.parametrize(("committed", "pulled", "missing"), [
    ([], [("a", 0)], 0),  # nothing known of the window before: no waiting
    ([("a", 0), ("b", 0), ("c", 0)], [("a", 1)], 2),  # b and c still to come
    ([("a", 0), ("b", 0), ("c", 0)], [("a", 1), ("c", 1), ("b", 1)], 0),  # all here
    ([("a", 0), ("b", 0), ("a", 1)], [("b", 1)], 0),  # a committed earlier, b now
    ([("a", 0), ("b", 0)], [("a", 1), ("d", 1)], 1),  # a band new to the stream is no help
    ([("a", 0), ("b", 0)], [("a", 0), ("a", 1)], 1),  # the newest window in the pull counts
])
def test_a_pull_with_part_of_a_burst_knows_what_is_still_to_come(
    committed: list[tuple[str, int]], pulled: list[tuple[str, int]], missing: int
) -> None:
    hint = _Completion(ROSTER)
    hint.add([_W(p, k) for p, k in committed])
    assert hint.missing(pulled) == missing


@BOTH
def test_a_step_look_tells_whether_other_workers_commit_this_event(
    live_setup: LiveSetup,
) -> None:
    setup = live_setup
    runtime = open_runtime(setup.settings, SET_START)
    with contextlib.closing(runtime), signing(runtime):
        scorer = BuiltinScorer()
        mine = WindowCommitter(runtime.store, setup.event, setup.policy, scorer, worker="me:1")
        other = WindowCommitter(runtime.store, setup.event, setup.policy, scorer,
                                worker="them:2")
        stepper = CrowdStepper(runtime.store, setup.event, setup.policy,
                               scorer.main_parameters(), scorer.name, worker="me:1")
        stepper.register()
        bands = range(len(setup.pseudonyms))
        mine.commit_batch([make_window(setup, b, 0) for b in bands])
        assert stepper.step_all() == 1
        assert not stepper.shared  # every window it saw was its own
        mine.commit_batch([make_window(setup, b, 1) for b in bands if b != 0])
        other.commit(make_window(setup, 0, 1))
        assert stepper.step_all() == 1
        assert stepper.shared  # part of window 1 came from another worker
