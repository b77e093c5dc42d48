"""The live crowd step: crowd and zone sentiment and the next-track decision, once per window.

Any worker may take the step of window ``k`` once ``k`` is *settled*: every wristband of the
roster has committed ``k``, or every wristband of window ``k−1`` has, or the stream has
committed windows two past ``k``, or the first commit of ``k`` is ``settle`` seconds old (a
wristband that went quiet does not hold the crowd up). The step locks the event's
``live_state`` row (``SELECT … FOR UPDATE``), so steps are taken one at a time, in window
order, and the unique ``live_crowd_windows`` row makes a second attempt at the same window
write nothing. It runs in a transaction of its own (:meth:`CrowdStepper.step`), or in a
savepoint of the worker's batch that completed the window (:meth:`CrowdStepper.step_within`),
so the last windows and the score/decision they make due commit together.

What the step carries from window to window — the crowd and zone EMAs, the trend history,
the decision pacing, the tracks played and the artist overrides used — lives in that row,
not in a worker's memory: a worker killed between two steps loses nothing, and the next
step, on whichever worker, goes on from the store. The decision itself is made by the batch
run's own :class:`~pipeline.selection.Selector` and :class:`~pipeline.run.DecisionPacer`
(Adaptive Flow's mood-recovery pick below the threshold), with its main parameters recorded
as the batch run records them (DSA Art 27).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from retention.errors import FlowauditError, InputError, StoreError
from retention.ground.times import parse_utc
from retention.policy import Policy
from retention.store import (
    LIVE_RUN_SOURCE,
    RUN_RUNNING,
    EncryptedStore,
    LiveStateData,
    LiveWindowMark,
    RunTotals,
    StoreTransaction,
)

from ..event import EventSpec
from ..run import DecisionPacer, build_selector, register_wristband, store_crowd_score
from ..sentiment import CrowdSentiment
from .commit import worker_name
from .controls import apply_live_controls

__all__ = ["CrowdStepper", "LIVE_SOURCE", "DEFAULT_SETTLE_SECONDS"]

LIVE_SOURCE = LIVE_RUN_SOURCE
DEFAULT_SETTLE_SECONDS = 2.0
#: how many windows back a late wristband window is still folded into the next step
LATE_HORIZON = 16
#: after the capture ends, how long without a commit before a worker closes the live run
FINISH_GRACE = 60.0


class _Conflict(Exception):
    """Another worker took this step meanwhile: roll the attempt back."""


class _Folded:
    """Which committed rows the steps folded, for the last ``LATE_HORIZON`` windows: row ids
    as ``[first, last]`` ranges per window (a window's rows are committed together, so a few
    ranges hold them). A row of a stepped window that is not in them arrived after its step:
    it is *late*, and the next step folds it in and counts it. Counters: ``rows_folded`` (on
    time or late) and ``late``; a state from before this bookkeeping starts it at its step."""

    def __init__(self, windows: dict[int, list[list[int]]], rows: int, late: int,
                 tracking: bool) -> None:
        self.windows, self.rows, self.late, self.tracking = windows, rows, late, tracking

    @classmethod
    def of(cls, state: Mapping[str, Any], stepped: int) -> _Folded:
        raw = state.get("folded")
        windows = {int(k): [list(map(int, r)) for r in v] for k, v in (raw or {}).items()}
        return cls(windows, int(state.get("rows_folded") or 0), int(state.get("late") or 0),
                   tracking=isinstance(raw, dict) or stepped < 0)

    def has(self, row: LiveWindowMark) -> bool:
        if not self.tracking:
            return True  # stepped before late windows were tracked: taken as folded
        return any(lo <= row.row_id <= hi for lo, hi in self.windows.get(row.window, ()))

    def after(self, window: int, rows: list[LiveWindowMark], late: list[LiveWindowMark]
              ) -> dict[str, Any]:
        """The bookkeeping once ``window``'s step folded ``rows`` and the ``late`` ones."""
        windows = dict(self.windows)
        for row in [*rows, *late]:
            windows[row.window] = _add(windows.get(row.window, []), row.row_id)
        keep = {k: v for k, v in windows.items() if k > window - LATE_HORIZON}
        return {"folded": {str(k): v for k, v in sorted(keep.items())},
                "rows_folded": self.rows + len(rows) + len(late),
                "late": self.late + len(late)}


def _add(ranges: list[list[int]], value: int) -> list[list[int]]:
    """``ranges`` (sorted, disjoint, inclusive) with ``value`` in them, merged."""
    out: list[list[int]] = []
    for lo, hi in sorted([*ranges, [value, value]]):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return out


@dataclass(frozen=True)
class Taken:
    """A crowd step taken: its window, and whether it made a decision."""

    window: int
    decided: bool


@dataclass
class _Due:
    window: int
    rows: list[LiveWindowMark]


class CrowdStepper:
    """Takes an event's crowd steps from the committed live windows (module docstring)."""

    def __init__(
        self,
        store: EncryptedStore,
        event: EventSpec,
        policy: Policy,
        scorer_parameters: dict[str, Any],
        scorer_name: str,
        *,
        event_id: str | None = None,
        worker: str | None = None,
        settle: float = DEFAULT_SETTLE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.event, self.policy = store, event, policy
        self.scorer_parameters, self.scorer_name = scorer_parameters, scorer_name
        self.event_id = event_id or event.id
        self.worker = worker or worker_name()
        self.settle, self.clock = settle, clock
        self.roster = frozenset(store.pseudonym(w.serial) for w in event.wristbands)
        self.k_min = int(policy.reid.k_min)
        self.meta_retention = policy.retention.metadata
        self.steps = 0
        self.decisions = 0
        # a bad catalogue fails at start-up; loaded once, a fresh selector is built per step
        self.catalogue = build_selector(event, policy, scorer_parameters).catalogue
        self.more = False  # the last step saw committed windows past its own
        # (window, unix time its step's transaction committed) of the latest steps taken
        self.done_at: deque[tuple[int, float]] = deque(maxlen=256)
        # the last look saw windows other workers committed: this one sees part of each window
        self.shared = False

    # -- registration ------------------------------------------------------------------------
    def register(self) -> int:
        """Register the event, its roster and its live run once (whichever worker starts
        first); refuse a store where the event runs under another policy. Returns the run id."""
        for _ in range(3):
            status = self.store.event_status(self.event_id)
            if status is not None:
                if status.policy_sha256 != self.policy.sha256:
                    raise InputError(
                        f"event {self.event_id!r} is stored under policy {status.policy_name}; "
                        f"start the workers with --policy {status.policy_name}"
                    )
                state = self.store.live_state(self.event_id)
                if state is not None:
                    return state.run_id
                if status.has_run:
                    raise InputError(
                        f"event {self.event_id!r} already ran in this home as a batch run; "
                        "give the live event another --event-id"
                    )
            try:
                return self._register()
            except StoreError:
                continue  # another worker registered it at the same moment: read it again
        raise StoreError(f"could not register live event {self.event_id!r}; try again")

    def _register(self) -> int:
        event, policy = self.event, self.policy
        with self.store.transaction(event.capture_starts, actor="pipeline") as tx:
            tx.register_event(self.event_id, name=event.name, venue=event.venue,
                              starts_at=event.starts_at, ends_at=event.ends_at,
                              policy_name=policy.name, policy_sha256=policy.sha256)
            for wb in event.wristbands:
                register_wristband(tx, wb, self.event_id, event.notice_version)
            windows = int((event.capture_ends - event.capture_starts) / event.window)
            run_id = tx.start_run(
                self.event_id, policy_name=policy.name, policy_sha256=policy.sha256,
                source=LIVE_SOURCE, windows=windows,
                window_seconds=event.window.total_seconds(), scorer=self.scorer_name,
                wristbands=len(event.wristbands),
                plan={"start": event.capture_starts.isoformat(), "source": LIVE_SOURCE,
                      "window_seconds": event.window.total_seconds(),
                      "scorer": self.scorer_name},
            )
            tx.open_live_state(self.event_id, run_id=run_id)
        return run_id

    # -- stepping ----------------------------------------------------------------------------
    def step_all(self, limit: int = 1000) -> int:
        """Take every step that is due now; return how many were taken."""
        taken = 0
        while taken < limit and self.step():
            taken += 1
            if not self.more:  # nothing committed past it: the next look finds nothing due
                break
        return taken

    def step(self) -> bool:
        """Take the next step if it is due; ``False`` if none is (or another worker is taking
        one right now: the state row is locked with SKIP LOCKED, so nobody waits for it)."""
        tick = time.perf_counter()
        try:
            with self.store.transaction(self.event.capture_starts, actor="pipeline") as tx, \
                    tx.audit_last():
                taken = self._take(tx, tick, finish=True)
        except _Conflict:
            return False
        return self.committed(taken)

    def step_within(self, tx: StoreTransaction) -> Taken | None:
        """Take the next step, if it is due now, in the caller's transaction (the worker's
        batch that completed the window: one commit for the windows and their step). The
        step runs in a savepoint: if it conflicts or fails, it is undone alone, the windows
        still commit, and :meth:`step` takes it later in a transaction of its own. Returns
        the step taken (``None`` if none); the caller passes it to :meth:`committed` once its
        transaction has committed."""
        tick = time.perf_counter()
        try:
            with tx.savepoint():
                return self._take(tx, tick, finish=False)
        except (_Conflict, FlowauditError):
            return None

    def committed(self, taken: Taken | None) -> bool:
        """Count a step whose transaction committed (``None``: none was taken); whether one
        was."""
        if taken is None:
            return False
        self.steps += 1
        self.decisions += int(taken.decided)
        self.done_at.append((taken.window, time.time()))
        return True

    def _take(self, tx: StoreTransaction, tick: float, *, finish: bool) -> Taken | None:
        """The step in ``tx`` if one is due (``None`` if not, after closing the run if it is
        over and ``finish``). Raises :class:`_Conflict` when another
        worker holds the state or took the step: the caller rolls the attempt back."""
        locked = tx.lock_live_state(self.event_id, skip_locked=True)
        if locked is None:
            raise _Conflict
        recent = tx.live_window_marks(self.event_id, after=locked.crowd_window - LATE_HORIZON)
        self.shared = any(r.worker != self.worker for r in recent)
        folded = _Folded.of(locked.state, locked.crowd_window)
        late = [r for r in recent if r.window <= locked.crowd_window and not folded.has(r)]
        due = self._due(recent, locked.crowd_window)
        if due is None:  # nothing to step; the run may be over (that commits)
            if finish:
                self._finish_if_over(tx, locked, recent)
            return None
        start = due.rows[0].start_at
        end = start + self.event.window
        tx.now = end
        crowd, pacer, selector = self._restore(locked)
        apply_live_controls(tx, self.event_id, selector.artist, end,
                            catalogue=selector.catalogue)
        scores, zones = self._scores(tx, due.rows + late)
        snapshot = crowd.update(scores, zones)
        in_event = self.event.starts_at <= start < self.event.ends_at
        decision_id = None
        if snapshot.crowd is not None and in_event and pacer.due(snapshot.crowd, end):
            choice = selector.decide(end, snapshot)
            latency = (time.perf_counter() - tick) * 1000
            decision_id = tx.record_decision(
                self.event_id, locked.run_id, decided_at=choice.at,
                track_id=choice.track_id, crowd_sentiment=choice.crowd_sentiment,
                adaptive_flow=choice.adaptive_flow,
                artist_override=choice.artist_override, inputs=choice.inputs,
                parameters=choice.parameters, explanation=choice.explanation,
                latency_ms=round(latency, 4),
            )
        store_crowd_score(tx, self.event_id, start, snapshot,
                          retention=self.meta_retention, k_min=self.k_min,
                          extra={"late_windows": len(late)} if late else None)
        state = {**self._dump(crowd, pacer, selector),
                 **folded.after(due.window, due.rows, late)}
        taken = tx.record_live_crowd(
            self.event_id, window=due.window, start_at=start,
            wristbands=int(snapshot.active),
            crowd=None if snapshot.crowd is None else round(snapshot.crowd, 2),
            decision_id=decision_id, state=state,
            committed_at=datetime.fromtimestamp(self.clock(), UTC), worker=self.worker,
        )
        if not taken:
            raise _Conflict
        tx.record_progress(locked.run_id, windows_done=due.window + 1)
        self.more = any(r.window > due.window for r in recent)
        return Taken(due.window, decision_id is not None)

    def _due(self, recent: list[LiveWindowMark], stepped: int) -> _Due | None:
        """The next window to step, if it is settled (module docstring); ``recent`` are the
        committed rows from a few windows before the last step on, read under the lock."""
        ahead = [r for r in recent if r.window > stepped]
        if not ahead:
            return None
        k = ahead[0].window
        this = [r for r in ahead if r.window == k]
        if ahead[-1].window >= k + 2:
            return _Due(k, this)
        bands = {r.pseudonym for r in this}
        if bands >= self.roster:  # every wristband there is: nothing more can come
            return _Due(k, this)
        oldest = min(r.committed_at for r in this).timestamp()
        if self.clock() - oldest >= self.settle:
            return _Due(k, this)
        before = {r.pseudonym for r in recent if r.window == k - 1}
        if before and before <= bands:
            return _Due(k, this)
        return None

    # -- the run's end -----------------------------------------------------------------------
    def _finish_if_over(self, tx: StoreTransaction, locked: LiveStateData,
                        recent: list[LiveWindowMark], *, stopping: bool = False) -> bool:
        """Close the live run once the event's capture is over and every window is stepped:
        the last window of the capture was stepped, or the capture ended and nothing was
        committed for ``FINISH_GRACE`` seconds (or this worker is stopping: nobody is
        streaming an event that is over). Runs in the caller's locked transaction, once."""
        if tx.run_status(locked.run_id) != RUN_RUNNING:
            return False
        planned = int((self.event.capture_ends - self.event.capture_starts) / self.event.window)
        now = self.clock()
        if any(r.window > locked.crowd_window for r in recent):
            return False
        if locked.crowd_window < planned - 1:
            if now < self.event.capture_ends.timestamp() + self.settle:
                return False
            newest = max((r.committed_at.timestamp() for r in recent), default=0.0)
            if not stopping and now - newest < FINISH_GRACE:
                return False
        tx.now = self.event.capture_ends  # the event timeline, as a batch run closes
        totals = tx.live_totals(self.event_id, locked.run_id)
        state = locked.state
        summary = {
            "event_id": self.event_id, "run_id": locked.run_id, "policy": self.policy.name,
            "source": LIVE_SOURCE, "windows": planned,
            "windows_done": min(planned, locked.crowd_window + 1),
            "wristbands": len(self.event.wristbands), "scorer": self.scorer_name,
            **totals,
            "live": {"crowd_steps": tx.live_crowd_count(self.event_id),
                     "late_windows_folded": int(state.get("late") or 0),
                     "windows_not_folded": max(0, totals["wristband_windows"]
                                               - int(state.get("rows_folded") or 0))},
        }
        run_totals = RunTotals(
            frames_in=totals["frames_in"], dropped=totals["dropped"],
            raw_segments=totals["raw_segments"], speech_seconds_stored=0.0,
            decisions=totals["decisions"], adaptive_flow=totals["adaptive_flow"],
            artist_overrides=totals["artist_overrides"])
        tx.finish_run(locked.run_id, event_id=self.event_id, totals=run_totals,
                      summary=summary)
        return True

    def finish_if_over(self) -> bool:
        """On a worker's way out: close the live run if the capture is over and every
        committed window is stepped (see :meth:`_finish_if_over`)."""
        try:
            with self.store.transaction(self.event.capture_ends, actor="pipeline") as tx:
                locked = tx.lock_live_state(self.event_id, skip_locked=True)
                if locked is None:
                    return False
                recent = tx.live_window_marks(self.event_id, after=locked.crowd_window)
                return self._finish_if_over(tx, locked, recent, stopping=True)
        except StoreError:
            return False

    @staticmethod
    def _scores(tx: StoreTransaction, rows: list[LiveWindowMark]) -> tuple[np.ndarray, np.ndarray]:
        """The rows' scores and zones from their sealed ``window_score`` records."""
        wanted = [r.score_record_id for r in rows if r.score_record_id]
        records = tx.read_metadata(wanted)
        scores = [float(r.payload["score"]) for r in records]
        zones = [str(r.payload["zone"]) for r in records]
        return np.array(scores, dtype=np.float64), np.array(zones, dtype=str)

    # -- carried state -----------------------------------------------------------------------
    def _restore(self, state: LiveStateData) -> tuple[CrowdSentiment, DecisionPacer, Any]:
        s = state.state
        crowd = CrowdSentiment(window_seconds=self.event.window.total_seconds())
        crowd.crowd = s.get("crowd")
        crowd.zones = {str(k): float(v) for k, v in (s.get("zones") or {}).items()}
        crowd._history = deque(float(v) for v in s.get("history") or [])
        selector = build_selector(self.event, self.policy, self.scorer_parameters,
                                  self.catalogue)
        pacer = DecisionPacer(selector.threshold, self.event.decision_every)
        last = s.get("last_decision")
        pacer.last = parse_utc(last) if isinstance(last, str) else None
        pacer.recovering = bool(s.get("recovering"))
        selector.played = [int(i) for i in s.get("played") or []]
        selector._recent.extend(str(a) for a in s.get("recent") or [])
        selector.artist._used = {int(i) for i in s.get("overrides_used") or []}
        return crowd, pacer, selector

    @staticmethod
    def _dump(crowd: CrowdSentiment, pacer: DecisionPacer, selector: Any) -> dict[str, Any]:
        return {
            "crowd": crowd.crowd,
            "zones": dict(crowd.zones),
            "history": list(crowd._history),
            "last_decision": pacer.last.isoformat() if pacer.last is not None else None,
            "recovering": pacer.recovering,
            "played": list(selector.played),
            "recent": list(selector._recent),
            "overrides_used": sorted(selector.artist._used),
        }
