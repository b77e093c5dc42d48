"""``run_event``: source → gates → sentiment → selection → encrypted store, on a virtual clock.

One database transaction per window (not per frame) holds that window's raw segments, window
scores, the crowd aggregate, the batched ``capture.drop`` audit entry, any track requests and
any selection decision — data and audit entries commit together. Time is virtual: window ``k``
starts at ``start_at + k · window`` and its transaction is stamped with the window's end, so a
run is reproducible and can go faster than real time (``speed="max"``) or pace itself
(``speed="realtime"``).

Decisions are made only inside the event window: at its first scored window, then every
``decision_every``, and at once when the crowd EMA falls below the Adaptive Flow threshold.

A live run holds its event's run lock (:meth:`EncryptedStore.run_lock`), and each window's
transaction also counts the window as committed. A run that dies (``kill -9``, power loss)
leaves its row ``running`` with nobody holding the lock: the store shows it ``interrupted``,
and the next run of that event records it so and goes on only as told — ``mode="resume"``
continues the same run id after its last committed window, ``mode="new-run"`` starts another
run id (the old one stays interrupted). A resume recomputes the committed windows from the
source without storing them again: gates, scores, the crowd EMA and the selector are
deterministic for a seeded synthetic crowd, WAV files and a replayed NATS stream, so the
state at the cut, and everything stored after it, is what an uninterrupted run would have.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from retention.errors import ConfigError, FlowauditError, InputError
from retention.ground.times import parse_utc
from retention.policy import Policy
from retention.store import (
    RUN_FAILED,
    RUN_FINISHED,
    RUN_INTERRUPTED,
    RUN_RUNNING,
    EncryptedStore,
    RunState,
    RunTotals,
    StoreTransaction,
)

from .artist import load_artist_control
from .catalogue import Catalogue, load_catalogue
from .event import EventSpec, TrackRequest
from .features import FEATURE_NAMES, FeatureSet, extract
from .frames import FRAME, FRAME_MS, SAMPLE_RATE, FrameSource, Window
from .gates import DROP_REASONS, GateResult, Gates
from .selection import Choice, Selector
from .sentiment import CrowdSentiment, Scorer, Snapshot, checked_scores, load_scorer

__all__ = ["RunSummary", "run_event", "capture_start", "SPEEDS", "MODES", "TextFilter",
           "build_selector", "DecisionPacer", "store_crowd_score", "percentiles",
           "register_wristband"]

SPEEDS = ("max", "realtime")
#: what to do about the event's earlier run: none may exist ("start"), or it was interrupted
#: and is continued ("resume") or left as it is for a new run id ("new-run")
MODES = ("start", "resume", "new-run")
#: how long a run waits for the run lock a just-killed process may still seem to hold
LOCK_WAIT_SECONDS = 5.0
TextFilter = Callable[[str], str]
_PER_SUBJECT = ("no_consent", "withdrawn", "staff")


@dataclass
class RunSummary:
    """What a run did, in counts; also stored as the event run's ``summary``."""

    event_id: str
    run_id: int
    policy: str
    source: str
    started_at: str
    finished_at: str
    windows: int
    wristbands: int
    frames_in: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    frames_scored: int = 0
    frames_stored: int = 0
    speech_frames_detected: int = 0
    speech_seconds_stored: float = 0.0
    raw_segments: int = 0
    window_scores: int = 0
    sentiment: dict[str, float | None] = field(default_factory=dict)
    decisions: int = 0
    adaptive_flow: int = 0
    artist_overrides: int = 0
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    window_ms: dict[str, float | None] = field(default_factory=dict)
    requests: dict[str, int] = field(
        default_factory=lambda: {"received": 0, "stored": 0, "dropped": 0, "matched": 0}
    )
    scorer: str = "builtin"
    #: windows a ``--resume`` recomputed from the source without storing them again
    replayed_windows: int = 0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    timeline: list[list[Any]] = field(default_factory=list, repr=False)

    def to_dict(self, *, timeline: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not timeline:
            data.pop("timeline")
        return data

    def lines(self) -> list[str]:
        """The human-readable summary, one fact per line."""
        s = self
        frame_s = 0.03
        lines = [
            f"event {s.event_id} under {s.policy} (run {s.run_id}, source {s.source})",
            f"  virtual time   {s.started_at} -> {s.finished_at}  ({s.windows} windows, "
            f"{s.wall_seconds:.1f} s wall)",
            f"  wristbands     {s.wristbands}",
        ]
        if s.replayed_windows:
            lines.append(f"  resumed        after window {s.replayed_windows} of {s.windows}: "
                         "the committed windows were recomputed, not stored again")
        lines += [
            f"  frames in      {s.frames_in:,}  "
            f"({s.frames_in * frame_s / 3600:.2f} wristband-hours)",
        ]
        for reason, count in s.dropped.items():
            share = 100 * count / s.frames_in if s.frames_in else 0.0
            mark = "*" if reason == "speech" else " "
            lines.append(f"  dropped {reason + mark:<15}{count:>12,}  ({share:.1f} %)")
        lines.append("    * speech is withheld from the raw store only; it still counts "
                     "toward the crowd's levels")
        lines += [
            f"  frames scored  {s.frames_scored:,}",
            f"  raw stored     {s.raw_segments:,} segments, {s.frames_stored * frame_s:,.0f} s of "
            f"audio ({s.frames_stored * 960 / 1e6:,.1f} MB), {s.speech_seconds_stored:,.1f} s of "
            "it speech",
            f"  window scores  {s.window_scores:,} (scorer {s.scorer})",
        ]
        sent = s.sentiment
        if sent.get("min") is not None:
            lines.append(
                f"  sentiment      {sent['min']:.1f} .. {sent['max']:.1f} "
                f"(mean {sent['mean']:.1f}, final {sent['final']:.1f})"
            )
        lines.append(
            f"  decisions      {s.decisions}  (Adaptive Flow {s.adaptive_flow}, artist overrides "
            f"{s.artist_overrides})"
        )
        lat = s.latency_ms
        if lat.get("p50") is not None:
            lines.append(f"  latency        decision p50 {lat['p50']:.2f} ms, p99 "
                         f"{lat['p99']:.2f} ms; whole window (all wristbands) p50 "
                         f"{s.window_ms['p50']:.0f} ms")
        req = s.requests
        lines.append(
            f"  requests       {req['received']} received, {req['stored']} stored, "
            f"{req['dropped']} dropped, {req['matched']} matched the catalogue"
        )
        return lines


def capture_start(
    event: EventSpec, source: FrameSource, start_at: datetime | None = None
) -> datetime:
    """Where a run's virtual clock starts: ``start_at``, else the source's own start (a WAV
    manifest's ``starts_at``), else the event's capture start (its pre-roll)."""
    return start_at or source.starts_at or event.capture_starts


def run_event(
    store: EncryptedStore,
    event: EventSpec,
    policy: Policy,
    source: FrameSource,
    *,
    start_at: datetime | None = None,
    duration: timedelta | None = None,
    speed: str = "max",
    scorer: Scorer | None = None,
    text_filter: TextFilter | None = None,
    event_id: str | None = None,
    source_label: str = "",
    progress: Callable[[int, int], None] | None = None,
    mode: str = "start",
    lock_wait: float = LOCK_WAIT_SECONDS,
) -> RunSummary:
    """Run the whole chain over ``source`` and return its summary (see the module docstring).

    ``mode`` (one of :data:`MODES`) says what to do when the event's last run was interrupted;
    anything ambiguous is refused with an :class:`InputError` naming the option to use.
    """
    if speed not in SPEEDS:
        raise InputError(f"speed {speed!r}; use max or realtime")
    if mode not in MODES:
        raise InputError(f"run mode {mode!r}; use one of {', '.join(MODES)}")
    runner = _Runner(store, event, policy, source, scorer, text_filter, event_id, source_label)
    start = capture_start(event, source, start_at)
    windows = runner.plan(start, duration)
    check = getattr(source, "check", None)
    if check is not None:  # a remote source proves it is there before anything is stored
        check()
    with store.run_lock(runner.event_id) as lock:
        if not lock.acquire(lock_wait):
            raise InputError(
                f"event {runner.event_id!r} is being run by another process right now; wait "
                "for it to end (`flowaudit status` shows its runs)"
            )
        skip = runner.open(start, windows, mode)
        wall, cpu = time.monotonic(), time.process_time()
        try:
            for window in source.windows(start, event.frames_per_window, windows):
                if window.index < skip:
                    runner.step(window, commit=False)
                    continue
                runner.step(window)
                if progress is not None:
                    progress(window.index + 1, windows)
                if speed == "realtime":
                    due = wall + (window.index + 1 - skip) * event.window.total_seconds()
                    time.sleep(max(0.0, due - time.monotonic()))
            if runner.replayed < skip:
                raise InputError(
                    f"--resume: the source gave {runner.replayed} windows, but run "
                    f"{runner.run_id} had committed {skip}; resume with the same source"
                )
        except BaseException as exc:
            runner.abort(exc)
            raise
        return runner.finish(time.monotonic() - wall, time.process_time() - cpu)


def build_selector(
    event: EventSpec, policy: Policy, scorer_parameters: dict[str, Any],
    catalogue: Catalogue | None = None,
) -> Selector:
    """The event's track selector under the policy (catalogue, artist control, threshold):
    the batch run and the live crowd step make their decisions with the same one.
    ``catalogue``: the event's catalogue already loaded (a live step builds one per step)."""
    sel = policy.selection
    catalogue = catalogue or load_catalogue(event.catalogue)
    artist = load_artist_control(event.artist, catalogue, sel.artist_control)
    return Selector(catalogue, artist, float(sel.adaptive_flow_threshold), scorer_parameters)


@dataclass
class DecisionPacer:
    """When the crowd earns a decision: the first scored window in the event, then every
    ``every``, and at once when the crowd EMA falls below the Adaptive Flow threshold (once
    per dip: ``recovering`` holds until it is back above)."""

    threshold: float
    every: timedelta
    last: datetime | None = None
    recovering: bool = False

    def due(self, crowd: float, end: datetime) -> bool:
        below = crowd < self.threshold
        if not below:
            self.recovering = False
        due = self.last is None or end - self.last >= self.every
        if not (due or (below and not self.recovering)):
            return False
        self.last = end
        self.recovering = below
        return True


def store_crowd_score(
    tx: StoreTransaction,
    event_id: str,
    start_at: datetime,
    snapshot: Snapshot,
    *,
    retention: Any,
    k_min: int,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """The window's ``crowd_score`` record (anonymised when every zone counts ≥ k_min);
    ``extra``: more counts for the payload (a live step's late windows)."""
    if snapshot.crowd_raw is None or snapshot.crowd is None:
        return
    counts = snapshot.zone_counts
    tx.put_metadata(
        event_id=event_id,
        pseudonym=None,
        kind="crowd_score",
        start_at=start_at,
        payload={
            "crowd": round(snapshot.crowd, 2),
            "crowd_raw": round(snapshot.crowd_raw, 2),
            "trend_per_min": round(snapshot.trend_per_min, 2),
            "zones": snapshot.zones,
            "zone_raw": snapshot.zone_raw,
            "zone_counts": counts,
            "active": snapshot.active,
            **(extra or {}),
        },
        retention=retention,
        anonymised=bool(counts) and min(counts.values()) >= k_min,
    )


def register_wristband(tx: StoreTransaction, wb: Any, event_id: str, notice_version: str) -> None:
    """Register one roster wristband and its consent for an event (batch run and live workers).

    Data minimisation: a refusal keeps only its pseudonym; staff keep only the flag."""
    if wb.consent == "opted_out":
        pseudonym = tx.register_subject(wb.serial)
    elif wb.is_staff:
        pseudonym = tx.register_subject(wb.serial, is_staff=True)
    else:
        pseudonym = tx.register_subject(
            wb.serial,
            zone=wb.zone,
            age_band=wb.age_band,
            ticket_type=wb.ticket_type,
            device_model=wb.device_model,
            arrival_at=wb.arrival_at,
            is_staff=False,
        )
    tx.record_consent(
        event_id,
        pseudonym,
        status=wb.consent,
        given_at=wb.consented_from(),
        withdrawn_at=wb.withdrawn_at,
        notice_version=notice_version,
    )


def percentiles(values: list[float]) -> dict[str, float | None]:
    data = np.array(values)
    if not data.size:
        return {"p50": None, "p99": None, "max": None}
    return {
        "p50": round(float(np.percentile(data, 50)), 4),
        "p99": round(float(np.percentile(data, 99)), 4),
        "max": round(float(data.max()), 4),
    }


@dataclass
class _ScorePeriod:
    """Sums of per-wristband window scores and features until they are stored."""

    start_at: datetime
    score: np.ndarray
    count: np.ndarray
    frames: np.ndarray
    features: dict[str, np.ndarray]

    @classmethod
    def empty(cls, start_at: datetime, n: int) -> _ScorePeriod:
        names = [f for f in FEATURE_NAMES if f != "frames"]
        return cls(start_at, np.zeros(n), np.zeros(n, np.int64), np.zeros(n, np.int64),
                   {name: np.zeros(n) for name in names})

    def add(self, scores: np.ndarray, features: FeatureSet) -> None:
        valid = ~np.isnan(scores)
        self.score[valid] += scores[valid]
        self.count += valid
        self.frames[valid] += features.frames[valid].astype(np.int64)
        for name, total in self.features.items():
            values = getattr(features, name)
            total[valid] += np.nan_to_num(values[valid])


class _Runner:
    """The state of one run; ``run_event`` drives it window by window."""

    def __init__(
        self,
        store: EncryptedStore,
        event: EventSpec,
        policy: Policy,
        source: FrameSource,
        scorer: Scorer | None,
        text_filter: TextFilter | None,
        event_id: str | None,
        source_label: str,
    ) -> None:
        self.store, self.event, self.policy, self.source = store, event, policy, source
        self.event_id = event_id or event.id
        self.text_filter = text_filter
        sel = policy.selection
        self.scorer = scorer or load_scorer(
            sel.scorer, allow_third_party=bool(sel.third_party_scorers), policy_name=policy.name
        )
        try:
            scorer_parameters = dict(self.scorer.main_parameters())
        except Exception as exc:
            raise ConfigError(
                f"sentiment scorer {self.scorer.name!r} failed in main_parameters() "
                f"({type(exc).__name__})"
            ) from exc
        self.selector = build_selector(event, policy, scorer_parameters)
        self.gates = Gates(policy, event, source.serials)
        self.roster = roster = event.roster()
        self.zones = [roster[s].zone if s in roster else "unregistered" for s in source.serials]
        self.zone_labels = np.asarray(self.zones)
        self.pseudonyms = [store.pseudonym(s) for s in source.serials]
        self.registered = np.array([s in roster for s in source.serials])
        self.crowd = CrowdSentiment(window_seconds=event.window.total_seconds())
        self.raw_retention = policy.retention.raw_audio
        self.keep_raw = self.raw_retention is None or self.raw_retention > timedelta(0)
        self.meta_retention = policy.retention.metadata
        self.k_min = int(policy.reid.k_min)
        self.requests = sorted(event.requests, key=lambda r: r.at)
        self.source_label = source_label or type(source).__name__
        self.latencies: list[float] = []
        self.window_times: list[float] = []
        self.crowd_values: list[float] = []
        self.pacer = DecisionPacer(self.selector.threshold, event.decision_every)
        self.summary: RunSummary | None = None
        self.run_id = 0
        self.windows = 0
        self.started: datetime | None = None
        self.period: _ScorePeriod | None = None
        self.replayed = 0

    # -- set-up ------------------------------------------------------------------------------
    def plan(self, start: datetime, duration: timedelta | None) -> int:
        span = self.event.window
        bounded = self.source.available_windows(self.event.frames_per_window)
        if duration is not None:
            if duration <= timedelta(0):
                raise InputError("--duration must be positive, e.g. 10m")
            count = math.ceil(duration / span)
        elif bounded is None:
            count = math.ceil((self.event.capture_ends - start) / span)
        else:
            count = bounded
        if bounded is not None:
            count = min(count, bounded)
        if count <= 0:
            raise InputError(
                f"nothing to capture: the run starts at {start.isoformat()}, after the event's "
                f"capture ends ({self.event.capture_ends.isoformat()}); give --duration or an "
                "earlier --now"
            )
        self.windows = count
        return count

    def plan_record(self, start: datetime, windows: int) -> dict[str, Any]:
        """What makes this run this run: a ``--resume`` must plan exactly the same.

        Digests, not content: the wristbands as their pseudonyms' order, the event file as its
        parsed settings (wherever the file lives now).
        """
        spec = {k: v for k, v in asdict(self.event).items() if k != "source"}
        seed = getattr(self.source, "seed", None)
        return {
            "start": start.isoformat(),
            "windows": windows,
            "window_seconds": self.event.window.total_seconds(),
            "source": self.source_label,
            "seed": seed if isinstance(seed, int) else None,
            "wristbands": len(self.pseudonyms),
            "wristbands_sha256": _digest("\n".join(self.pseudonyms)),
            "event_sha256": _digest(json.dumps(spec, sort_keys=True, default=str)),
            "scorer": self.scorer.name,
        }

    def open(self, start: datetime, windows: int, mode: str) -> int:
        """Start, resume or restart the event's run as ``mode`` says; return the windows to
        recompute without storing (those a resumed run had committed)."""
        existing = self.store.event_status(self.event_id)
        if existing is not None and existing.policy_sha256 != self.policy.sha256:
            if mode != "start":
                raise InputError(
                    f"--{mode}: event {self.event_id!r} runs under {existing.policy_name} and "
                    "this command's policy differs; give the same --policy as its first run"
                )
            raise InputError(
                f"event {self.event_id!r} already ran in this home (under "
                f"{existing.policy_name}); give another --event-id or use a fresh --home"
            )
        last = existing.last_run if existing is not None else None
        if last is not None and (last.status == RUN_RUNNING or not last.recorded):
            # we hold the event's run lock, so whoever left this run "running" is gone
            with self.store.transaction(_virtual_at(last, start), actor="pipeline") as tx:
                tx.mark_interrupted(last.run_id, event_id=self.event_id)
            last = self.store.runs(self.event_id)[-1]
        plan = self.plan_record(start, windows)
        if last is None:
            if mode != "start":
                raise InputError(
                    f"--{mode}: event {self.event_id!r} has no run in this home to follow; "
                    f"run it without --{mode}"
                )
            self.register(start, windows, plan)
            return 0
        if last.status == RUN_FINISHED:
            if mode == "resume":
                raise InputError(
                    f"--resume: run {last.run_id} of event {self.event_id!r} finished; nothing "
                    "to resume (give another --event-id to run the event again)"
                )
            raise InputError(
                f"event {self.event_id!r} already ran in this home (under "
                f"{existing.policy_name if existing else self.policy.name}); give another "
                "--event-id or use a fresh --home"
            )
        if mode == "start":
            raise InputError(
                f"event {self.event_id!r}: run {last.run_id} "
                f"{'was interrupted' if last.status == RUN_INTERRUPTED else 'failed'} after "
                f"{_progress_of(last)}; continue it with --resume, or start a new run with "
                "--new-run (the old one stays as it is)"
            )
        if mode == "new-run":
            self.register(start, windows, plan)
            return 0
        return self.resume(last, start, plan)

    def resume(self, last: RunState, start: datetime, plan: dict[str, Any]) -> int:
        if not last.plan.get("start"):
            raise InputError(
                f"--resume: run {last.run_id} of event {self.event_id!r} kept no plan and no "
                "count of committed windows (an older flowaudit started it); use --new-run"
            )
        for key, value in plan.items():
            before = last.plan.get(key, value)
            if before != value:
                raise InputError(
                    f"--resume: run {last.run_id} of event {self.event_id!r} was started with "
                    f"{_PLAN_NAMES.get(key, key)} = {before}, this command gives {value}; "
                    "repeat the first command's --event, --source, --seed, --now and --duration"
                )
        with self.store.transaction(_virtual_at(last, start), actor="pipeline") as tx:
            done = tx.resume_run(last.run_id, event_id=self.event_id)
        self.run_id = last.run_id
        self._begin(start)
        return done

    def register(self, start: datetime, windows: int, plan: dict[str, Any]) -> None:
        event, policy = self.event, self.policy
        with self.store.transaction(start, actor="pipeline") as tx:
            tx.register_event(
                self.event_id,
                name=event.name,
                venue=event.venue,
                starts_at=event.starts_at,
                ends_at=event.ends_at,
                policy_name=policy.name,
                policy_sha256=policy.sha256,
            )
            for wb in event.wristbands:
                self._register_wristband(tx, wb)
            self.run_id = tx.start_run(
                self.event_id,
                policy_name=policy.name,
                policy_sha256=policy.sha256,
                source=self.source_label,
                windows=windows,
                window_seconds=event.window.total_seconds(),
                scorer=self.scorer.name,
                wristbands=len(self.source.serials),
                plan=plan,
            )
        self._begin(start)

    def _begin(self, start: datetime) -> None:
        self.started = start
        self.summary = RunSummary(
            event_id=self.event_id,
            run_id=self.run_id,
            policy=self.policy.name,
            source=self.source_label,
            started_at=start.isoformat(),
            finished_at=start.isoformat(),
            windows=0,
            wristbands=len(self.source.serials),
            scorer=self.scorer.name,
        )

    def _register_wristband(self, tx: StoreTransaction, wb: Any) -> None:
        register_wristband(tx, wb, self.event_id, self.event.notice_version)

    # -- one window --------------------------------------------------------------------------
    def step(self, window: Window, *, commit: bool = True) -> None:
        """Gate, score and decide on one window, then store it in one transaction — or, with
        ``commit=False`` (a resume passing a window it had committed), only count it."""
        assert self.summary is not None
        started = time.perf_counter()
        gated = self.gates.apply(window)
        features = extract(window.pcm, gated.processed, gated.voiced)
        scores = checked_scores(self.scorer, features)
        end = window.start_at + window.n_frames * FRAME

        tick = time.perf_counter()
        snapshot = self.crowd.update(scores, self.zone_labels)
        choice = self._maybe_decide(window, end, snapshot)
        latency = (time.perf_counter() - tick) * 1000
        self.window_times.append((time.perf_counter() - started) * 1000)

        self._accumulate(window, scores, features)
        period_done = (window.index + 1) % self.event.windows_per_score == 0
        store_scores = period_done or window.index + 1 == self.windows
        if not commit:
            self._store_raw(None, window, gated)
            if store_scores:
                self._store_scores(None)
            self._requests(None, window.start_at, end)
            if choice is not None:
                self.latencies.append(latency)
            self.replayed += 1
            self.summary.replayed_windows = self.replayed
            self._count(window, gated, scores, snapshot, choice)
            return
        with self.store.transaction(end, actor="pipeline") as tx:
            self._store_raw(tx, window, gated)
            if store_scores:
                self._store_scores(tx)
            self._store_crowd(tx, window, snapshot)
            self._audit_drops(tx, window, gated)
            self._requests(tx, window.start_at, end)
            if choice is not None:
                self._store_decision(tx, choice, latency)
            tx.record_progress(self.run_id, windows_done=window.index + 1)
        self._count(window, gated, scores, snapshot, choice)

    def _in_event(self, at: datetime) -> bool:
        return self.event.starts_at <= at < self.event.ends_at

    def _maybe_decide(self, window: Window, end: datetime, snapshot: Snapshot) -> Choice | None:
        if snapshot.crowd is None or not self._in_event(window.start_at):
            return None
        if not self.pacer.due(snapshot.crowd, end):
            return None
        return self.selector.decide(end, snapshot)

    def _store_raw(
        self, tx: StoreTransaction | None, window: Window, gated: GateResult
    ) -> None:
        """Store each wristband's storable span (``tx=None``: count it only)."""
        if not self.keep_raw:
            return
        storable = gated.storable
        for b in np.flatnonzero(storable.any(axis=1)).tolist():
            keep = np.flatnonzero(storable[b])
            first, last = int(keep[0]), int(keep[-1]) + 1
            speech = int((gated.voiced[b, first:last] & storable[b, first:last]).sum())
            if tx is not None:
                segment = window.pcm[b, first:last].copy()
                segment[~storable[b, first:last]] = 0  # withheld speech in the span is muted
                tx.put_raw(
                    event_id=self.event_id,
                    pseudonym=self.pseudonyms[b],
                    start_at=window.start_at + first * FRAME,
                    pcm=segment.tobytes(),
                    sample_rate=SAMPLE_RATE,
                    retention=self.raw_retention,
                    speech_frames=speech,
                )
            assert self.summary is not None
            self.summary.raw_segments += 1
            self.summary.frames_stored += int(storable[b].sum())
            self.summary.speech_seconds_stored += speech * FRAME_MS / 1000

    def _accumulate(self, window: Window, scores: np.ndarray, features: FeatureSet) -> None:
        """Add this window's scores to the current storage period (see :class:`_ScorePeriod`)."""
        if self.period is None:
            self.period = _ScorePeriod.empty(window.start_at, len(self.pseudonyms))
        self.period.add(scores, features)

    def _store_scores(self, tx: StoreTransaction | None) -> None:
        """One ``window_score`` record per wristband per ``score_every`` (data minimisation);
        ``tx=None`` closes the period and counts its records without storing them."""
        period, self.period = self.period, None
        if period is None:
            return
        assert self.summary is not None
        for b in np.flatnonzero(period.count > 0).tolist():
            n = int(period.count[b])
            if tx is None:
                self.summary.window_scores += 1
                continue
            tx.put_metadata(
                event_id=self.event_id,
                pseudonym=self.pseudonyms[b],
                kind="window_score",
                start_at=period.start_at,
                payload={
                    "score": round(float(period.score[b] / n), 2),
                    "zone": self.zones[b],
                    "features": {k: round(float(v[b] / n), 4)
                                 for k, v in period.features.items()},
                    "frames": int(period.frames[b]),
                    "windows": n,
                },
                retention=self.meta_retention,
            )
            self.summary.window_scores += 1

    def _store_crowd(self, tx: StoreTransaction, window: Window, snapshot: Snapshot) -> None:
        if snapshot.crowd_raw is None or snapshot.crowd is None:
            return
        store_crowd_score(tx, self.event_id, window.start_at, snapshot,
                          retention=self.meta_retention, k_min=self.k_min)

    def _audit_drops(self, tx: StoreTransaction, window: Window, gated: GateResult) -> None:
        counts = {r: int(n.sum()) for r, n in gated.drops.items() if n.sum()}
        if window.unregistered:
            counts["no_consent"] = counts.get("no_consent", 0) + window.unregistered
        if not counts:
            return
        wristbands: dict[str, list[str]] = {}
        for reason in _PER_SUBJECT:
            hit = (gated.drops[reason] > 0) & self.registered
            if hit.any():
                wristbands[reason] = sorted(self.pseudonyms[i] for i in np.flatnonzero(hit))
        tx.record_drops(
            self.event_id,
            window_start=window.start_at,
            frames=int(window.present.sum()) + window.unregistered,
            counts=counts,
            wristbands=wristbands,
            unregistered_wristbands=int(((gated.drops["no_consent"] > 0) & ~self.registered).sum()),
            unregistered_frames=window.unregistered,
        )

    def _request_allowed(self, request: TrackRequest) -> tuple[bool, str | None]:
        wb = self.roster.get(request.serial)
        if wb is None or wb.consent == "opted_out":
            return False, None
        start = wb.consented_from()
        if self.gates.require_consent and start is not None and request.at < start:
            return False, None
        if wb.withdrawn_at is not None and request.at >= wb.withdrawn_at:
            return False, None
        if self.gates.window_only and not self._in_event(request.at):
            return False, None
        return True, self.store.pseudonym(request.serial)

    def _requests(self, tx: StoreTransaction | None, start: datetime, end: datetime) -> None:
        """Track requests due in this window reach the selector; stored unless ``tx=None``."""
        assert self.summary is not None
        while self.requests and self.requests[0].at < end:
            request = self.requests.pop(0)
            self.summary.requests["received"] += 1
            allowed, pseudonym = self._request_allowed(request)
            early = self.started is not None and request.at < self.started  # before we listened
            if not allowed or early:
                self.summary.requests["dropped"] += 1
                continue
            matched = self.selector.add_request(request.text)
            self.summary.requests["matched"] += int(matched)
            if tx is None:  # a committed window: the request is stored already
                self.summary.requests["stored"] += 1
                continue
            text = request.text
            if self.text_filter is not None:
                try:
                    text = self.text_filter(text)
                except FlowauditError:
                    raise
                except Exception as exc:
                    raise ConfigError(
                        f"the text filter failed on a track request ({type(exc).__name__})"
                    ) from exc
            tx.put_metadata(
                event_id=self.event_id,
                pseudonym=pseudonym,
                kind="track_request",
                start_at=request.at,
                payload={"text": text, "matched": matched},
                retention=self.meta_retention,
            )
            self.summary.requests["stored"] += 1

    def _store_decision(self, tx: StoreTransaction, choice: Choice, latency: float) -> None:
        tx.record_decision(
            self.event_id,
            self.run_id,
            decided_at=choice.at,
            track_id=choice.track_id,
            crowd_sentiment=choice.crowd_sentiment,
            adaptive_flow=choice.adaptive_flow,
            artist_override=choice.artist_override,
            inputs=choice.inputs,
            parameters=choice.parameters,
            explanation=choice.explanation,
            latency_ms=round(latency, 4),
        )
        self.latencies.append(latency)

    def _count(
        self,
        window: Window,
        gated: GateResult,
        scores: np.ndarray,
        snapshot: Snapshot,
        choice: Choice | None,
    ) -> None:
        s = self.summary
        assert s is not None
        s.windows += 1
        s.frames_in += int(window.present.sum()) + window.unregistered
        for reason, per in gated.drops.items():
            s.dropped[reason] += int(per.sum())
        s.dropped["no_consent"] += window.unregistered
        s.frames_scored += int(gated.processed.sum())
        s.speech_frames_detected += int(gated.voiced.sum())
        if snapshot.crowd is not None and self._in_event(window.start_at):
            self.crowd_values.append(snapshot.crowd)
        if snapshot.crowd is not None:
            s.timeline.append([window.start_at.isoformat(), round(snapshot.crowd, 2),
                               None if snapshot.crowd_raw is None else round(snapshot.crowd_raw, 2),
                               snapshot.active])
        if choice is not None:
            s.decisions += 1
            s.adaptive_flow += int(choice.adaptive_flow)
            s.artist_overrides += int(choice.artist_override)
        s.finished_at = (window.start_at + window.n_frames * FRAME).isoformat()

    # -- end ---------------------------------------------------------------------------------
    def finish(self, wall_seconds: float, cpu_seconds: float) -> RunSummary:
        s = self.summary
        assert s is not None
        values = np.array(self.crowd_values)
        s.sentiment = {
            "min": round(float(values.min()), 2) if values.size else None,
            "max": round(float(values.max()), 2) if values.size else None,
            "mean": round(float(values.mean()), 2) if values.size else None,
            "final": round(float(values[-1]), 2) if values.size else None,
        }
        s.latency_ms = percentiles(self.latencies)
        s.window_ms = percentiles(self.window_times)
        s.speech_seconds_stored = round(s.speech_seconds_stored, 2)
        s.wall_seconds = round(wall_seconds, 3)
        s.cpu_seconds = round(cpu_seconds, 3)
        with self.store.transaction(parse_utc(s.finished_at), actor="pipeline") as tx:
            self._store_scores(tx)  # a source that ended before the plan leaves a period open
            totals = RunTotals(
                frames_in=s.frames_in,
                dropped=s.dropped,
                raw_segments=s.raw_segments,
                speech_seconds_stored=s.speech_seconds_stored,
                decisions=s.decisions,
                adaptive_flow=s.adaptive_flow,
                artist_overrides=s.artist_overrides,
            )
            tx.finish_run(self.run_id, event_id=self.event_id, totals=totals,
                          summary=s.to_dict(timeline=True))
        return s

    def abort(self, exc: BaseException) -> None:
        """Mark the run as failed, or interrupted on Ctrl-C (the windows already committed
        stay, with their audit entries; ``--resume`` can go on from them)."""
        if self.summary is None or not self.run_id:
            return
        at = parse_utc(self.summary.finished_at)
        status = RUN_INTERRUPTED if isinstance(exc, KeyboardInterrupt) else RUN_FAILED
        try:
            with self.store.transaction(at, actor="pipeline") as tx:
                tx.abort_run(self.run_id, event_id=self.event_id, error=type(exc).__name__,
                             windows_done=self.summary.windows, summary=self.summary.to_dict(),
                             status=status)
        except FlowauditError:
            pass  # the original error matters more than a failed bookkeeping write


#: how a ``--resume`` refusal names a plan entry that differs
_PLAN_NAMES = {
    "start": "the start (--now, the WAV manifest's starts_at or the event's capture start)",
    "windows": "the number of windows (--duration, the WAV files' length)",
    "window_seconds": "the event's window",
    "source": "--source",
    "seed": "--seed",
    "wristbands": "the number of wristbands (--source)",
    "wristbands_sha256": "the wristbands' digest (--source, the event's roster)",
    "event_sha256": "the event file's digest (--event)",
    "scorer": "the policy's scorer",
}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _virtual_at(run: RunState, fallback: datetime) -> datetime:
    """The end of a run's last committed window on its virtual clock: when it was last alive."""
    start = run.plan.get("start")
    seconds = run.plan.get("window_seconds")
    if not isinstance(start, str) or not isinstance(seconds, int | float):
        return fallback
    return parse_utc(start) + timedelta(seconds=float(seconds) * run.windows_done)


def _progress_of(run: RunState) -> str:
    planned = f" of {run.windows}" if run.windows is not None else ""
    return f"{run.windows_done}{planned} windows committed"
