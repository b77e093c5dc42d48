"""One live wristband window into the store, idempotently: the worker's unit of work.

The window's transaction first claims its key (event, wristband, window) in ``live_windows``;
a message that was delivered before (JetStream redelivery after ``ack_wait``, a duplicate
publish, a worker killed between commit and ack) finds the key taken and writes nothing. A
fresh claim stores, in the same transaction, what the batch run stores for a wristband window:
the PCM the policy keeps (sealed by the store), the window's score and features (a sealed
``window_score`` record), and the ``capture.drop`` audit entry of its dropped frames. Only after
this transaction commits does the worker ack the message. The worker commits a fetched batch
this way in one transaction (:meth:`WindowCommitter.commit_batch`): one lock, one commit and
one key flush for the burst every wristband sends when its window closes.

The transaction's time is the window's end on the event timeline, as in a batch run, so
retention and the audit trail read the same whichever way a window arrived.
"""

from __future__ import annotations

import math
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from retention.errors import InputError
from retention.policy import Policy
from retention.store import METADATA, RAW_AUDIO, EncryptedStore, StoreTransaction, bucket_id_for

from ..event import EventSpec
from ..features import FEATURE_NAMES, FeatureSet
from ..frames import FRAME, FRAME_BYTES, SAMPLE_RATE
from ..sentiment import Scorer, checked_scores
from .wire import LiveWindow

__all__ = ["CommitResult", "WindowCommitter", "worker_name", "PER_SUBJECT_REASONS"]

#: drop reasons that name the wristband in the audit entry (as a batch run does)
PER_SUBJECT_REASONS = ("no_consent", "withdrawn", "staff")


def worker_name() -> str:
    """``host:pid``: which worker committed a row (no personal data)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class CommitResult:
    """What one window did to the store."""

    committed: bool  # False: the key was taken already (a duplicate), nothing written
    score: float | None
    frames_stored: int


class WindowCommitter:
    """Scores and commits live windows of one event under one policy."""

    def __init__(
        self,
        store: EncryptedStore,
        event: EventSpec,
        policy: Policy,
        scorer: Scorer,
        *,
        event_id: str | None = None,
        worker: str | None = None,
    ) -> None:
        self.store, self.event, self.policy, self.scorer = store, event, policy, scorer
        self.event_id = event_id or event.id
        self.worker = worker or worker_name()
        raw = policy.retention.raw_audio
        self.raw_retention = raw
        self.keep_raw = raw is None or raw > timedelta(0)
        self.meta_retention = policy.retention.metadata
        roster = event.roster()
        self.known = {store.pseudonym(serial) for serial in roster}
        # keys this process made durable (a shredded one still raises when a row is sealed)
        self._durable_buckets: set[str] = set()
        self._durable_subjects: set[str] = set()

    def check(self, window: LiveWindow) -> None:
        """Refuse a window that is not this event's or not a roster wristband's."""
        if window.event_id != self.event_id:
            raise InputError("live window of another event on this event's stream")
        if window.pseudonym not in self.known:
            raise InputError("live window of a wristband that is not on the event's roster")
        if window.frames_per_window != self.event.frames_per_window:
            raise InputError(
                f"live window of {window.frames_per_window} frames; the event's windows hold "
                f"{self.event.frames_per_window}"
            )

    def score(self, window: LiveWindow) -> tuple[float | None, FeatureSet]:
        values = {n: np.array([float(window.features[n])]) for n in FEATURE_NAMES}
        values["frames"] = np.nan_to_num(values["frames"])
        features = FeatureSet(**values)
        score = float(checked_scores(self.scorer, features)[0])
        return (None if math.isnan(score) else score), features

    def commit(self, window: LiveWindow, *, now: datetime | None = None) -> CommitResult:
        """Store one window unless it was stored already; see the module docstring."""
        return self.commit_batch([window], now=now)[0]

    def commit_batch(
        self, windows: list[LiveWindow], *, now: datetime | None = None,
        then: Callable[[StoreTransaction], object] | None = None,
    ) -> list[CommitResult]:
        """Store a fetched batch in one transaction, each window unless it was stored already
        (one result per window, in order). All or nothing: a window the store refuses raises
        and rolls back the whole batch, so the caller can retry its windows one by one.
        ``then`` runs last in the same transaction (the crowd step of the window the batch
        completes), so the windows and what follows from them commit together."""
        if not windows:
            return []
        scored = []
        for window in windows:
            self.check(window)
            scored.append(self.score(window))
        self._make_keys_durable(windows)
        committed_at = now or datetime.now(UTC)
        # ids chosen here, so one statement claims every window with its complete row
        ids = [(uuid.uuid4().hex if self.keep_raw and w.pcm_frames else None,
                None if score is None else uuid.uuid4().hex)
               for w, (score, _) in zip(windows, scored, strict=True)]
        # no per-event lock: windows of different wristbands commit side by side (the claim's
        # unique key decides between two copies of one window); the keys they seal with were
        # made durable above, and the audit entries are appended last, so the audit chain's
        # lock covers only the appends and the commit
        with self.store.transaction(windows[0].end_at, actor="pipeline") as tx, tx.audit_last():
            fresh = tx.claim_live_windows([
                self._claim_row(w, raw_id, score_id, committed_at)
                for w, (raw_id, score_id) in zip(windows, ids, strict=True)])
            results: list[CommitResult] = []
            done: list[LiveWindow] = []
            for window, (score, features), (raw_id, score_id) in zip(
                    windows, scored, ids, strict=True):
                key = (window.pseudonym, window.window)
                if key not in fresh:  # taken earlier, or earlier in this batch
                    results.append(CommitResult(False, score, 0))
                    continue
                fresh.discard(key)
                # each window's rows and audit entries carry its own end on the event
                # timeline, as if it had its own transaction
                tx.now = window.end_at
                stored = self._store_raw(tx, window, raw_id)
                self._store_score(tx, window, score, features, score_id)
                results.append(CommitResult(True, score, stored))
                done.append(window)
            self._audit_drops(tx, done)
            if then is not None:
                then(tx)
        return results

    def _claim_row(self, window: LiveWindow, raw_id: str | None, score_id: str | None,
                   committed_at: datetime) -> dict[str, Any]:
        return {
            "event_id": self.event_id, "subject_pseudonym": window.pseudonym,
            "window": window.window, "start_at": window.start_at,
            "frames_received": window.frames_received,
            "frames_stored": len(window.pcm_frames) if raw_id else 0,
            "scored": score_id is not None,
            "drops": {k: int(v) for k, v in window.drops.items()},
            "raw_segment_id": raw_id, "score_record_id": score_id,
            "committed_at": committed_at, "worker": self.worker,
        }

    def _make_keys_durable(self, windows: list[LiveWindow]) -> None:
        """Create and persist the bucket and subject keys a batch seals with, before its
        transaction and without a common lock: when two workers create one key at once, the
        key store keeps the copy flushed first and the other worker reads that one back, so
        every row is sealed with the key the store keeps."""
        buckets: set[str] = set()
        subjects: set[str] = set()
        for window in windows:
            if self.keep_raw and window.pcm_frames:
                buckets.add(bucket_id_for(self.event_id, RAW_AUDIO,
                                          window.start_at + window.pcm_frames[0] * FRAME))
            buckets.add(bucket_id_for(self.event_id, METADATA, window.start_at))
            subjects.add(window.pseudonym)
        new_buckets = buckets - self._durable_buckets
        new_subjects = subjects - self._durable_subjects
        if not new_buckets and not new_subjects:
            return
        keys = self.store.keys
        for bucket_id in sorted(new_buckets):
            keys.bucket_key(bucket_id, create=True)
        for pseudonym in sorted(new_subjects):
            keys.subject_key(pseudonym, create=True)
        keys.flush()  # writes only the keys the store does not hold yet
        self._durable_buckets |= new_buckets
        self._durable_subjects |= new_subjects

    def _store_raw(self, tx: StoreTransaction, window: LiveWindow, raw_id: str | None) -> int:
        """The storable frames as one span (gaps muted, as a batch run mutes withheld
        speech); nothing when the policy keeps no raw audio. Returns the frames stored."""
        if raw_id is None:
            return 0
        first, last = window.pcm_frames[0], window.pcm_frames[-1]
        span = bytearray((last - first + 1) * FRAME_BYTES)
        for i, offset in enumerate(window.pcm_frames):
            at = (offset - first) * FRAME_BYTES
            span[at : at + FRAME_BYTES] = window.pcm[i * FRAME_BYTES : (i + 1) * FRAME_BYTES]
        tx.put_raw(
            record_id=raw_id,
            event_id=self.event_id,
            pseudonym=window.pseudonym,
            start_at=window.start_at + first * FRAME,
            pcm=bytes(span),
            sample_rate=SAMPLE_RATE,
            retention=self.raw_retention,
            speech_frames=window.speech_frames,
        )
        return len(window.pcm_frames)

    def _store_score(
        self, tx: StoreTransaction, window: LiveWindow, score: float | None,
        features: FeatureSet, score_id: str | None,
    ) -> None:
        if score is None or score_id is None:
            return
        tx.put_metadata(
            record_id=score_id,
            event_id=self.event_id,
            pseudonym=window.pseudonym,
            kind="window_score",
            start_at=window.start_at,
            payload={
                "score": round(score, 2),
                "zone": window.zone,
                "features": {n: round(float(np.nan_to_num(getattr(features, n)[0])), 4)
                             for n in FEATURE_NAMES if n != "frames"},
                "frames": int(features.frames[0]),
                "windows": 1,
                "window": window.window,
            },
            retention=self.meta_retention,
        )

    def _audit_drops(self, tx: StoreTransaction, windows: list[LiveWindow]) -> None:
        """One ``capture.drop`` entry per window of the batch, as a batch run writes one per
        window: the counts summed over its wristbands, the pseudonyms named per reason. A
        window split over several batches (or workers) has one entry per part; together they
        count every dropped frame once (only freshly claimed windows are passed in)."""
        by_window: dict[int, list[LiveWindow]] = {}
        for window in windows:
            if any(window.drops.values()):
                by_window.setdefault(window.window, []).append(window)
        for part in by_window.values():
            counts: dict[str, int] = {}
            wristbands: dict[str, list[str]] = {}
            for window in part:
                for reason, n in window.drops.items():
                    if n:
                        counts[reason] = counts.get(reason, 0) + int(n)
                        if reason in PER_SUBJECT_REASONS:
                            wristbands.setdefault(reason, []).append(window.pseudonym)
            tx.now = part[0].end_at
            tx.record_drops(
                self.event_id,
                window_start=part[0].start_at,
                frames=sum(w.frames_received for w in part),
                counts=counts,
                wristbands={r: sorted(p) for r, p in sorted(wristbands.items())},
            )
