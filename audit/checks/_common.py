"""Shared queries for rule modules (private: not a rule module, so not auto-imported as one)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.checks._registry import CheckContext, sample
from retention.ground.actions import Action
from retention.models import AuditEntry, Event, MetadataRecord, RawSegment, RetentionBucket

#: the audit actions that write one stored record, by data category
PUT_ACTIONS = {Action.RAW_PUT: "raw_audio", Action.METADATA_PUT: "metadata"}

__all__ = [
    "PURGE_GRACE",
    "WINDOW_SLACK",
    "iso",
    "expired_buckets",
    "purged_bucket_ids",
    "destruction_proofs",
    "writes_per_bucket",
    "PUT_ACTIONS",
    "audit_details",
    "event_filter",
    "summarise",
    "events_by_id",
    "live_bucket_keys",
    "readable_past_retention",
]

#: A purge job runs periodically; an expiry younger than this is not yet a violation.
PURGE_GRACE = timedelta(hours=1)
#: Window-level metadata is stamped with its window's *start*; a window that straddles the
#: moment consent is given (or the event starts) holds only the frames after it, because the
#: gates drop the rest frame by frame. Such a record may start this much earlier. Raw segments
#: are stamped with their first stored frame and get no slack.
WINDOW_SLACK = timedelta(seconds=30)


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat()


def event_filter(ctx: CheckContext, column: Any) -> list[Any]:
    """A ``where`` clause list restricting ``column`` to the context's event, if any."""
    return [] if ctx.event_id is None else [column == ctx.event_id]


def expired_buckets(
    ctx: CheckContext, session: Session, category: str | None = None
) -> list[RetentionBucket]:
    """Buckets whose retention ended more than :data:`PURGE_GRACE` before ``ctx.now``."""
    query = select(RetentionBucket).where(
        RetentionBucket.expires_at.is_not(None),
        RetentionBucket.expires_at <= ctx.now - PURGE_GRACE,
        *event_filter(ctx, RetentionBucket.event_id),
    )
    if category is not None:
        query = query.where(RetentionBucket.category == category)
    return list(session.scalars(query.order_by(RetentionBucket.expires_at, RetentionBucket.id)))


def audit_details(
    session: Session, action: Action
) -> Iterator[tuple[int, datetime, dict[str, Any]]]:
    """``(seq, at, details)`` of every entry with this action, in order."""
    query = (
        select(AuditEntry.seq, AuditEntry.at, AuditEntry.details)
        .where(AuditEntry.action == action)
        .order_by(AuditEntry.seq)
    )
    for seq, at, details in session.execute(query.execution_options(yield_per=2000)):
        yield int(seq), at, details if isinstance(details, dict) else {}


def purged_bucket_ids(session: Session) -> tuple[set[str], int]:
    """Bucket ids that a non-dry-run purge receipt says were shredded or deleted."""
    covered: set[str] = set()
    receipts = 0
    for _, _, details in audit_details(session, Action.PURGE_RECEIPT):
        if details.get("dry_run"):
            continue
        receipts += 1
        for key in ("buckets_shredded", "buckets_deleted"):
            value = details.get(key) or []
            if isinstance(value, list):
                covered.update(str(v) for v in value)
    return covered, receipts


def _ids(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def destruction_proofs(session: Session) -> dict[str, int]:
    """bucket id -> seq of the first audit entry that records its destruction.

    A non-dry-run purge receipt naming it as shredded, or a ``bucket.shred`` entry.
    """
    proof: dict[str, int] = {}
    query = (
        select(AuditEntry.seq, AuditEntry.action, AuditEntry.details)
        .where(AuditEntry.action.in_((Action.PURGE_RECEIPT, Action.BUCKET_SHRED)))
        .order_by(AuditEntry.seq)
    )
    for seq, action, details in session.execute(query):
        details = details if isinstance(details, dict) else {}
        if action == Action.PURGE_RECEIPT and details.get("dry_run"):
            continue
        for bucket_id in _ids(details.get("buckets_shredded")) + _ids(details.get("bucket_ids")):
            proof.setdefault(bucket_id, int(seq))
    return proof


def writes_per_bucket(session: Session, event_id: str) -> dict[str, list[datetime]]:
    """bucket id -> times of the audit entries that wrote a record of this event into it.

    The audit log outlives the data, so this still counts the records of a deleted bucket.
    """
    out: dict[str, list[datetime]] = defaultdict(list)
    query = (
        select(AuditEntry.at, AuditEntry.details)
        .where(AuditEntry.action.in_(tuple(PUT_ACTIONS)))
        .order_by(AuditEntry.seq)
    )
    for at, details in session.execute(query):
        details = details if isinstance(details, dict) else {}
        if details.get("event") == event_id and details.get("bucket"):
            out[str(details["bucket"])].append(at)
    return out


def summarise(
    rows: Iterable[RawSegment | MetadataRecord], *, id_key: str = "record_ids"
) -> dict[str, Any]:
    """Counts, a sample of ids, the distinct wristbands and the time span of some records."""
    items = list(rows)
    starts = [r.start_at for r in items]
    subjects = {r.subject_pseudonym for r in items if r.subject_pseudonym}
    return {
        "records": len(items),
        id_key: sample(r.id for r in items),
        "wristbands": len(subjects),
        "pseudonyms": sample(subjects, 10),
        "first_at": iso(min(starts)) if starts else None,
        "last_at": iso(max(starts)) if starts else None,
    }


def events_by_id(ctx: CheckContext, session: Session) -> dict[str, Event]:
    return {e.id: e for e in ctx.events(session)}


def live_bucket_keys(ctx: CheckContext, bucket_ids: Iterable[str]) -> set[str]:
    """The ids among ``bucket_ids`` whose key still exists (not destroyed) in the key store."""
    keys = ctx.runtime.keys
    live = set(keys.bucket_ids()) if hasattr(keys, "bucket_ids") else None
    alive: set[str] = set()
    for bucket_id in bucket_ids:
        if keys.is_bucket_destroyed(bucket_id):
            continue
        if live is None or bucket_id in live:
            alive.add(bucket_id)
    return alive


def readable_past_retention(ctx: CheckContext, category: str) -> Iterator[tuple[str, dict]]:
    """Violations of one category: expired buckets whose key still exists, per event."""
    model = RawSegment if category == "raw_audio" else MetadataRecord
    label = "raw audio" if category == "raw_audio" else "metadata"
    with ctx.session() as session:
        buckets = expired_buckets(ctx, session, category)
        alive = live_bucket_keys(ctx, (b.id for b in buckets))
        by_event: dict[str, list[RetentionBucket]] = {}
        for bucket in buckets:
            if bucket.id in alive:
                by_event.setdefault(bucket.event_id, []).append(bucket)
        for event_id, items in sorted(by_event.items()):
            ids = [b.id for b in items]
            rows = session.scalar(
                select(func.count()).select_from(model).where(model.bucket_id.in_(ids))
            )
            oldest = min(b.expires_at for b in items if b.expires_at is not None)
            overdue_h = round((ctx.now - oldest).total_seconds() / 3600, 1)
            yield (
                f"event {event_id}: {len(items)} {label} bucket(s) expired (the oldest "
                f"{overdue_h} h ago) but their keys still exist, so {rows} record(s) remain "
                "decryptable; run `flowaudit purge`",
                {
                    "event": event_id,
                    "category": category,
                    "buckets": len(items),
                    "bucket_ids": sample(ids),
                    "records_remaining": int(rows or 0),
                    "oldest_expired_at": iso(oldest),
                    "overdue_hours": overdue_h,
                    "now": iso(ctx.now),
                },
            )
