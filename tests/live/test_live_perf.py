"""Live workers without a per-event lock, late windows and the live run's status, in process
(no broker): what the commit and the crowd step promise when several workers share an event.

- Two workers that create the same bucket and subject key at the same moment both seal with
  the one the key store keeps: every record opens.
- A window commit takes no per-event lock (PostgreSQL): it completes while a crowd step holds
  the event's ``live_state`` row.
- A window that arrives after its crowd step is folded into the next step and counted as
  late; one too late to fold is counted as not folded in the run's closing summary.
- The live run is running while a worker holds its shared run lock, interrupted when none is
  left before the end, and finished once the capture is over and every window is stepped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, select, text

from flowaudit.cli.status import _run_line
from flowaudit.runtime import Runtime, open_runtime, signing
from pipeline.frames import FRAME
from pipeline.live.commit import WindowCommitter
from pipeline.live.selector import LATE_HORIZON, CrowdStepper
from pipeline.sentiment import BuiltinScorer
from retention.ground.actions import Action
from retention.models import AuditEntry, EventRun, LiveCrowdWindow
from retention.store import (
    METADATA,
    RAW_AUDIO,
    RUN_FINISHED,
    RUN_INTERRUPTED,
    RUN_RUNNING,
    bucket_id_for,
)
from tests.live.worker_fixtures import (
    READ_AT,
    LiveSetup,
    live_setup,
    make_window,
    store_view,
    verified,
)
from tests.pipeline.pipeline_helpers import SET_START

__all__ = ["live_setup"]

BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgres"])


def _parts(setup: LiveSetup, runtime: Runtime, *, clock: float | None = None,
           settle: float = 0.5) -> tuple[WindowCommitter, CrowdStepper]:
    scorer = BuiltinScorer()
    committer = WindowCommitter(runtime.store, setup.event, setup.policy, scorer)
    stepper = CrowdStepper(runtime.store, setup.event, setup.policy, scorer.main_parameters(),
                           scorer.name, settle=settle,
                           clock=_wall if clock is None else (lambda: clock))
    stepper.register()
    return committer, stepper


def _wall() -> float:
    return datetime.now(UTC).timestamp()


@BOTH
def test_two_workers_creating_one_key_seal_with_the_kept_one(live_setup: LiveSetup) -> None:
    a, b = open_runtime(live_setup.settings, SET_START), open_runtime(live_setup.settings,
                                                                      SET_START)
    try:
        first, second = make_window(live_setup, 0, 0), make_window(live_setup, 0, 1)
        # both processes make the raw, metadata and subject keys before either flushes: two
        # different keys for one bucket (what two workers racing on a new hour do)
        for runtime in (a, b):
            keys = runtime.store.keys
            raw_at = first.start_at + first.pcm_frames[0] * FRAME
            keys.bucket_key(bucket_id_for(first.event_id, RAW_AUDIO, raw_at), create=True)
            keys.bucket_key(bucket_id_for(first.event_id, METADATA, first.start_at),
                            create=True)
            keys.subject_key(first.pseudonym, create=True)
        with signing(a):
            commit_a, _ = _parts(live_setup, a)
            assert commit_a.commit(first).committed
        with signing(b):
            commit_b, _ = _parts(live_setup, b)
            assert commit_b.commit(second).committed  # its own copies were never flushed
    finally:
        a.close()
        b.close()
    view = store_view(live_setup, readable=True)  # every sealed record opens
    assert (view.raw_segments, view.score_records) == (2, 2)
    assert verified(live_setup) == "ok"


@pytest.mark.parametrize("backend", ["postgres"])  # SQLite has one writer by design
def test_two_workers_opening_one_new_bucket_both_commit(live_setup: LiveSetup) -> None:
    """The first windows of a new hour from two workers at once: the second waits for the
    first's bucket rows, then uses them (no unique-key error, no retry, one bucket.open)."""
    a, b = open_runtime(live_setup.settings, SET_START), open_runtime(live_setup.settings,
                                                                      SET_START)
    watcher = create_engine(live_setup.settings.db_url)
    holding, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def hold(_tx: object) -> None:  # a's transaction, its new bucket rows inserted
        holding.set()
        release.wait(30)

    def run(name: str, work: object) -> None:
        try:
            outcome[name] = work()  # type: ignore[operator]
        except Exception as exc:  # the failure is the test's finding, not a crash
            outcome[name] = exc

    try:
        with signing(a), signing(b):
            commit_a, _ = _parts(live_setup, a)
            commit_b, _ = _parts(live_setup, b)
            first, second = make_window(live_setup, 0, 0), make_window(live_setup, 1, 0)
            thread_a = threading.Thread(target=run, args=(
                "a", lambda: commit_a.commit_batch([first], then=hold)))
            thread_a.start()
            assert holding.wait(30)
            thread_b = threading.Thread(target=run, args=("b", lambda: commit_b.commit(second)))
            thread_b.start()
            with watcher.connect() as conn:  # b is waiting on a's uncommitted bucket row
                for _ in range(300):
                    waiting = conn.execute(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    )).scalar()
                    if waiting or not thread_b.is_alive():
                        break
                    threading.Event().wait(0.05)
            release.set()
            thread_a.join(30)
            thread_b.join(30)
    finally:
        release.set()
        a.close()
        b.close()
        watcher.dispose()
    assert not isinstance(outcome.get("a"), Exception), outcome.get("a")
    assert not isinstance(outcome.get("b"), Exception), outcome.get("b")
    assert getattr(outcome["b"], "committed", False)
    runtime = open_runtime(live_setup.settings, READ_AT)
    try:
        with runtime.store.session() as session:
            opened = list(session.scalars(select(AuditEntry.object_id).where(
                AuditEntry.action == Action.BUCKET_OPEN.value)))
    finally:
        runtime.close()
    assert len(opened) == len(set(opened))  # each bucket opened once
    view = store_view(live_setup, readable=True)
    assert (view.raw_segments, view.score_records) == (2, 2)
    assert verified(live_setup) == "ok"


@pytest.mark.parametrize("backend", ["postgres"])  # SQLite has one writer by design
def test_a_window_commit_waits_for_no_crowd_step(live_setup: LiveSetup) -> None:
    runtime = open_runtime(live_setup.settings, SET_START)
    holder = create_engine(live_setup.settings.db_url)
    try:
        committer, _ = _parts(live_setup, runtime)
        done = threading.Event()
        with holder.connect() as conn:  # a crowd step in progress: the state row locked
            conn.execute(text("SELECT * FROM live_state FOR UPDATE")).all()
            thread = threading.Thread(
                target=lambda: (committer.commit(make_window(live_setup, 1, 0)), done.set()))
            thread.start()
            finished = done.wait(30)
            conn.rollback()
        thread.join(30)
        assert finished, "the window commit waited for the live_state row lock"
    finally:
        holder.dispose()
        runtime.close()


@BOTH
def test_a_late_window_is_folded_into_the_next_step_and_counted(
    live_setup: LiveSetup,
) -> None:
    setup = live_setup
    at = make_window(setup, 0, 0).start_at.timestamp() + 60  # wall clock inside the capture
    committed = datetime.fromtimestamp(at - 10, UTC)  # committed 10 s ago: settled
    runtime = open_runtime(setup.settings, SET_START)
    with contextlib.closing(runtime), signing(runtime):
        committer, stepper = _parts(setup, runtime, clock=at)
        bands = range(len(setup.pseudonyms))
        committer.commit_batch([make_window(setup, b, 0) for b in bands if b != 3],
                               now=committed)
        assert stepper.step_all() == 1  # window 0 stepped without band 3
        late = make_window(setup, 3, 0)
        assert committer.commit(late, now=committed).committed  # stored, after its step
        committer.commit_batch([make_window(setup, b, 1) for b in bands], now=committed)
        assert stepper.step_all() == 1  # window 1, with the late one folded in
        assert stepper.step_all() == 0  # nothing is folded twice
        state = runtime.store.live_state(setup.event.id)
        assert state is not None
        assert (state.state["late"], state.state["rows_folded"]) == (1, 8)
        with runtime.store.session() as session:
            steps = dict(session.execute(select(LiveCrowdWindow.window,
                                                LiveCrowdWindow.wristbands)).all())
        assert steps == {10: 3, 11: 5}  # the late band counts in the next step
        crowd = [r.payload for r in runtime.store.iter_metadata(now=READ_AT,
                                                                 kind="crowd_score")]
        assert [p.get("late_windows") for p in crowd] == [None, 1]
        # far too late to fold (more than LATE_HORIZON windows behind the last step)
        old = dataclasses.replace(make_window(setup, 0, 1), window=11 - LATE_HORIZON)
        assert committer.commit(old, now=committed).committed
        committer.commit_batch([make_window(setup, b, 2) for b in bands], now=committed)
        assert stepper.step_all() == 1
        assert runtime.store.live_state(setup.event.id).state["late"] == 1
        # the capture is over: a worker on its way out closes the run
        over = setup.event.capture_ends.timestamp() + 5
        _, closer = _parts(setup, runtime, clock=over)
        assert closer.finish_if_over()
        assert not closer.finish_if_over()  # once
        run = runtime.store.runs(setup.event.id)[-1]
        assert run.status == RUN_FINISHED
        with runtime.store.session() as session:
            summary = session.get(EventRun, run.run_id).summary
        assert summary["live"] == {"crowd_steps": 3, "late_windows_folded": 1,
                                   "windows_not_folded": 1}
        assert summary["wristband_windows"] == 13 and summary["window_scores"] == 13
        assert summary["frames_in"] == 13 * setup.event.frames_per_window
    assert verified(setup) == "ok"


@BOTH
def test_a_live_run_is_running_while_a_worker_is_alive(live_setup: LiveSetup) -> None:
    setup = live_setup
    runtime = open_runtime(setup.settings, SET_START)
    try:
        _parts(setup, runtime)  # registers the live run
        store = runtime.store
        one, two = (store.run_lock(setup.event.id, shared=True) for _ in range(2))
        assert one.acquire() and two.acquire()  # workers share it...
        exclusive = store.run_lock(setup.event.id)
        assert not exclusive.acquire()  # ...and a batch run of the event is kept out
        exclusive.release()
        run = store.runs(setup.event.id)[-1]
        assert run.status == RUN_RUNNING
        assert "live run running (workers alive)" in _run_line(run)
        one.release()
        assert store.runs(setup.event.id)[-1].status == RUN_RUNNING  # one worker left
        two.release()
        run = store.runs(setup.event.id)[-1]
        assert run.status == RUN_INTERRUPTED  # nobody is left and the run never closed
        assert "start `flowaudit worker` again" in _run_line(run)
    finally:
        runtime.close()
