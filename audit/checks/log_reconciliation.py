"""The audit log and the store must account for the same records (GDPR Art 5(2)).

Every stored record has a ``raw.put`` / ``metadata.put`` entry naming its bucket, and the log
outlives the data. So, per event and category, *written* (entries) minus *destroyed* (the
entries of buckets whose key was destroyed) is what the store should hold. Data-subject
erasure deletes rows of live buckets; its receipts (``dsr.erase``) say how many, so the store
may hold up to that many fewer. Any other gap means rows were written or deleted without an
audit entry: a warning, because the log can no longer prove what was stored.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import func, select

from audit.checks._common import audit_details, writes_per_bucket
from audit.checks._registry import WARNING, CheckContext, rule
from retention.ground.actions import Action
from retention.models import BUCKET_ACTIVE, MetadataRecord, RawSegment, RetentionBucket

__all__ = ["audit_log_store_mismatch", "log_totals"]

_TABLES = (
    ("raw_audio", RawSegment, "raw_segments"),
    ("metadata", MetadataRecord, "metadata_records"),
)


def log_totals(
    writes: dict[str, list], buckets: dict[str, RetentionBucket], category: str
) -> tuple[int, int]:
    """``(written, destroyed)`` records of one category, counted from the audit log."""
    written = destroyed = 0
    for bucket_id, times in writes.items():
        bucket = buckets.get(bucket_id)
        if bucket is None or bucket.category != category:
            continue
        written += len(times)
        gone = bucket.shredded_at or bucket.deleted_at
        if bucket.state != BUCKET_ACTIVE and gone is not None:
            destroyed += len(times)
    return written, destroyed


@rule(
    "audit-log-store-mismatch",
    title="Records in the store that the audit log does not account for",
    severity=WARNING,
    legal_ref="GDPR Art 5(2)",
)
def audit_log_store_mismatch(ctx: CheckContext) -> Iterator[tuple]:
    with ctx.session() as session:
        erased = {table: 0 for _, _, table in _TABLES}
        for _, _, details in audit_details(session, Action.DSR_ERASE):
            for table in erased:
                erased[table] += int(details.get(f"{table}_deleted") or 0)
        for event in ctx.events(session):
            writes = writes_per_bucket(session, event.id)
            buckets = {
                b.id: b
                for b in session.scalars(
                    select(RetentionBucket).where(RetentionBucket.event_id == event.id)
                )
            }
            for category, model, table in _TABLES:
                written, destroyed = log_totals(writes, buckets, category)
                held = written - destroyed
                stored = int(
                    session.scalar(
                        select(func.count()).select_from(model).where(model.event_id == event.id)
                    )
                    or 0
                )
                if 0 <= held - stored <= erased[table]:
                    continue
                yield (
                    f"event {event.id}: the audit log accounts for {held} {category} record(s) "
                    f"({written} written − {destroyed} destroyed) but the store holds {stored}, "
                    f"and erasure receipts explain at most {erased[table]}: rows were written "
                    "or deleted without an audit entry",
                    {
                        "event": event.id,
                        "category": category,
                        "written": written,
                        "destroyed": destroyed,
                        "held_per_log": held,
                        "stored": stored,
                        "erased_per_receipts": erased[table],
                    },
                )
