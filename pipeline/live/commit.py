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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from retention.errors import InputError
from retention.policy import Policy
from retention.store import EncryptedStore, StoreTransaction

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
        self, windows: list[LiveWindow], *, now: datetime | None = None
    ) -> list[CommitResult]:
        """Store a fetched batch in one transaction, each window unless it was stored already
        (one result per window, in order). All or nothing: a window the store refuses raises
        and rolls back the whole batch, so the caller can retry its windows one by one."""
        if not windows:
            return []
        scored = []
        for window in windows:
            self.check(window)
            scored.append(self.score(window))
        committed_at = now or datetime.now(UTC)
        results: list[CommitResult] = []
        with self.store.transaction(windows[0].end_at, actor="pipeline") as tx:
            # one commit of this event at a time: a bucket or subject key is created and made
            # durable by one worker before another can seal with it (on PostgreSQL the audit
            # log's lock serialises these transactions from their first entry anyway)
            tx.lock_live_state(self.event_id)
            for window, (score, features) in zip(windows, scored, strict=True):
                # each window's rows and audit entries carry its own end on the event
                # timeline, as if it had its own transaction
                tx.now = window.end_at
                results.append(self._commit_in(tx, window, score, features, committed_at))
        return results

    def _commit_in(
        self, tx: StoreTransaction, window: LiveWindow, score: float | None,
        features: FeatureSet, committed_at: datetime,
    ) -> CommitResult:
        # the claim decides: a key taken earlier, or earlier in this batch, writes nothing
        fresh = tx.claim_live_window(
            event_id=self.event_id, pseudonym=window.pseudonym, window=window.window,
            start_at=window.start_at, frames_received=window.frames_received,
            drops=window.drops, committed_at=committed_at, worker=self.worker,
        )
        if not fresh:
            return CommitResult(False, score, 0)
        raw_id, stored = self._store_raw(tx, window)
        score_id = self._store_score(tx, window, score, features)
        self._audit_drops(tx, window)
        tx.complete_live_window(
            event_id=self.event_id, pseudonym=window.pseudonym, window=window.window,
            frames_stored=stored, raw_segment_id=raw_id, score_record_id=score_id,
        )
        return CommitResult(True, score, stored)

    def _store_raw(self, tx: StoreTransaction, window: LiveWindow) -> tuple[str | None, int]:
        """The storable frames as one span (gaps muted, as a batch run mutes withheld
        speech); nothing when the policy keeps no raw audio."""
        if not self.keep_raw or not window.pcm_frames:
            return None, 0
        first, last = window.pcm_frames[0], window.pcm_frames[-1]
        span = bytearray((last - first + 1) * FRAME_BYTES)
        for i, offset in enumerate(window.pcm_frames):
            at = (offset - first) * FRAME_BYTES
            span[at : at + FRAME_BYTES] = window.pcm[i * FRAME_BYTES : (i + 1) * FRAME_BYTES]
        raw_id = tx.put_raw(
            event_id=self.event_id,
            pseudonym=window.pseudonym,
            start_at=window.start_at + first * FRAME,
            pcm=bytes(span),
            sample_rate=SAMPLE_RATE,
            retention=self.raw_retention,
            speech_frames=window.speech_frames,
        )
        return raw_id, len(window.pcm_frames)

    def _store_score(
        self, tx: StoreTransaction, window: LiveWindow, score: float | None, features: FeatureSet
    ) -> str | None:
        if score is None:
            return None
        return tx.put_metadata(
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

    def _audit_drops(self, tx: StoreTransaction, window: LiveWindow) -> None:
        counts = {reason: int(n) for reason, n in window.drops.items() if n}
        if not counts:
            return
        wristbands = {reason: [window.pseudonym] for reason in PER_SUBJECT_REASONS
                      if counts.get(reason)}
        tx.record_drops(
            self.event_id,
            window_start=window.start_at,
            frames=window.frames_received,
            counts=counts,
            wristbands=wristbands,
        )
