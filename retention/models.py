"""The schema, as SQLAlchemy 2.x declarative models. It changes only through `migrations/`.

What is plaintext here is deliberately boring: ids, pseudonyms (HMAC, never serials), times,
counts, coarse quasi-identifiers, track ids. Audio and personal metadata live only in
``ciphertext`` columns; no column holds key material.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "UTCDateTime",
    "Event",
    "Subject",
    "Consent",
    "RetentionBucket",
    "RawSegment",
    "MetadataRecord",
    "Decision",
    "EventRun",
    "AuditEntry",
    "AuditCheckpoint",
    "AuditTreeNode",
    "PurgeRun",
    "SubjectRequest",
    "DeviceToken",
    "LiveWindowRecord",
    "LiveCrowdWindow",
    "LiveState",
    "ConsoleKey",
    "ConsoleControl",
    "BUCKET_ACTIVE",
    "BUCKET_SHREDDED",
    "BUCKET_DELETED",
]

BUCKET_ACTIVE = "ACTIVE"
BUCKET_SHREDDED = "SHREDDED"
BUCKET_DELETED = "DELETED"

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on SQLite (which forgets tzinfo) and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Event(Base):
    """A live event: its window, and the policy it ran under."""

    __tablename__ = "events"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    venue: Mapped[str] = mapped_column(String(200), default="")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    policy_name: Mapped[str] = mapped_column(String(100))
    policy_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Subject(Base):
    """A wristband, known only by its pseudonym, with coarse quasi-identifiers."""

    __tablename__ = "subjects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True)
    zone: Mapped[str | None] = mapped_column(String(50))
    age_band: Mapped[str | None] = mapped_column(String(20))
    ticket_type: Mapped[str | None] = mapped_column(String(50))
    device_model: Mapped[str | None] = mapped_column(String(50))
    arrival_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    is_staff: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Consent(Base):
    """Consent state of one wristband for one event (Art 7 record, no free text)."""

    __tablename__ = "consents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"))
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20))  # opted_in | opted_out | withdrawn
    given_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    biometrics_explicit: Mapped[bool] = mapped_column(Boolean, default=False)
    notice_version: Mapped[str] = mapped_column(String(50), default="")
    __table_args__ = (Index("ix_consents_event_subject", "event_id", "subject_id", unique=True),)


class RetentionBucket(Base):
    """One retention bucket: all records of a category in one event-hour share its key."""

    __tablename__ = "retention_buckets"
    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"))
    category: Mapped[str] = mapped_column(String(30))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    state: Mapped[str] = mapped_column(String(12), default=BUCKET_ACTIVE, index=True)
    shredded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class _SealedRecord:
    """Columns shared by every encrypted record."""

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), index=True)
    subject_pseudonym: Mapped[str | None] = mapped_column(String(64), index=True)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    key_id: Mapped[str] = mapped_column(String(120))
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    commitment: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RawSegment(_SealedRecord, Base):
    """Encrypted PCM of one wristband over a short span (plaintext: only its shape)."""

    __tablename__ = "raw_segments"
    bucket_id: Mapped[str] = mapped_column(ForeignKey("retention_buckets.id"), index=True)
    duration_ms: Mapped[int] = mapped_column(Integer)
    sample_rate: Mapped[int] = mapped_column(Integer)
    speech_frames: Mapped[int] = mapped_column(Integer, default=0)
    byte_length: Mapped[int] = mapped_column(Integer)


class MetadataRecord(_SealedRecord, Base):
    """Encrypted JSON metadata (scores, features, requests); ``kind`` says which."""

    __tablename__ = "metadata_records"
    bucket_id: Mapped[str] = mapped_column(ForeignKey("retention_buckets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    anonymised: Mapped[bool] = mapped_column(Boolean, default=False)


class Decision(Base):
    """A track-selection decision with its inputs and main parameters (DSA Art 27)."""

    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("event_runs.id"))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())
    track_id: Mapped[str] = mapped_column(String(64))
    crowd_sentiment: Mapped[float] = mapped_column(Float)
    adaptive_flow: Mapped[bool] = mapped_column(Boolean, default=False)
    artist_override: Mapped[bool] = mapped_column(Boolean, default=False)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    explanation: Mapped[str] = mapped_column(Text)
    latency_ms: Mapped[float] = mapped_column(Float)


class EventRun(Base):
    """One run of the pipeline over an event: source, policy, and its summary counts."""

    __tablename__ = "event_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), index=True)
    policy_name: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AuditEntry(Base):
    """One link of the hash-chained audit log. ``details`` holds pseudonyms and counts only."""

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str] = mapped_column(String(160))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """An Ed25519 signature over the log at some sequence number.

    With ``tree_size`` and ``root_hash`` set it is a C2SP tlog checkpoint of the Merkle tree
    (the signature covers the root); without them (written before migration 0003) it signs the
    chain head. ``head_hash`` is the chain head at ``seq`` either way.
    """

    __tablename__ = "audit_checkpoints"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(Integer, index=True)
    head_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    tree_size: Mapped[int | None] = mapped_column(BigInteger)
    root_hash: Mapped[str | None] = mapped_column(String(64))


class AuditTreeNode(Base):
    """The hash of one complete subtree of 16 leaves or more of the Merkle audit log."""

    __tablename__ = "audit_tree_nodes"
    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class PurgeRun(Base):
    """One purge run and its counts; its receipt is also an audit entry."""

    __tablename__ = "purge_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    as_of: Mapped[datetime] = mapped_column(UTCDateTime())
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    buckets_shredded: Mapped[int] = mapped_column(Integer, default=0)
    rows_deleted: Mapped[int] = mapped_column(BigInteger, default=0)  # 64-bit, as bytes_freed
    bytes_freed: Mapped[int] = mapped_column(BigInteger, default=0)  # 64-bit: runs free > 2 GiB
    # running | done | stopped | failed | dry-run | interrupted (killed; closed by a later run)
    status: Mapped[str] = mapped_column(String(20), default="running")


class SubjectRequest(Base):
    """A data-subject request (GDPR Art 15/17/20) tracked against the Art 12(3) deadline."""

    __tablename__ = "subject_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_pseudonym: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # access | erasure | portability
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    extended_to: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(20), default="received")
    receipt: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DeviceToken(Base):
    """A wristband's device token for the live gateway, issued at pick-up (issue 11).

    Only the SHA-256 of the token is kept: a copy of the database cannot be used to stream as a
    wristband. ``id`` is a random row id that is not part of the token. The wristband is its
    pseudonym, never its serial.
    """

    __tablename__ = "device_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), index=True)
    subject_pseudonym: Mapped[str] = mapped_column(String(64), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LiveWindowRecord(Base):
    """One wristband window a live worker committed (issue 11): the idempotency key.

    The unique (event, wristband, window) index is what makes a redelivered or duplicated
    JetStream message commit nothing twice. Plaintext holds only counts and record ids: the
    score and the features are in the sealed ``window_score`` record, the PCM in its raw
    segment. ``committed_at`` is the worker's wall clock (when the crowd step may run), not the
    event timeline.
    """

    __tablename__ = "live_windows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"))
    subject_pseudonym: Mapped[str] = mapped_column(String(64))
    window: Mapped[int] = mapped_column(Integer)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    frames_received: Mapped[int] = mapped_column(Integer, default=0)
    frames_stored: Mapped[int] = mapped_column(Integer, default=0)
    scored: Mapped[bool] = mapped_column(Boolean, default=False)
    drops: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    raw_segment_id: Mapped[str | None] = mapped_column(String(32))
    score_record_id: Mapped[str | None] = mapped_column(String(32))
    committed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    worker: Mapped[str] = mapped_column(String(100), default="")
    __table_args__ = (
        Index("ux_live_windows_key", "event_id", "subject_pseudonym", "window", unique=True),
        Index("ix_live_windows_event_window", "event_id", "window"),
    )


class LiveCrowdWindow(Base):
    """The crowd step of one live window, taken once by one worker (unique per window)."""

    __tablename__ = "live_crowd_windows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"))
    window: Mapped[int] = mapped_column(Integer)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    wristbands: Mapped[int] = mapped_column(Integer, default=0)
    crowd: Mapped[float | None] = mapped_column(Float)
    decision_id: Mapped[int | None] = mapped_column(Integer)
    committed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    worker: Mapped[str] = mapped_column(String(100), default="")
    __table_args__ = (Index("ux_live_crowd_windows_key", "event_id", "window", unique=True),)


class LiveState(Base):
    """What the crowd step carries from window to window (EMA, pacing, played tracks), so any
    worker can take the next step; the row is locked (``FOR UPDATE``) while one does."""

    __tablename__ = "live_state"
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer)
    crowd_window: Mapped[int] = mapped_column(Integer, default=-1)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsoleKey(Base):
    """An API key of the console and /v1 API (issue 12): only the SHA-256 of its secret.

    ``role`` is artist, scorer or viewer; ``pseudonym_salt`` keys the per-key pseudonyms a
    scorer sees, so two scorers' feeds cannot be joined on the wristband."""

    __tablename__ = "console_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(20))
    label: Mapped[str] = mapped_column(String(64))
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    pseudonym_salt: Mapped[str] = mapped_column(String(64))
    rate_per_second: Mapped[float] = mapped_column(Float)
    burst: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConsoleControl(Base):
    """An override, veto or pin asked for through the console, accepted or refused, with who
    asked (key id, label, role); the live crowd step applies the accepted ones."""

    __tablename__ = "console_controls"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"))
    kind: Mapped[str] = mapped_column(String(20))  # override | veto | pin
    track_id: Mapped[str | None] = mapped_column(String(64))
    artist: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))  # accepted | refused
    reason: Mapped[str | None] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32))
    by_label: Mapped[str] = mapped_column(String(64))
    by_role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    __table_args__ = (Index("ix_console_controls_event_id", "event_id", "id"),)
