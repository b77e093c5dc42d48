"""The batch that completes a window takes its crowd step in the same transaction.

- The whole roster's windows and their step commit together: one transaction, the step's
  audit entries right after the windows', and the log verifies.
- A step that is not due yet writes nothing, and the windows still commit.
- A step that cannot be taken with the batch (another worker holds the event's state row, or
  the step fails) is undone alone in its savepoint: the windows commit, and a step of its own
  takes it afterwards.
- The worker's completion hint predicts, before a batch commits, exactly what noting the batch
  afterwards says (hypothesis).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from flowaudit.runtime import open_runtime, signing
from pipeline.live.commit import WindowCommitter
from pipeline.live.selector import CrowdStepper, Taken
from pipeline.live.worker import _Completion
from pipeline.sentiment import BuiltinScorer
from retention.ground.actions import Action
from retention.models import AuditEntry, LiveState, MetadataRecord
from tests.live.worker_fixtures import LiveSetup, live_setup, make_window, store_view, verified
from tests.pipeline.pipeline_helpers import SET_START

__all__ = ["live_setup"]

BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgres"])


@contextlib.contextmanager
def opened(setup: LiveSetup):  # type: ignore[no-untyped-def]
    runtime = open_runtime(setup.settings, SET_START)
    with contextlib.closing(runtime), signing(runtime):
        scorer = BuiltinScorer()
        committer = WindowCommitter(runtime.store, setup.event, setup.policy, scorer)
        stepper = CrowdStepper(runtime.store, setup.event, setup.policy,
                               scorer.main_parameters(), scorer.name, settle=3600)
        stepper.register()
        yield runtime, committer, stepper


def _actions_after(runtime, seq: int) -> list[str]:  # type: ignore[no-untyped-def]
    with runtime.store.session() as session:
        return list(session.scalars(select(AuditEntry.action).where(AuditEntry.seq > seq)
                                    .order_by(AuditEntry.seq)))


def _last_seq(runtime) -> int:  # type: ignore[no-untyped-def]
    with runtime.store.session() as session:
        return int(session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())
                                  .limit(1)) or 0)


def _commit_with_step(setup: LiveSetup, committer: WindowCommitter, stepper: CrowdStepper,
                      bands: Iterable[int]) -> tuple[list, list[Taken | None]]:
    """Window 0 of ``bands`` in one batch whose transaction also tries the crowd step."""
    outcome: list[Taken | None] = []
    results = committer.commit_batch([make_window(setup, b, 0) for b in bands],
                                     then=lambda tx: outcome.append(stepper.step_within(tx)))
    return results, outcome


@BOTH
def test_the_windows_and_their_step_commit_in_one_transaction(live_setup: LiveSetup) -> None:
    setup = live_setup
    bands = range(len(setup.pseudonyms))
    with opened(setup) as (runtime, committer, stepper):
        before = _last_seq(runtime)
        results, outcome = _commit_with_step(setup, committer, stepper, bands)
        assert all(r.committed for r in results)
        assert outcome and outcome[0] is not None  # the step was taken with the batch
        assert stepper.committed(outcome[0]) and stepper.steps == 1
        state = runtime.store.live_state(setup.event.id)
        assert state is not None and state.crowd_window == 10
        actions = _actions_after(runtime, before)
        # the windows' entries, then the step's, in the one append of the transaction
        puts = [i for i, a in enumerate(actions) if a == Action.METADATA_PUT.value]
        assert len(puts) == len(setup.pseudonyms) + 1  # each window's score, the crowd score
        assert actions.count(Action.CAPTURE_DROP.value) == 1
        assert puts[-1] > actions.index(Action.CAPTURE_DROP.value)
        assert stepper.step_all() == 0  # nothing left due
        assert [w for w, _ in stepper.done_at] == [10]
    assert store_view(setup).crowd_windows == [10]
    assert verified(setup) == "ok"


@BOTH
def test_a_step_not_due_yet_writes_nothing_and_the_windows_commit(live_setup: LiveSetup) -> None:
    setup = live_setup
    with opened(setup) as (runtime, committer, stepper):
        before = _last_seq(runtime)
        _, outcome = _commit_with_step(setup, committer, stepper, (0, 1))  # half the roster
        assert outcome == [None]
        assert stepper.steps == 0
        state = runtime.store.live_state(setup.event.id)
        assert state is not None and state.crowd_window == -1
        assert _actions_after(runtime, before).count(Action.METADATA_PUT.value) == 2
    view = store_view(setup)
    assert len(view.keys) == 2 and view.crowd_windows == []
    assert verified(setup) == "ok"


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_state_row_another_worker_holds_leaves_the_step_for_later(
    live_setup: LiveSetup,
) -> None:
    setup = live_setup
    bands = range(len(setup.pseudonyms))
    with opened(setup) as (runtime, committer, stepper):
        # another worker in the middle of a step: its transaction holds the state row
        with runtime.engine.connect() as other, other.begin():
            other.execute(select(LiveState).where(LiveState.event_id == setup.event.id)
                          .with_for_update())
            results, outcome = _commit_with_step(setup, committer, stepper, bands)
            assert outcome == [None] and all(r.committed for r in results)
        assert store_view(setup).crowd_windows == []
        assert stepper.step_all() == 1  # a step of its own takes it now
    assert store_view(setup).crowd_windows == [10]
    assert verified(setup) == "ok"


@BOTH
def test_a_step_that_fails_is_undone_alone(live_setup: LiveSetup) -> None:
    setup = live_setup
    bands = range(len(setup.pseudonyms))
    with opened(setup) as (runtime, committer, stepper):
        before = _last_seq(runtime)
        # a crowd score the store refuses (already past a 1 s retention when stored): the
        # step fails after it has written and held entries (the decision comes first)
        stepper.meta_retention = timedelta(seconds=1)
        results, outcome = _commit_with_step(setup, committer, stepper, bands)
        assert outcome == [None] and all(r.committed for r in results)
        with runtime.store.session() as session:
            kinds = list(session.scalars(select(MetadataRecord.kind)))
        assert kinds.count("window_score") == len(setup.pseudonyms)
        assert "crowd_score" not in kinds  # the step's own rows were rolled back
        actions = _actions_after(runtime, before)
        assert actions.count(Action.METADATA_PUT.value) == len(setup.pseudonyms)
        assert Action.SELECTION_DECISION.value not in actions  # its held entries went too
    assert store_view(setup).crowd_windows == []
    assert verified(setup) == "ok"


BANDS = ["a", "b", "c", "d"]
batch_lists = st.lists(
    st.lists(st.tuples(st.sampled_from(BANDS), st.integers(0, 5)), min_size=1, max_size=6),
    max_size=12)


@given(batch_lists)
@settings(max_examples=300, deadline=None)
def test_the_hint_predicts_what_noting_the_batch_says(
    batches: list[list[tuple[str, int]]],
) -> None:
    hint = _Completion(set(BANDS))
    for batch in batches:
        windows = [_W(p, k) for p, k in batch]
        predicted = hint.completes(windows)  # type: ignore[arg-type]
        assert hint.add(windows) == predicted  # type: ignore[arg-type]


class _W:
    """The two fields of a LiveWindow the hint reads."""

    def __init__(self, pseudonym: str, window: int) -> None:
        self.pseudonym, self.window = pseudonym, window
