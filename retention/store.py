"""The encrypted, retention-aware store: the only way audio and metadata reach the database.

Usage::

    store = EncryptedStore(engine, keys, master_key=kek, recorder=audit_log)
    with store.transaction(now) as tx:
        pseudonym = tx.register_subject("WB-000123", zone="A")
        rid = tx.put_raw(event_id="fete-2026", pseudonym=pseudonym, start_at=t, pcm=pcm,
                         sample_rate=16000, retention=timedelta(hours=72))
    segment = store.get_raw(rid, now=now)

Each record is sealed with AES-256-GCM under a key derived (HKDF) from its bucket key and its
subject key; the AAD binds it to its row, and a key commitment is checked before decrypting.
Reads refuse data past its retention even before a purge has run. ``now`` is always a
parameter, never read from a clock here.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from . import _crypto
from ._runlock import RunLock, run_is_live
from .db import map_db_errors, reading
from .errors import (
    InputError,
    IntegrityError,
    NotFoundError,
    RecordExpiredError,
    RetentionError,
)
from .ground.actions import Action
from .ground.durations import Duration, format_duration
from .keys import HoldsPepper, KeyProvider, derive_pepper
from .models import (
    BUCKET_ACTIVE,
    BUCKET_SHREDDED,
    Consent,
    Decision,
    Event,
    EventRun,
    LiveCrowdWindow,
    LiveState,
    LiveWindowRecord,
    MetadataRecord,
    RawSegment,
    RetentionBucket,
    Subject,
)
from .recorder import Recorder

__all__ = [
    "EncryptedStore",
    "StoreTransaction",
    "RawSegmentData",
    "MetadataData",
    "EventStatus",
    "RunState",
    "RunTotals",
    "RUN_STATES",
    "RUN_RUNNING",
    "RUN_FINISHED",
    "RUN_FAILED",
    "RUN_INTERRUPTED",
    "bucket_id_for",
    "live_run_totals",
    "LIVE_RUN_SOURCE",
    "RAW_AUDIO",
    "METADATA",
    "LiveWindowMark",
    "LiveWindowRow",
    "LiveStateData",
]

RAW_AUDIO = "raw_audio"
METADATA = "metadata"
_NO_SUBJECT = "-"

#: A run's state, kept as ``status`` in its summary. ``interrupted``: it stopped before its end
#: without an error of its own (killed, Ctrl-C, power lost); ``failed``: it stopped on an error.
RUN_RUNNING, RUN_FINISHED, RUN_FAILED, RUN_INTERRUPTED = (
    "running", "finished", "failed", "interrupted"
)
RUN_STATES = (RUN_RUNNING, RUN_FINISHED, RUN_FAILED, RUN_INTERRUPTED)


@dataclass(frozen=True)
class RawSegmentData:
    """A decrypted raw segment."""

    id: str
    event_id: str
    pseudonym: str | None
    start_at: datetime
    expires_at: datetime | None
    sample_rate: int
    duration_ms: int
    speech_frames: int
    pcm: bytes = field(repr=False)


@dataclass(frozen=True)
class MetadataData:
    """A decrypted metadata record."""

    id: str
    event_id: str
    pseudonym: str | None
    kind: str
    start_at: datetime
    expires_at: datetime | None
    anonymised: bool
    payload: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class RunState:
    """One run of an event as the store sees it now.

    A row that says ``running`` while no live process holds its event's run lock is shown as
    ``interrupted`` with ``recorded=False``: the run died without a word, and the next
    ``run-event`` of that event records it (:meth:`StoreTransaction.mark_interrupted`).
    """

    run_id: int
    event_id: str
    status: str
    windows_done: int  # windows committed, each with its data and audit entries
    windows: int | None  # windows planned at the start
    started_at: datetime
    plan: Mapping[str, Any] = field(default_factory=dict)
    recorded: bool = True

    @property
    def stopped(self) -> bool:
        """Ended before its last window: ``--resume`` or ``--new-run`` may follow it."""
        return self.status in (RUN_INTERRUPTED, RUN_FAILED)


@dataclass(frozen=True)
class EventStatus:
    """What the store knows of an event before a new run of it starts."""

    policy_name: str
    policy_sha256: str
    has_run: bool
    last_run: RunState | None = None


@dataclass(frozen=True)
class RunTotals:
    """The counts a finished run's audit entry keeps: never a pseudonym, never content."""

    frames_in: int
    dropped: Mapping[str, int]
    raw_segments: int
    speech_seconds_stored: float
    decisions: int
    adaptive_flow: int
    artist_overrides: int


@dataclass(frozen=True)
class LiveWindowRow:
    """One committed live wristband window: counts and record ids, never content."""

    event_id: str
    pseudonym: str
    window: int
    start_at: datetime
    frames_received: int
    frames_stored: int
    scored: bool
    drops: Mapping[str, int]
    raw_segment_id: str | None
    score_record_id: str | None
    committed_at: datetime
    worker: str
    row_id: int = 0  # the row's id: which rows a crowd step folded (late windows)


@dataclass(frozen=True)
class LiveWindowMark:
    """What a crowd step reads of a committed live window: which wristband and window, when
    and by whom it was committed, and its score's record id (no counts: a step reads a few
    hundred of these each window, and their drop counts are JSON to parse)."""

    pseudonym: str
    window: int
    start_at: datetime
    score_record_id: str | None
    committed_at: datetime
    worker: str
    row_id: int


@dataclass(frozen=True)
class LiveStateData:
    """The crowd step's carried state of one live event (see :class:`models.LiveState`)."""

    event_id: str
    run_id: int
    crowd_window: int
    state: Mapping[str, Any]


def _live_row(row: LiveWindowRecord) -> LiveWindowRow:
    return LiveWindowRow(
        event_id=row.event_id, pseudonym=row.subject_pseudonym, window=row.window,
        start_at=row.start_at, frames_received=row.frames_received,
        frames_stored=row.frames_stored, scored=row.scored, drops=dict(row.drops or {}),
        raw_segment_id=row.raw_segment_id, score_record_id=row.score_record_id,
        committed_at=row.committed_at, worker=row.worker, row_id=int(row.id),
    )


def _read_live_windows(
    session: Session, event_id: str, window: int | None, after: int | None
) -> list[LiveWindowRow]:
    """An event's committed live windows (one window, or all after one), in window order."""
    query = select(LiveWindowRecord).where(LiveWindowRecord.event_id == event_id)
    if window is not None:
        query = query.where(LiveWindowRecord.window == window)
    if after is not None:
        query = query.where(LiveWindowRecord.window > after)
    query = query.order_by(LiveWindowRecord.window, LiveWindowRecord.id)
    return [_live_row(r) for r in session.scalars(query)]


def _insert_ignoring_duplicates(session: Session, model: Any, values: dict[str, Any]) -> bool:
    """``INSERT … ON CONFLICT DO NOTHING``: ``True`` if this call inserted the row. On
    PostgreSQL a concurrent insert of the same key waits for the other transaction, then
    inserts nothing — the unique index decides, not a read before the write."""
    statement = _insert_for(session, model).on_conflict_do_nothing()
    # RETURNING, not rowcount: drivers report -1 for an INSERT whose count they do not know
    key = list(model.__table__.primary_key.columns)
    return session.execute(statement.returning(*key), values).first() is not None


def _insert_for(session: Session, model: Any) -> Any:
    """The dialect's own INSERT (it has ``on_conflict_do_nothing``) of ``model``, without
    values: they go as execute parameters, so the compiled statement is cached."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(model)


#: the source a live event's run is registered with (its workers' crowd steps)
LIVE_RUN_SOURCE = "live:nats"


def live_run_totals(session: Session, event_id: str, run_id: int) -> dict[str, Any]:
    """What a live run committed, in the keys a batch run's summary uses: wristband windows,
    frames received, scored (received less the frames dropped before analysis; speech is
    analysed, only withheld from the raw store) and stored, drops by reason, raw segments,
    window scores and decisions. A live run's closing summary, and a report of one that is
    still running, are built from it."""
    drops: dict[str, int] = {}
    frames_in = frames_stored = raw = scored = windows = 0
    query = select(LiveWindowRecord.frames_received, LiveWindowRecord.frames_stored,
                   LiveWindowRecord.drops, LiveWindowRecord.raw_segment_id,
                   LiveWindowRecord.scored).where(LiveWindowRecord.event_id == event_id)
    for received, stored, dropped, raw_id, has_score in session.execute(query):
        windows += 1
        frames_in += int(received or 0)
        frames_stored += int(stored or 0)
        raw += raw_id is not None
        scored += bool(has_score)
        for reason, n in (dropped or {}).items():
            drops[reason] = drops.get(reason, 0) + int(n)
    decided = session.execute(
        select(Decision.adaptive_flow, Decision.artist_override)
        .where(Decision.event_id == event_id, Decision.run_id == run_id)).all()
    not_analysed = sum(n for reason, n in drops.items() if reason != "speech")
    return {"wristband_windows": windows, "frames_in": frames_in,
            "frames_scored": max(0, frames_in - not_analysed), "frames_stored": frames_stored,
            "dropped": drops, "raw_segments": raw, "window_scores": scored,
            "decisions": len(decided), "adaptive_flow": sum(bool(a) for a, _ in decided),
            "artist_overrides": sum(bool(o) for _, o in decided)}


def bucket_id_for(event_id: str, category: str, at: datetime, tag: str = "") -> str:
    """Records of one event, category and UTC hour share a bucket (and so a bucket key).

    ``tag`` separates records that must outlive their hour's bucket (anonymised metadata is
    re-stored under ``metadata+anon`` so the linkable originals' bucket can be shredded).
    """
    label = f"{category}+{tag}" if tag else category
    return f"{event_id}:{label}:{at.astimezone(UTC):%Y%m%dT%H}"


def _hour_floor(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _aad(table: str, row: RawSegment | MetadataRecord, category: str) -> bytes:
    parts = [
        "flowaudit/v1",
        table,
        row.id,
        row.event_id,
        row.subject_pseudonym or _NO_SUBJECT,
        category,
        row.start_at.astimezone(UTC).isoformat(),
        row.key_id,
    ]
    return "|".join(parts).encode()


_RUN_BOOKKEEPING = ("plan", "windows_done", "interruptions", "resumes")


def _run_bookkeeping(run: EventRun) -> dict[str, Any]:
    """What a run's summary keeps through all its states: its plan and its progress."""
    summary = run.summary if isinstance(run.summary, dict) else {}
    return {k: summary[k] for k in _RUN_BOOKKEEPING if k in summary}


def _windows_of(summary: Mapping[str, Any]) -> int:
    value = summary.get("windows")
    return value if isinstance(value, int) else 0


def _require_aware(at: datetime, name: str) -> datetime:
    if at.tzinfo is None:
        raise InputError(f"{name} must be a timezone-aware time (got {at.isoformat()})")
    return at.astimezone(UTC)


class EncryptedStore:
    """Safe API over the database and the key provider; no algorithm choices for callers."""

    def __init__(
        self,
        engine: Engine,
        keys: KeyProvider,
        *,
        master_key: bytes | None = None,
        recorder: Recorder,
    ) -> None:
        self.engine = engine
        self.keys = keys
        self.recorder = recorder
        # the pepper lives in the key store (a KEK rotation keeps pseudonyms); a provider that
        # does not keep one falls back to the KEK derivation
        if isinstance(keys, HoldsPepper):
            self._pepper = keys.pepper()
        elif master_key is not None:
            self._pepper = derive_pepper(master_key)
        else:
            raise InputError("a key provider without a pepper needs the master key")
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(reading(engine), expire_on_commit=False)
        self._record_keys: dict[tuple[str, str], bytes] = {}

    # -- identity -------------------------------------------------------------------------------
    def pseudonym(self, serial: str) -> str:
        """HMAC of a wristband serial; the serial itself is never stored."""
        if not serial or not serial.strip():
            raise InputError("empty wristband serial")
        return _crypto.pseudonym(self._pepper, serial.strip())

    # -- sessions -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A read session (no commit; on SQLite it takes no write lock)."""
        with map_db_errors(), self._read_sessions() as session:
            self._follow_key_ledger(session)
            yield session

    @contextlib.contextmanager
    def transaction(self, now: datetime, actor: str = "flowaudit") -> Iterator[StoreTransaction]:
        """One atomic unit: rows, their audit entries and their new keys land together."""
        now = _require_aware(now, "now")
        with map_db_errors():
            session = self._sessions()
            try:
                self._follow_key_ledger(session)
                tx = StoreTransaction(self, session, now, actor)
                yield tx
                session.flush()
                self.keys.flush()  # keys must be durable before rows that need them commit
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    # -- keys -----------------------------------------------------------------------------------
    def _record_key(self, bucket_id: str, pseudonym: str | None, create: bool) -> bytes:
        subject = pseudonym or _NO_SUBJECT
        cache_key = (bucket_id, subject)
        cached = self._record_keys.get(cache_key)
        if cached is not None and not create:
            # another process may have shredded the bucket or erased the subject meanwhile
            subject_gone = pseudonym is not None and self.keys.is_subject_destroyed(pseudonym)
            if self.keys.is_bucket_destroyed(bucket_id) or subject_gone:
                self._record_keys.pop(cache_key, None)
            else:
                return cached
        bucket_key = self.keys.bucket_key(bucket_id, create=create)
        subject_key = self.keys.subject_key(subject, create=create) if pseudonym else b""
        key = _crypto.derive(bucket_key + subject_key, f"record|{bucket_id}|{subject}".encode())
        self._record_keys[cache_key] = key
        return key

    def _follow_key_ledger(self, session: Session) -> None:
        """A shared key store learns which keys other machines destroyed since it last looked
        (:meth:`retention.shared_keys.SharedKeyStore.follow_ledger`); theirs are then refused."""
        follow = getattr(self.keys, "follow_ledger", None)
        if follow is not None and follow(session):
            self.forget_cached_keys()

    def forget_cached_keys(self) -> None:
        """Drop derived keys from memory (done after every shred)."""
        self._record_keys.clear()

    # -- reads ----------------------------------------------------------------------------------
    def event_status(self, event_id: str) -> EventStatus | None:
        """The event's policy, whether it already ran and its latest run; ``None`` for an
        unknown event."""
        with self.session() as session:
            event = session.get(Event, event_id)
            if event is None:
                return None
            policy_name, policy_sha256 = event.policy_name, event.policy_sha256
        runs = self.runs(event_id)
        return EventStatus(policy_name, policy_sha256, bool(runs), runs[-1] if runs else None)

    # -- runs -----------------------------------------------------------------------------------
    def run_lock(self, event_id: str, *, shared: bool = False) -> RunLock:
        """The lock a live run of ``event_id`` holds (see :mod:`retention._runlock`);
        ``shared`` for each worker of a live event."""
        return RunLock(self.engine, event_id, shared=shared)

    def runs(self, event_id: str | None = None) -> list[RunState]:
        """Runs (of one event, or all), oldest first, with dead ``running`` rows shown as
        interrupted (see :class:`RunState`)."""
        query = select(EventRun).order_by(EventRun.id)
        if event_id is not None:
            query = query.where(EventRun.event_id == event_id)
        with self.session() as session:
            rows = list(session.scalars(query))
        newest = {row.event_id: row.id for row in rows}  # only an event's newest run can be live
        live: dict[str, bool] = {}
        out = []
        for row in rows:
            summary = row.summary if isinstance(row.summary, dict) else {}
            status = str(summary.get("status") or RUN_RUNNING)
            recorded = True
            if status == RUN_RUNNING:
                if row.event_id not in live:
                    live[row.event_id] = run_is_live(self.engine, row.event_id)
                if not (live[row.event_id] and row.id == newest[row.event_id]):
                    status, recorded = RUN_INTERRUPTED, False
            plan = summary.get("plan")
            plan = plan if isinstance(plan, dict) else {}
            planned = plan.get("windows")
            out.append(RunState(
                run_id=int(row.id),
                event_id=row.event_id,
                status=status,
                windows_done=int(summary.get("windows_done") or 0),
                windows=int(planned) if isinstance(planned, int) else None,
                started_at=row.started_at,
                plan=plan,
                recorded=recorded,
            ))
        return out

    # -- live windows (issue 11) ---------------------------------------------------------------
    def live_windows(
        self, event_id: str, *, window: int | None = None, after: int | None = None
    ) -> list[LiveWindowRow]:
        """Committed live wristband windows of an event (one window, or all after one)."""
        with self.session() as session:
            return _read_live_windows(session, event_id, window, after)

    def live_crowd_windows(self, event_id: str) -> list[tuple[int, float | None, int | None]]:
        """``(window, crowd, decision id)`` of every crowd step taken, in window order."""
        query = (select(LiveCrowdWindow.window, LiveCrowdWindow.crowd,
                        LiveCrowdWindow.decision_id)
                 .where(LiveCrowdWindow.event_id == event_id).order_by(LiveCrowdWindow.window))
        with self.session() as session:
            return [(int(w), c, d) for w, c, d in session.execute(query).all()]

    def live_state(self, event_id: str) -> LiveStateData | None:
        with self.session() as session:
            row = session.get(LiveState, event_id)
            if row is None:
                return None
            return LiveStateData(row.event_id, row.run_id, row.crowd_window, dict(row.state))

    def live_window_watermark(self) -> int | None:
        """The highest ``live_windows`` row id such that every row with an id up to it is
        committed (and shows now) or never will be; 0 if there is none yet; ``None`` if a
        writer holds the table right now (ask again later).

        A row's id is drawn at its insert, not at its commit: on PostgreSQL a worker can commit
        id 7 after another worker's id 8 showed, so a reader that took "the largest id seen"
        as its position would skip 7. A ``SHARE`` lock taken with ``NOWAIT`` is granted only
        when no insert is in flight; it never waits, so no worker's insert ever queues behind
        it (it is held for one ``max(id)`` read). SQLite has one writer at a time, which commits
        its ids in order, so the largest id seen is the watermark."""
        with self.session() as session:
            if session.get_bind().dialect.name == "postgresql":
                try:
                    session.connection().exec_driver_sql(
                        "LOCK TABLE live_windows IN SHARE MODE NOWAIT")
                except Exception as exc:
                    if getattr(getattr(exc, "orig", None), "sqlstate", None) == "55P03":
                        return None  # lock_not_available: an insert is in flight
                    raise
            return int(session.scalar(select(func.max(LiveWindowRecord.id))) or 0)

    def get_raw(self, record_id: str, *, now: datetime) -> RawSegmentData:
        with self.session() as session:
            row = session.get(RawSegment, record_id)
            if row is None:
                raise NotFoundError(f"no raw segment {record_id!r}")
            return self._open_raw(row, _require_aware(now, "now"))

    def get_metadata(self, record_id: str, *, now: datetime) -> MetadataData:
        with self.session() as session:
            row = session.get(MetadataRecord, record_id)
            if row is None:
                raise NotFoundError(f"no metadata record {record_id!r}")
            return self._open_metadata(row, _require_aware(now, "now"))

    def iter_raw(
        self,
        *,
        now: datetime,
        event_id: str | None = None,
        pseudonym: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        batch: int = 500,
    ) -> Iterator[RawSegmentData]:
        """Readable raw segments in time order; expired or shredded records are skipped."""
        now = _require_aware(now, "now")
        for row in self._iter_rows(RawSegment, event_id, pseudonym, since, until, None, batch):
            with contextlib.suppress(RetentionError):
                yield self._open_raw(row, now)

    def iter_metadata(
        self,
        *,
        now: datetime,
        event_id: str | None = None,
        pseudonym: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        batch: int = 500,
    ) -> Iterator[MetadataData]:
        """Readable metadata in time order; expired or shredded records are skipped."""
        now = _require_aware(now, "now")
        for row in self._iter_rows(MetadataRecord, event_id, pseudonym, since, until, kind, batch):
            with contextlib.suppress(RetentionError):
                yield self._open_metadata(row, now)

    def _iter_rows(
        self,
        model: type[RawSegment] | type[MetadataRecord],
        event_id: str | None,
        pseudonym: str | None,
        since: datetime | None,
        until: datetime | None,
        kind: str | None,
        batch: int,
    ) -> Iterator[Any]:
        """Keyset pages of ids first, then the rows: the database never sorts ciphertext."""
        conditions = []
        if event_id is not None:
            conditions.append(model.event_id == event_id)
        if pseudonym is not None:
            conditions.append(model.subject_pseudonym == pseudonym)
        if since is not None:
            conditions.append(model.start_at >= since)
        if until is not None:
            conditions.append(model.start_at < until)
        if kind is not None and model is MetadataRecord:
            conditions.append(MetadataRecord.kind == kind)
        after: tuple[datetime, str] | None = None
        while True:
            page = select(model.start_at, model.id).where(*conditions)
            if after is not None:
                page = page.where(
                    or_(
                        model.start_at > after[0],
                        and_(model.start_at == after[0], model.id > after[1]),
                    )
                )
            page = page.order_by(model.start_at, model.id).limit(batch)
            with self.session() as session:
                keys = session.execute(page).all()
                if not keys:
                    return
                found: list[Any] = list(
                    session.scalars(select(model).where(model.id.in_([k[1] for k in keys])))
                )
                rows = {r.id: r for r in found}
            for _, record_id in keys:
                if record_id in rows:
                    yield rows[record_id]
            after = (keys[-1][0], keys[-1][1])

    def _check_readable(self, row: RawSegment | MetadataRecord, now: datetime) -> None:
        if row.expires_at is not None and row.expires_at <= now:
            raise RecordExpiredError(
                f"record {row.id} expired at {row.expires_at.isoformat()} and may not be read"
            )

    def _open(self, table: str, row: RawSegment | MetadataRecord, category: str) -> bytes:
        key = self._record_key(row.key_id, row.subject_pseudonym, create=False)
        return _crypto.open_sealed(
            key, row.nonce, row.ciphertext, _aad(table, row, category), row.commitment
        )

    def _open_raw(self, row: RawSegment, now: datetime) -> RawSegmentData:
        self._check_readable(row, now)
        pcm = self._open("raw_segments", row, RAW_AUDIO)
        return RawSegmentData(
            id=row.id,
            event_id=row.event_id,
            pseudonym=row.subject_pseudonym,
            start_at=row.start_at,
            expires_at=row.expires_at,
            sample_rate=row.sample_rate,
            duration_ms=row.duration_ms,
            speech_frames=row.speech_frames,
            pcm=pcm,
        )

    def _open_metadata(self, row: MetadataRecord, now: datetime) -> MetadataData:
        self._check_readable(row, now)
        plaintext = self._open("metadata_records", row, METADATA + ":" + row.kind)
        try:
            payload = json.loads(plaintext)
        except ValueError as exc:  # authenticated yet not JSON: written by something else
            raise IntegrityError(f"metadata record {row.id} holds no valid JSON") from exc
        return MetadataData(
            id=row.id,
            event_id=row.event_id,
            pseudonym=row.subject_pseudonym,
            kind=row.kind,
            start_at=row.start_at,
            expires_at=row.expires_at,
            anonymised=row.anonymised,
            payload=payload,
        )

    # -- low-level destruction ------------------------------------------------------------------
    def shred_buckets(
        self, bucket_ids: list[str], *, now: datetime, actor: str = "purge"
    ) -> list[str]:
        """Destroy bucket keys: audit entry first, then the key, then the state change.

        Returns the ids whose keys this call destroyed. Safe to repeat: already-destroyed keys
        are skipped, and a bucket left ACTIVE by a crash after its key died is marked now.
        """
        now = _require_aware(now, "now")
        if not bucket_ids:
            return []
        with self.transaction(now, actor=actor) as tx:
            tx.audit(
                Action.BUCKET_SHRED,
                "retention_buckets",
                f"{len(bucket_ids)} buckets",
                {"bucket_ids": sorted(bucket_ids)},
            )
        destroyed = self.keys.destroy_bucket_keys(list(bucket_ids), now)
        self.forget_cached_keys()
        with self.transaction(now, actor=actor) as tx:
            tx.session.execute(
                update(RetentionBucket)
                .where(RetentionBucket.id.in_(bucket_ids), RetentionBucket.state == BUCKET_ACTIVE)
                .values(state=BUCKET_SHREDDED, shredded_at=now)
            )
        return destroyed

    def destroy_subject_key(self, pseudonym: str, *, now: datetime, actor: str = "dsr") -> bool:
        """Make every record of one wristband unreadable, whatever its retention."""
        now = _require_aware(now, "now")
        with self.transaction(now, actor=actor) as tx:
            tx.audit(Action.SUBJECT_KEY_DESTROYED, "subject", pseudonym, {})
        existed = self.keys.destroy_subject_key(pseudonym, now)
        self.forget_cached_keys()
        return existed


class StoreTransaction:
    """Writes inside one database transaction; created by :meth:`EncryptedStore.transaction`."""

    def __init__(self, store: EncryptedStore, session: Session, now: datetime, actor: str):
        self.store = store
        self.session = session
        self.now = now
        self.actor = actor
        self._buckets: dict[str, RetentionBucket] = {}
        # metadata sealed in this transaction, as read_metadata would open it, with its bucket
        # (in memory only, as the caller's payload is): a crowd step taken in the batch that
        # sealed its windows' scores reads them here, not back from the database
        self._sealed: dict[str, tuple[MetadataData, str]] = {}
        # entries held inside audit_last(): (at, action, object_type, object_id, details)
        self._held: list[tuple[datetime, Action, str, str, dict[str, Any]]] | None = None

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of the transaction that may fail on its own (SAVEPOINT): if the block raises,
        its rows and the audit entries it held are undone and the rest of the transaction
        goes on. Only inside :meth:`audit_last`, where entries are held until the end: an
        entry already appended to the chain cannot be taken back by a rollback."""
        if self._held is None:
            raise RuntimeError("a savepoint needs the audit entries held (audit_last)")
        held, buckets, sealed = len(self._held), dict(self._buckets), dict(self._sealed)
        nested = self.session.begin_nested()
        try:
            yield
            nested.commit()
        except BaseException:
            nested.rollback()
            del self._held[held:]
            self._buckets, self._sealed = buckets, sealed
            raise

    @contextlib.contextmanager
    def audit_last(self) -> Iterator[None]:
        """Hold the audit entries recorded in the block; on leaving it, flush the rows and
        append them (before the commit; an error in the block rolls everything back).

        The audit chain's lock (PostgreSQL: from the first append to the commit) then covers
        the appends and the commit only, not the sealing and inserts before them, so writers
        of one log overlap their work (the live workers). Same entries, same order, same
        transaction; each keeps the time it was recorded at."""
        if self._held is not None:
            yield
            return
        self._held = []
        try:
            yield
            self.session.flush()
            held = self._held
        finally:
            self._held = None
        for at, action, object_type, object_id, details in held:
            self.store.recorder.record(
                self.session, at=at, actor=self.actor, action=action,
                object_type=object_type, object_id=object_id, details=details,
            )

    def audit(
        self,
        action: Action,
        object_type: str,
        object_id: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append an audit entry in this transaction (or hold it, see :meth:`audit_last`)."""
        if self._held is not None:
            self._held.append((self.now, action, object_type, object_id, details or {}))
            return
        self.store.recorder.record(
            self.session,
            at=self.now,
            actor=self.actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            details=details or {},
        )

    # -- registration ---------------------------------------------------------------------------
    def register_event(
        self,
        event_id: str,
        *,
        name: str,
        starts_at: datetime,
        ends_at: datetime,
        policy_name: str,
        policy_sha256: str,
        venue: str = "",
    ) -> Event:
        """Create the event row, or return it if it exists with the same window."""
        starts_at, ends_at = (
            _require_aware(starts_at, "starts_at"),
            _require_aware(ends_at, "ends_at"),
        )
        if ends_at <= starts_at:
            raise InputError(f"event {event_id!r} ends before it starts")
        event = self.session.get(Event, event_id)
        if event is None:
            event = Event(
                id=event_id,
                name=name,
                venue=venue,
                starts_at=starts_at,
                ends_at=ends_at,
                policy_name=policy_name,
                policy_sha256=policy_sha256,
                created_at=self.now,
            )
            self.session.add(event)
            self.session.flush()
            self.audit(
                Action.EVENT_REGISTER,
                "event",
                event_id,
                {"policy": policy_name, "policy_sha256": policy_sha256},
            )
        return event

    def register_subject(self, serial: str, **attributes: Any) -> str:
        """Create (or update) the pseudonymous subject for a serial; return its pseudonym."""
        pseudonym = self.store.pseudonym(serial)
        allowed = {"zone", "age_band", "ticket_type", "device_model", "arrival_at", "is_staff"}
        unknown = set(attributes) - allowed
        if unknown:
            raise InputError(
                f"unknown subject attribute(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        subject = self.session.scalar(select(Subject).where(Subject.pseudonym == pseudonym))
        if subject is None:
            subject = Subject(pseudonym=pseudonym, created_at=self.now, is_staff=False)
            self.session.add(subject)
            self.audit(Action.SUBJECT_REGISTER, "subject", pseudonym, {})
        for key, value in attributes.items():
            setattr(subject, key, value)
        return pseudonym

    def record_consent(
        self,
        event_id: str,
        pseudonym: str,
        *,
        status: str,
        given_at: datetime | None = None,
        withdrawn_at: datetime | None = None,
        biometrics_explicit: bool = False,
        notice_version: str = "",
    ) -> Consent:
        """Store the consent state of one wristband for one event."""
        if status not in ("opted_in", "opted_out", "withdrawn"):
            raise InputError(f"consent status {status!r}; use opted_in, opted_out or withdrawn")
        subject = self.session.scalar(select(Subject).where(Subject.pseudonym == pseudonym))
        if subject is None:
            raise NotFoundError("unknown subject; register the wristband first")
        self.session.flush()
        consent = self.session.scalar(
            select(Consent).where(Consent.event_id == event_id, Consent.subject_id == subject.id)
        )
        if consent is None:
            consent = Consent(event_id=event_id, subject_id=subject.id)
            self.session.add(consent)
        consent.status = status
        consent.given_at = given_at
        consent.withdrawn_at = withdrawn_at
        consent.biometrics_explicit = biometrics_explicit
        consent.notice_version = notice_version
        self.audit(
            Action.CONSENT_RECORD, "subject", pseudonym, {"event": event_id, "status": status}
        )
        return consent

    # -- sealed writes --------------------------------------------------------------------------
    def _bucket(
        self, event_id: str, category: str, at: datetime, retention: Duration, tag: str = ""
    ) -> RetentionBucket:
        bucket_id = bucket_id_for(event_id, category, at, tag)
        bucket = self._buckets.get(bucket_id)
        if bucket is None:
            # no autoflush: the rows added so far go in with the rest at the next flush (one
            # INSERT for a batch's raw segments, not one for the first and one for the others)
            with self.session.no_autoflush:
                bucket = self.session.get(RetentionBucket, bucket_id)
        starts = _hour_floor(at)
        ends = starts + timedelta(hours=1)
        expires = None if retention is None else ends + retention
        if bucket is None:
            # INSERT … ON CONFLICT DO NOTHING: two workers opening one new bucket (the first
            # windows of an hour) both go on; the second waits for the first's row and uses
            # it, and only the one that inserted it writes bucket.open. The row goes in now:
            # the rows sealed into it reference it (no ORM relationship orders the inserts)
            opened = _insert_ignoring_duplicates(self.session, RetentionBucket, {
                "id": bucket_id, "event_id": event_id, "category": category,
                "starts_at": starts, "ends_at": ends, "expires_at": expires,
                "state": BUCKET_ACTIVE,
            })
            bucket = self.session.get(RetentionBucket, bucket_id)
            if bucket is None:  # inserted, or there: the unique key allows nothing else
                raise IntegrityError(f"bucket {bucket_id} is neither new nor stored")
            if opened:
                self.audit(
                    Action.BUCKET_OPEN,
                    "retention_bucket",
                    bucket_id,
                    {"category": category,
                     "expires_at": expires.isoformat() if expires else None},
                )
        if bucket.state != BUCKET_ACTIVE or self.store.keys.is_bucket_destroyed(bucket_id):
            raise RetentionError(
                f"bucket {bucket_id} was already shredded; refusing to write into it"
            )
        elif bucket.expires_at is not None and (expires is None or expires > bucket.expires_at):
            bucket.expires_at = expires
        self._buckets[bucket_id] = bucket
        return bucket

    def _expiry(self, start_at: datetime, retention: Duration, category: str) -> datetime | None:
        if retention is None:
            return None
        expires = start_at + retention
        if expires <= self.now:
            raise RetentionError(
                f"refusing to store {category} that is already past its retention "
                f"({format_duration(retention)} from {start_at.isoformat()})"
            )
        return expires

    def _seal(
        self, row: RawSegment | MetadataRecord, table: str, category: str, data: bytes
    ) -> None:
        key = self.store._record_key(row.key_id, row.subject_pseudonym, create=True)
        row.nonce, row.ciphertext, row.commitment = _crypto.seal(
            key, data, _aad(table, row, category)
        )

    def put_raw(
        self,
        *,
        event_id: str,
        pseudonym: str | None,
        start_at: datetime,
        pcm: bytes,
        sample_rate: int,
        retention: Duration,
        speech_frames: int = 0,
        bytes_per_sample: int = 2,
        record_id: str | None = None,
    ) -> str:
        """Seal and store one raw PCM segment (mono int16 by default); return its id
        (``record_id``: an id the caller chose beforehand, a fresh random one otherwise)."""
        start_at = _require_aware(start_at, "start_at")
        if sample_rate <= 0 or len(pcm) % bytes_per_sample:
            raise InputError("raw segment is not whole int16 samples at a positive sample rate")
        expires = self._expiry(start_at, retention, RAW_AUDIO)
        bucket = self._bucket(event_id, RAW_AUDIO, start_at, retention)
        row = RawSegment(
            id=record_id or uuid.uuid4().hex,
            event_id=event_id,
            subject_pseudonym=pseudonym,
            start_at=start_at,
            expires_at=expires,
            key_id=bucket.id,
            bucket_id=bucket.id,
            duration_ms=int(round(1000 * len(pcm) / bytes_per_sample / sample_rate)),
            sample_rate=sample_rate,
            speech_frames=speech_frames,
            byte_length=len(pcm),
            created_at=self.now,
        )
        self._seal(row, "raw_segments", RAW_AUDIO, pcm)
        self.session.add(row)
        self.audit(
            Action.RAW_PUT,
            "raw_segment",
            row.id,
            {
                "event": event_id,
                "subject": pseudonym,
                "bucket": bucket.id,
                "duration_ms": row.duration_ms,
                "speech_frames": speech_frames,
            },
        )
        return row.id

    def put_metadata(
        self,
        *,
        event_id: str,
        pseudonym: str | None,
        kind: str,
        start_at: datetime,
        payload: dict[str, Any],
        retention: Duration,
        anonymised: bool = False,
        bucket_tag: str = "",
        record_id: str | None = None,
    ) -> str:
        """Seal and store one metadata record (a JSON object); return its id (``record_id``
        as in :meth:`put_raw`)."""
        start_at = _require_aware(start_at, "start_at")
        if not kind or "|" in kind or ":" in kind:
            raise InputError(f"metadata kind {kind!r} must be a non-empty word")
        try:
            data = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise InputError(f"metadata payload is not JSON-serialisable ({exc})") from None
        expires = self._expiry(start_at, retention, METADATA)
        bucket = self._bucket(event_id, METADATA, start_at, retention, bucket_tag)
        row = MetadataRecord(
            id=record_id or uuid.uuid4().hex,
            event_id=event_id,
            subject_pseudonym=pseudonym,
            kind=kind,
            start_at=start_at,
            expires_at=expires,
            key_id=bucket.id,
            bucket_id=bucket.id,
            anonymised=anonymised,
            created_at=self.now,
        )
        self._seal(row, "metadata_records", METADATA + ":" + kind, data)
        self.session.add(row)
        self._sealed[row.id] = (MetadataData(
            id=row.id, event_id=event_id, pseudonym=pseudonym, kind=kind, start_at=start_at,
            expires_at=expires, anonymised=anonymised, payload=json.loads(data)), bucket.id)
        self.audit(
            Action.METADATA_PUT,
            "metadata_record",
            row.id,
            {
                "event": event_id,
                "subject": pseudonym,
                "bucket": bucket.id,
                "kind": kind,
            },
        )
        return row.id

    # -- event runs and their decisions ---------------------------------------------------------
    def start_run(
        self,
        event_id: str,
        *,
        policy_name: str,
        policy_sha256: str,
        source: str,
        windows: int,
        window_seconds: float,
        scorer: str,
        wristbands: int,
        plan: Mapping[str, Any] | None = None,
    ) -> int:
        """Open a run of the pipeline at this transaction's time; return the run id.

        ``plan`` (JSON: start, source, seed, …) is kept so a ``--resume`` can prove it
        continues the same run; ``windows_done`` then counts the committed windows.
        """
        run = EventRun(
            event_id=event_id,
            policy_name=policy_name,
            source=source,
            started_at=self.now,
            finished_at=None,
            summary={"status": RUN_RUNNING, "windows_done": 0,
                     "plan": {**(plan or {}), "windows": windows}},
        )
        self.session.add(run)
        self.session.flush()  # the audit entry names the run's id
        self.audit(Action.RUN_START, "event_run", str(run.id), {
            "event": event_id,
            "policy": policy_name,
            "policy_sha256": policy_sha256,
            "source": source,
            "windows": windows,
            "window_seconds": window_seconds,
            "scorer": scorer,
            "wristbands": wristbands,
        })
        return int(run.id)

    def finish_run(
        self, run_id: int, *, event_id: str, totals: RunTotals, summary: Mapping[str, Any]
    ) -> None:
        """Close a run at this transaction's time with its summary (the audit keeps totals)."""
        run = self.session.get(EventRun, run_id)
        if run is None:
            raise NotFoundError(f"no event run {run_id}")
        run.finished_at = self.now
        kept = _run_bookkeeping(run)
        run.summary = {**summary, **kept, "status": RUN_FINISHED,
                       "windows_done": max(kept.get("windows_done", 0), _windows_of(summary))}
        self.audit(Action.RUN_FINISH, "event_run", str(run_id), {"event": event_id,
                                                                  **asdict(totals)})

    def abort_run(
        self,
        run_id: int,
        *,
        event_id: str,
        error: str,
        windows_done: int,
        summary: Mapping[str, Any],
        status: str = RUN_FAILED,
    ) -> None:
        """Mark a run failed (or ``interrupted``, for Ctrl-C); ``error`` is an exception's class
        name, never its message. The committed-window count is the row's own (see
        :meth:`record_progress`): a resumed run may stop while it is still replaying."""
        if status not in (RUN_FAILED, RUN_INTERRUPTED):
            raise InputError(f"run status {status!r}; use {RUN_FAILED} or {RUN_INTERRUPTED}")
        run = self.session.get(EventRun, run_id)
        if run is not None:
            kept = _run_bookkeeping(run)
            windows_done = kept.get("windows_done", windows_done)
            run.summary = {**summary, **kept, "status": status, "error": error,
                           "windows_done": windows_done}
        self.audit(Action.RUN_ABORT, "event_run", str(run_id),
                   {"event": event_id, "error": error, "windows_done": windows_done,
                    "status": status})

    def record_progress(self, run_id: int, *, windows_done: int) -> None:
        """Count a committed window, in that window's transaction: what ``--resume`` trusts."""
        run = self.session.get(EventRun, run_id)
        if run is None:
            raise NotFoundError(f"no event run {run_id}")
        summary = dict(run.summary or {})
        summary["windows_done"] = windows_done
        run.summary = summary  # a new dict: the JSON column sees the change

    def mark_interrupted(self, run_id: int, *, event_id: str, how: str = "process ended") -> None:
        """Record that a run which still said ``running`` has no live process any more."""
        run = self.session.get(EventRun, run_id)
        if run is None:
            raise NotFoundError(f"no event run {run_id}")
        summary = dict(run.summary or {})
        done = int(summary.get("windows_done") or 0)
        summary["status"] = RUN_INTERRUPTED
        summary["interruptions"] = [*summary.get("interruptions", []),
                                    {"windows_done": done, "how": how}]
        run.summary = summary
        self.audit(Action.RUN_INTERRUPTED, "event_run", str(run_id),
                   {"event": event_id, "windows_done": done, "how": how})

    def resume_run(self, run_id: int, *, event_id: str) -> int:
        """Set a stopped run running again; return its committed windows (where it goes on)."""
        run = self.session.get(EventRun, run_id)
        if run is None:
            raise NotFoundError(f"no event run {run_id}")
        summary = dict(run.summary or {})
        previous = summary.get("status")
        if previous not in (RUN_INTERRUPTED, RUN_FAILED):
            raise InputError(f"run {run_id} is {previous}; only a stopped run can be resumed")
        done = int(summary.get("windows_done") or 0)
        summary.pop("error", None)
        summary["status"] = RUN_RUNNING
        summary["resumes"] = int(summary.get("resumes") or 0) + 1
        run.summary = summary
        self.audit(Action.RUN_RESUME, "event_run", str(run_id),
                   {"event": event_id, "from_window": done, "was": previous})
        return done

    def record_drops(
        self,
        event_id: str,
        *,
        window_start: datetime,
        frames: int,
        counts: Mapping[str, int],
        wristbands: Mapping[str, list[str]],
        unregistered_wristbands: int = 0,
        unregistered_frames: int = 0,
    ) -> None:
        """Audit one window's dropped frames by reason (and which pseudonyms, per subject)."""
        details: dict[str, Any] = {
            "event": event_id,
            "window_start": _require_aware(window_start, "window_start").isoformat(),
            "frames": frames,
            "counts": dict(counts),
            "wristbands": dict(wristbands),
        }
        if unregistered_wristbands:
            details["unregistered_wristbands"] = unregistered_wristbands
        if unregistered_frames:
            details["unregistered_frames"] = unregistered_frames
        self.audit(Action.CAPTURE_DROP, "event", event_id, details)

    def record_decision(
        self,
        event_id: str,
        run_id: int,
        *,
        decided_at: datetime,
        track_id: str,
        crowd_sentiment: float,
        adaptive_flow: bool,
        artist_override: bool,
        inputs: Mapping[str, Any],
        parameters: Mapping[str, Any],
        explanation: str,
        latency_ms: float,
    ) -> int:
        """Store a selection decision with its inputs and main parameters (DSA Art 27)."""
        row = Decision(
            event_id=event_id,
            run_id=run_id,
            decided_at=_require_aware(decided_at, "decided_at"),
            track_id=track_id,
            crowd_sentiment=crowd_sentiment,
            adaptive_flow=adaptive_flow,
            artist_override=artist_override,
            inputs=dict(inputs),
            parameters=dict(parameters),
            explanation=explanation,
            latency_ms=latency_ms,
        )
        self.session.add(row)
        self.session.flush()  # the audit entry names the decision's id
        self.audit(Action.SELECTION_DECISION, "decision", str(row.id), {
            "event": event_id,
            "run": run_id,
            "track": track_id,
            "crowd_sentiment": crowd_sentiment,
            "adaptive_flow": adaptive_flow,
            "artist_override": artist_override,
            "latency_ms": latency_ms,
        })
        return int(row.id)

    # -- live windows (issue 11) ---------------------------------------------------------------
    def claim_live_window(
        self,
        *,
        event_id: str,
        pseudonym: str,
        window: int,
        start_at: datetime,
        frames_received: int,
        drops: Mapping[str, int],
        committed_at: datetime,
        worker: str,
    ) -> bool:
        """Claim (event, wristband, window) for this transaction; ``False`` if it was committed
        already (a redelivered or duplicated message): then the caller writes nothing else."""
        return _insert_ignoring_duplicates(self.session, LiveWindowRecord, {
            "event_id": event_id,
            "subject_pseudonym": pseudonym,
            "window": int(window),
            "start_at": _require_aware(start_at, "start_at"),
            "frames_received": int(frames_received),
            "frames_stored": 0,
            "scored": False,
            "drops": {k: int(v) for k, v in drops.items()},
            "committed_at": _require_aware(committed_at, "committed_at"),
            "worker": worker[:100],
        })

    def claim_live_windows(self, rows: list[dict[str, Any]]) -> set[tuple[str, int]]:
        """Claim many windows in one statement (``INSERT … ON CONFLICT DO NOTHING RETURNING``,
        the rows complete: counts and the ids of the records the caller stores next); return
        the ``(pseudonym, window)`` keys this call inserted. Keys taken earlier — or twice in
        ``rows`` — are not returned, and the caller writes nothing for them. Rows go in key
        order, so two transactions claiming overlapping keys wait for each other in one
        order (no deadlock)."""
        if not rows:
            return set()
        values = []
        seen: set[tuple[str, int]] = set()
        for row in sorted(rows, key=lambda r: (r["subject_pseudonym"], int(r["window"]))):
            key = (row["subject_pseudonym"], int(row["window"]))
            if key in seen:
                continue
            seen.add(key)
            values.append({**row, "window": int(row["window"]), "worker": row["worker"][:100],
                           "start_at": _require_aware(row["start_at"], "start_at"),
                           "committed_at": _require_aware(row["committed_at"], "committed_at")})
        # one statement for any number of rows: the rows go as executemany parameters, which
        # SQLAlchemy sends as one multi-row INSERT (its "insertmanyvalues"), so the statement
        # is compiled once per process instead of once per batch (a .values(list) is not cached)
        statement = _insert_for(self.session, LiveWindowRecord).on_conflict_do_nothing(
        ).returning(LiveWindowRecord.subject_pseudonym, LiveWindowRecord.window)
        return {(str(p), int(w)) for p, w in self.session.execute(statement, values)}

    def complete_live_window(
        self,
        *,
        event_id: str,
        pseudonym: str,
        window: int,
        frames_stored: int,
        raw_segment_id: str | None,
        score_record_id: str | None,
    ) -> None:
        """Note what a claimed window stored (in the claiming transaction)."""
        self.session.execute(
            update(LiveWindowRecord)
            .where(LiveWindowRecord.event_id == event_id,
                   LiveWindowRecord.subject_pseudonym == pseudonym,
                   LiveWindowRecord.window == int(window))
            .values(frames_stored=int(frames_stored), raw_segment_id=raw_segment_id,
                    score_record_id=score_record_id, scored=score_record_id is not None)
        )

    def open_live_state(self, event_id: str, *, run_id: int) -> None:
        """Create the event's crowd-step state (no step taken yet), if it does not exist."""
        _insert_ignoring_duplicates(self.session, LiveState, {
            "event_id": event_id, "run_id": int(run_id), "crowd_window": -1, "state": {},
            "updated_at": self.now,
        })

    def lock_live_state(
        self, event_id: str, *, skip_locked: bool = False
    ) -> LiveStateData | None:
        """Read the event's crowd-step state and hold its row until this transaction ends
        (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite transactions are single-writer).
        ``skip_locked``: ``None`` at once if another transaction holds it (another worker is
        taking a step), instead of waiting for it."""
        row = self.session.scalar(
            select(LiveState).where(LiveState.event_id == event_id)
            .with_for_update(skip_locked=skip_locked)
        )
        if row is None:
            return None
        return LiveStateData(row.event_id, row.run_id, row.crowd_window, dict(row.state))

    def record_live_crowd(
        self,
        event_id: str,
        *,
        window: int,
        start_at: datetime,
        wristbands: int,
        crowd: float | None,
        decision_id: int | None,
        state: Mapping[str, Any],
        committed_at: datetime,
        worker: str,
    ) -> bool:
        """Take the crowd step of ``window`` and move the carried state on; ``False`` (and
        nothing written) if that step was taken already."""
        taken = _insert_ignoring_duplicates(self.session, LiveCrowdWindow, {
            "event_id": event_id, "window": int(window),
            "start_at": _require_aware(start_at, "start_at"), "wristbands": int(wristbands),
            "crowd": crowd, "decision_id": decision_id,
            "committed_at": _require_aware(committed_at, "committed_at"), "worker": worker[:100],
        })
        if not taken:
            return False
        self.session.execute(
            update(LiveState).where(LiveState.event_id == event_id)
            .values(crowd_window=int(window), state=dict(state), updated_at=self.now)
        )
        return True

    def live_window_marks(self, event_id: str, *, after: int) -> list[LiveWindowMark]:
        """The committed wristband windows after window ``after``, read in this transaction,
        in window order (what a crowd step needs of them, :class:`LiveWindowMark`)."""
        query = (select(LiveWindowRecord.subject_pseudonym, LiveWindowRecord.window,
                        LiveWindowRecord.start_at, LiveWindowRecord.score_record_id,
                        LiveWindowRecord.committed_at, LiveWindowRecord.worker,
                        LiveWindowRecord.id)
                 .where(LiveWindowRecord.event_id == event_id, LiveWindowRecord.window > after)
                 .order_by(LiveWindowRecord.window, LiveWindowRecord.id))
        return [LiveWindowMark(p, int(k), start, score_id, committed, worker, int(row_id))
                for p, k, start, score_id, committed, worker, row_id
                in self.session.execute(query)]

    def run_status(self, run_id: int) -> str | None:
        """The status a run's row says (``running`` even if its process died), or ``None``."""
        run = self.session.get(EventRun, run_id)
        if run is None:
            return None
        summary = run.summary if isinstance(run.summary, dict) else {}
        return str(summary.get("status") or RUN_RUNNING)

    def live_crowd_count(self, event_id: str) -> int:
        """How many crowd steps of a live event are stored."""
        return int(self.session.scalar(select(func.count()).select_from(LiveCrowdWindow)
                                       .where(LiveCrowdWindow.event_id == event_id)) or 0)

    def live_totals(self, event_id: str, run_id: int) -> dict[str, Any]:
        """What a live run committed so far (see :func:`live_run_totals`)."""
        return live_run_totals(self.session, event_id, run_id)

    def _sealed_here(self, record_id: str) -> MetadataData | None:
        """A record this transaction sealed, if it is still readable now (what opening its
        row would say: not past its retention, neither its bucket nor its subject shredded)."""
        found = self._sealed.get(record_id)
        if found is None:
            return None
        data, bucket_id = found
        keys = self.store.keys
        if ((data.expires_at is not None and data.expires_at <= self.now)
                or keys.is_bucket_destroyed(bucket_id)
                or (data.pseudonym is not None and keys.is_subject_destroyed(data.pseudonym))):
            return None
        return data

    def read_metadata(self, record_ids: list[str]) -> list[MetadataData]:
        """Readable metadata records by id, in this transaction (expired or shredded ones are
        left out)."""
        if not record_ids:
            return []
        out = [data for data in map(self._sealed_here, record_ids) if data is not None]
        rest = [i for i in record_ids if i not in self._sealed]
        if not rest:
            return out
        rows = self.session.scalars(select(MetadataRecord).where(MetadataRecord.id.in_(rest)))
        for row in rows:
            with contextlib.suppress(RetentionError):
                out.append(self.store._open_metadata(row, self.now))
        return out
