"""A live event streaming into a real store while the console page is open, for the
Playwright tests of the page.

:class:`LiveDriver` is the worker's commit path without the broker: per window it builds what
the gateway publishes for each wristband (features of a scripted crowd curve, drop counts, the
storable PCM), commits the burst with :class:`~pipeline.live.commit.WindowCommitter` in one
transaction, then takes the due crowd steps with :class:`~pipeline.live.selector.CrowdStepper`,
so the crowd EMAs, Adaptive Flow and the next-track decisions (and the console's controls that
the step applies) are the real ones, in a real SQLite file or PostgreSQL schema.

The event timeline runs faster than the wall clock (a 3 s window every ``interval`` seconds)
and starts at the wall clock, so it is always ahead of it: a control posted now is due at the
very next decision.

:class:`ConsoleServer` runs uvicorn on a free loopback port in a thread of the test process.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

from flowaudit.config import Settings
from flowaudit.runtime import Runtime, initialise_home, open_runtime
from pipeline.event import EventSpec, load_event
from pipeline.features import FEATURE_NAMES
from pipeline.frames import FRAME_BYTES
from pipeline.gates import DROP_REASONS
from pipeline.live.commit import WindowCommitter
from pipeline.live.selector import CrowdStepper
from pipeline.live.wire import LiveWindow, window_start
from pipeline.sentiment import BuiltinScorer
from retention.models import AuditEntry, Decision
from retention.policy import Policy, load_policy
from tests._pg import fresh_schema
from tests.pipeline.pipeline_helpers import event_doc, to_toml
from tests.servers import free_port, wait_for_port

__all__ = [
    "ConsoleEvent",
    "ConsoleServer",
    "LiveDriver",
    "make_event",
    "pg_schema",
    "crowd_curve",
    "decisions_since",
    "last_decision_id",
    "audit_entries",
]

WINDOW = timedelta(seconds=3)
#: the builtin scorer's ramps (feature, low, high): a score of 100·f puts each feature at f
_RAMPS = (("level_dbfs", -40.0, -14.0), ("clap_rate", 0.0, 2.5), ("centroid_hz", 500.0, 1800.0),
          ("voiced_ratio", 0.0, 1.0), ("flux", 0.10, 0.40))
_ZONE_OFFSET = {"front": 8.0, "centre": 2.0, "bar": -6.0, "back": -10.0}


def crowd_curve(k: int) -> float:
    """The scripted crowd of window ``k``: a slow swell with a dip under 40 (Adaptive Flow)."""
    return 52.0 + 30.0 * math.sin(2 * math.pi * (k + 6) / 24)


@dataclass
class ConsoleEvent:
    """One live event in the test home: its file, spec, policy and what the driver sends."""

    event_file: Path
    spec: EventSpec
    policy: Policy

    @property
    def id(self) -> str:
        return self.spec.id


def make_event(directory: Path, event_id: str, policy_name: str, *, starts: datetime,
               wristbands: int = 12) -> ConsoleEvent:
    """An event file starting at ``starts`` (2 h set, no pre-roll, 3 s windows, a decision
    every 15 s and at once on an Adaptive Flow dip), without the demo's artist files: the
    only artist controls are the console's."""
    doc = event_doc(**{
        "event__id": event_id,
        "event__name": f"Console test · {policy_name}",
        "event__starts": starts,
        "event__ends": starts + timedelta(hours=2),
        "capture__pre_roll": "0s",
        "capture__window": "3s",
        "capture__score_every": "3s",
        "selection__decision_every": "15s",
        "artist__veto": None,
        "artist__pinned": None,
        "artist__overrides": None,
        "wristbands__generate__count": wristbands,
        "wristbands__generate__staff": 1,
        "wristbands__generate__opted_out": 0.1,
    })
    path = directory / f"{event_id}.toml"
    path.write_text(to_toml(doc), encoding="utf-8")
    return ConsoleEvent(path, load_event(path), load_policy(policy_name))


#: a PostgreSQL URL on a fresh schema for a whole module, dropped afterwards
pg_schema = fresh_schema


def new_home(directory: Path, db_url: str | None) -> Settings:
    return initialise_home(directory, db_url=db_url or None, policy="privacy-by-default")


class LiveDriver:
    """Streams one event into the store window by window in a thread (module docstring)."""

    def __init__(self, settings: Settings, event: ConsoleEvent, *, interval: float = 0.25,
                 curve: Callable[[int], float] = crowd_curve, seed: int = 5) -> None:
        self.settings, self.event, self.interval, self.curve = settings, event, interval, curve
        self.rng = np.random.default_rng(seed)
        self.window = -1  # the last window committed
        self.steps = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._running = threading.Event()
        self._lock = threading.Lock()  # held while a window is committed and stepped
        self._thread: threading.Thread | None = None
        self.runtime: Runtime = open_runtime(settings, event.spec.capture_starts)
        spec, policy, scorer = event.spec, event.policy, BuiltinScorer()
        self.committer = WindowCommitter(self.runtime.store, spec, policy, scorer,
                                         worker="console-test")
        self.stepper = CrowdStepper(self.runtime.store, spec, policy, scorer.main_parameters(),
                                    scorer.name, worker="console-test", settle=0.0)
        self.stepper.register()
        store = self.runtime.store
        self.bands = [(store.pseudonym(w.serial), w.zone, w.consent, w.is_staff)
                      for w in spec.wristbands]

    # -- the thread ------------------------------------------------------------------------
    def start(self) -> LiveDriver:
        self._running.set()
        self._thread = threading.Thread(target=self._run, name=f"driver-{self.event.id}",
                                        daemon=True)
        self._thread.start()
        return self

    def pause(self) -> None:
        """Stop after the window in hand (returns once it is committed and stepped)."""
        self._running.clear()
        with self._lock:
            pass

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.runtime.close()
        if self.error is not None:
            raise AssertionError(f"the live driver failed: {self.error!r}") from self.error

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._running.wait()
                if self._stop.is_set():
                    return
                tick = time.monotonic()
                with self._lock:
                    if not self._running.is_set():
                        continue
                    self.advance()
                self._stop.wait(max(0.0, self.interval - (time.monotonic() - tick)))
        except BaseException as exc:  # reported by stop() and wait_for()
            self.error = exc

    def advance(self, hold: Collection[int] = ()) -> None:
        """Commit the next window of every wristband (but those at the indices ``hold``, as a
        killed worker holds its messages), then take the due crowd steps."""
        k = self.window + 1
        windows = [self._window(i, k) for i in range(len(self.bands)) if i not in hold]
        self.committer.commit_batch(windows, now=datetime.now(UTC))
        self.steps += self.stepper.step_all()
        self.window = k

    def commit_late(self, held: Collection[tuple[int, int]]) -> None:
        """Commit the ``(wristband index, window)`` windows held back (redelivered after their
        crowd steps were taken), then take the due crowd steps."""
        self.committer.commit_batch([self._window(i, k) for i, k in held],
                                    now=datetime.now(UTC))
        self.steps += self.stepper.step_all()

    def advance_until(self, check: Callable[[], list[Any]], limit: int = 60) -> list[Any]:
        """While paused: commit windows one by one until ``check`` finds something; nothing
        is committed after it, so what the page shows last is what ``check`` found."""
        assert not self._running.is_set(), "pause the driver first"
        for _ in range(limit):
            with self._lock:
                self.advance()
            found = check()
            if found:
                return found
        raise AssertionError(f"nothing found in {limit} windows")

    def wait_for(self, check: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None:
                raise AssertionError(f"the live driver failed: {self.error!r}")
            if check():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what or check}")

    # -- what a gateway would publish ----------------------------------------------------------
    def _window(self, i: int, k: int) -> LiveWindow:
        pseudonym, zone, consent, staff = self.bands[i]
        spec = self.event.spec
        fpw = spec.frames_per_window
        drops = dict.fromkeys(DROP_REASONS, 0)
        start = window_start(spec.capture_starts, spec.window, k)
        if consent == "opted_out" or staff:
            drops["staff" if staff else "no_consent"] = fpw
            features = dict.fromkeys(FEATURE_NAMES, 0.0)
            return LiveWindow(event_id=spec.id, zone=zone, pseudonym=pseudonym, window=k,
                              start_at=start, frames_per_window=fpw, frames_received=fpw,
                              frames_processed=0, frames_voiced=0, features=features,
                              drops=drops, sent_at=time.time())
        target = self.curve(k) + _ZONE_OFFSET.get(zone, 0.0) + float(self.rng.normal(0, 3))
        f = min(1.0, max(0.0, target / 100))
        features = {name: lo + f * (hi - lo) for name, lo, hi in _RAMPS}
        speech = int(self.rng.integers(0, 12))
        drops["speech"] = speech
        features["frames"] = float(fpw - speech)
        offsets = tuple(range(5, 15))
        pcm = self.rng.integers(-2000, 2000, size=len(offsets) * FRAME_BYTES // 2,
                                dtype=np.int16).astype("<i2").tobytes()
        return LiveWindow(event_id=spec.id, zone=zone, pseudonym=pseudonym, window=k,
                          start_at=start, frames_per_window=fpw, frames_received=fpw,
                          frames_processed=fpw - speech, frames_voiced=speech // 2,
                          features=features, drops=drops, sent_at=time.time(), pcm=pcm,
                          pcm_frames=offsets)


class ConsoleServer:
    """uvicorn serving ``app`` on a free loopback port, in a thread (start and stop)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="console-uvicorn",
                                        daemon=True)

    def start(self) -> ConsoleServer:
        self._thread.start()
        wait_for_port(self.port)
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)


def last_decision_id(settings: Settings, event_id: str) -> int:
    """The id of the event's latest decision (0: none yet)."""
    runtime = open_runtime(settings, datetime.now(UTC))
    try:
        with runtime.store.session() as session:
            return int(session.scalar(select(func.max(Decision.id))
                                      .where(Decision.event_id == event_id)) or 0)
    finally:
        runtime.close()


def decisions_since(settings: Settings, event_id: str, after_id: int) -> list[Decision]:
    """The event's decisions with an id above ``after_id``, oldest first."""
    runtime = open_runtime(settings, datetime.now(UTC))
    try:
        with runtime.store.session() as session:
            rows = session.scalars(select(Decision).where(Decision.event_id == event_id)
                                   .where(Decision.id > after_id).order_by(Decision.id)).all()
            session.expunge_all()
            return list(rows)
    finally:
        runtime.close()


def audit_entries(settings: Settings, prefix: str) -> list[AuditEntry]:
    """Audit entries whose action starts with ``prefix``, in log order."""
    runtime = open_runtime(settings, datetime.now(UTC))
    try:
        with runtime.store.session() as session:
            rows = session.scalars(select(AuditEntry).where(AuditEntry.action.like(prefix + "%"))
                                   .order_by(AuditEntry.seq)).all()
            session.expunge_all()
            return list(rows)
    finally:
        runtime.close()
