"""Deletion must be shown to have happened: every expired bucket needs a purge receipt.

A retention period that is configured but never enforced is the article's failure mode. The
purge job writes a ``purge.receipt`` audit entry naming the buckets it shredded and deleted;
an expired bucket that no (non-dry-run) receipt names is a finding, whatever its state says.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from audit.checks._common import PURGE_GRACE, expired_buckets, iso, purged_bucket_ids
from audit.checks._registry import ERROR, CheckContext, rule, sample

__all__ = ["expired_bucket_without_receipt"]


@rule(
    "expired-bucket-without-purge-receipt",
    title="Retention configured but no purge receipt for an expired bucket",
    severity=ERROR,
    legal_ref="GDPR Art 5(1)(e), Art 5(2)",
)
def expired_bucket_without_receipt(ctx: CheckContext) -> Iterator[tuple[str, dict]]:
    with ctx.session() as session:
        buckets = expired_buckets(ctx, session)
        if not buckets:
            return
        covered, receipts = purged_bucket_ids(session)
    missing: dict[str, list] = {}
    for bucket in buckets:
        if bucket.id not in covered:
            missing.setdefault(bucket.event_id, []).append(bucket)
    for event_id, items in sorted(missing.items()):
        oldest = min(b.expires_at for b in items if b.expires_at is not None)
        states = Counter(b.state for b in items)
        yield (
            f"event {event_id}: {len(items)} bucket(s) expired more than "
            f"{int(PURGE_GRACE.total_seconds() // 3600)} h ago and no purge receipt shows "
            f"they were destroyed (oldest expiry {iso(oldest)}); run `flowaudit purge`",
            {
                "event": event_id,
                "buckets": len(items),
                "bucket_ids": sample(b.id for b in items),
                "by_category": dict(sorted(Counter(b.category for b in items).items())),
                "by_state": dict(sorted(states.items())),
                "oldest_expired_at": iso(oldest),
                "purge_receipts_seen": receipts,
                "now": iso(ctx.now),
            },
        )
