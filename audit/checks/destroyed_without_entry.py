"""A bucket destroyed without an audit entry that records its destruction (GDPR Art 5(2)).

Deletion is accountable only if the log says it happened: every shredded or deleted bucket
should be named by a (non-dry-run) purge receipt or a ``bucket.shred`` entry. A bucket whose
state says destroyed but that no entry names was destroyed outside the audited path — a
warning, since the data is gone but the proof is missing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from sqlalchemy import select

from audit.checks._common import destruction_proofs, event_filter
from audit.checks._registry import WARNING, CheckContext, rule, sample
from retention.models import BUCKET_ACTIVE, RetentionBucket

__all__ = ["bucket_destroyed_without_entry"]


@rule(
    "bucket-destroyed-without-audit-entry",
    title="Buckets destroyed without an audit entry recording it",
    severity=WARNING,
    legal_ref="GDPR Art 5(2)",
)
def bucket_destroyed_without_entry(ctx: CheckContext) -> Iterator[tuple]:
    with ctx.session() as session:
        destroyed = list(
            session.scalars(
                select(RetentionBucket)
                .where(
                    RetentionBucket.state != BUCKET_ACTIVE,
                    *event_filter(ctx, RetentionBucket.event_id),
                )
                .order_by(RetentionBucket.id)
            )
        )
        if not destroyed:
            return
        proofs = destruction_proofs(session)
    missing: dict[str, list[RetentionBucket]] = {}
    for bucket in destroyed:
        if bucket.id not in proofs:
            missing.setdefault(bucket.event_id, []).append(bucket)
    for event_id, items in sorted(missing.items()):
        yield (
            f"event {event_id}: {len(items)} destroyed bucket(s) have no audit entry "
            "recording their destruction",
            {
                "event": event_id,
                "buckets": len(items),
                "bucket_ids": sample(b.id for b in items),
                "by_category": dict(sorted(Counter(b.category for b in items).items())),
                "by_state": dict(sorted(Counter(b.state for b in items).items())),
            },
        )
