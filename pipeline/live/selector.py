"""The live crowd step: crowd and zone sentiment and the next-track decision, once per window.

Any worker may take the step of window ``k`` once ``k`` is *settled*: every wristband of
window ``k−1`` has committed ``k``, or the stream has committed windows two past ``k``, or the
first commit of ``k`` is ``settle`` seconds old (a wristband that went quiet does not hold
the crowd up). The step runs in one transaction that locks the event's ``live_state`` row
(``SELECT … FOR UPDATE``), so steps are taken one at a time, in window order, and the
unique ``live_crowd_windows`` row makes a second attempt at the same window write nothing.

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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from retention.errors import InputError, StoreError
from retention.ground.times import parse_utc
from retention.policy import Policy
from retention.store import EncryptedStore, LiveStateData, LiveWindowRow, StoreTransaction

from ..event import EventSpec
from ..run import DecisionPacer, build_selector, register_wristband, store_crowd_score
from ..sentiment import CrowdSentiment
from .commit import worker_name

__all__ = ["CrowdStepper", "LIVE_SOURCE", "DEFAULT_SETTLE_SECONDS"]

LIVE_SOURCE = "live:nats"
DEFAULT_SETTLE_SECONDS = 2.0


class _Conflict(Exception):
    """Another worker took this step meanwhile: roll the attempt back."""


@dataclass
class _Due:
    window: int
    rows: list[LiveWindowRow]


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
        self.k_min = int(policy.reid.k_min)
        self.meta_retention = policy.retention.metadata
        self.steps = 0
        self.decisions = 0
        build_selector(event, policy, scorer_parameters)  # a bad catalogue fails at start-up

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
        return taken

    def step(self) -> bool:
        """Take the next step if it is due; ``False`` if none is (or another worker took it)."""
        state = self.store.live_state(self.event_id)
        if state is None:
            return False
        due = self._due(state)
        if due is None:
            return False
        start = due.rows[0].start_at
        end = start + self.event.window
        tick = time.perf_counter()
        try:
            with self.store.transaction(end, actor="pipeline") as tx:
                locked = tx.lock_live_state(self.event_id)
                if locked is None or locked.crowd_window != state.crowd_window:
                    raise _Conflict
                # what committed while we waited for the lock counts too
                due.rows = tx.live_windows(self.event_id, window=due.window) or due.rows
                crowd, pacer, selector = self._restore(locked)
                scores, zones = self._scores(tx, due)
                snapshot = crowd.update(scores, zones)
                decision_id = None
                in_event = self.event.starts_at <= start < self.event.ends_at
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
                                  retention=self.meta_retention, k_min=self.k_min)
                taken = tx.record_live_crowd(
                    self.event_id, window=due.window, start_at=start,
                    wristbands=int(snapshot.active),
                    crowd=None if snapshot.crowd is None else round(snapshot.crowd, 2),
                    decision_id=decision_id, state=self._dump(crowd, pacer, selector),
                    committed_at=datetime.fromtimestamp(self.clock(), UTC), worker=self.worker,
                )
                if not taken:
                    raise _Conflict
        except _Conflict:
            return False
        self.steps += 1
        self.decisions += int(decision_id is not None)
        return True

    def _due(self, state: LiveStateData) -> _Due | None:
        rows = self.store.live_windows(self.event_id, after=state.crowd_window)
        if not rows:
            return None
        k = rows[0].window
        this = [r for r in rows if r.window == k]
        if rows[-1].window >= k + 2:
            return _Due(k, this)
        oldest = min(r.committed_at for r in this).timestamp()
        if self.clock() - oldest >= self.settle:
            return _Due(k, this)
        before = {r.pseudonym for r in self.store.live_windows(self.event_id, window=k - 1)}
        if before and before <= {r.pseudonym for r in this}:
            return _Due(k, this)
        return None

    @staticmethod
    def _scores(tx: StoreTransaction, due: _Due) -> tuple[np.ndarray, np.ndarray]:
        """The window's scores and zones from its sealed ``window_score`` records."""
        wanted = [r.score_record_id for r in due.rows if r.score_record_id]
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
        selector = build_selector(self.event, self.policy, self.scorer_parameters)
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
