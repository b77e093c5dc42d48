"""Deletion evidence: purge receipts, per-bucket proof, and the stored-vs-deleted timeline.

The audit log outlives the data: it still says how many records each bucket received after the
bucket's rows are gone, so "deleted" is counted from the log, not inferred from absence.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.checks._common import destruction_proofs, writes_per_bucket
from audit.reports._fmt import iso
from retention.ground.actions import Action
from retention.models import BUCKET_ACTIVE, AuditEntry, PurgeRun, RetentionBucket
from retention.store import METADATA, RAW_AUDIO

__all__ = [
    "anonymisation_evidence",
    "erasure_receipts",
    "purge_receipts",
    "purge_runs",
    "bucket_evidence",
    "writes_per_bucket",
    "timeline",
]

MAX_POINTS = 240


def _ids(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _count(value: Any) -> int:
    if isinstance(value, list):
        return len(value)
    return int(value or 0)


def purge_receipts(session: Session, event_id: str) -> list[dict[str, Any]]:
    """Every purge receipt in the audit log, with how much of it concerns this event."""
    prefix = f"{event_id}:"
    out = []
    for entry in session.scalars(
        select(AuditEntry).where(AuditEntry.action == Action.PURGE_RECEIPT).order_by(AuditEntry.seq)
    ):
        details = entry.details or {}
        shredded = _ids(details.get("buckets_shredded"))
        deleted = _ids(details.get("buckets_deleted"))
        out.append(
            {
                "seq": entry.seq,
                "at": iso(entry.at),
                "run_id": details.get("run_id"),
                "as_of": details.get("as_of"),
                "dry_run": bool(details.get("dry_run", False)),
                "buckets_shredded": _count(details.get("buckets_shredded")),
                "buckets_deleted": _count(details.get("buckets_deleted")),
                "rows_deleted": int(details.get("rows_deleted") or 0),
                "bytes_freed": int(details.get("bytes_freed") or 0),
                "event_buckets_shredded": sum(1 for b in shredded if b.startswith(prefix)),
                "event_buckets_deleted": sum(1 for b in deleted if b.startswith(prefix)),
                "hash": entry.hash,
            }
        )
    return out


def purge_runs(session: Session) -> dict[str, Any]:
    """The ``purge_runs`` table: how many runs, how many real (not dry), the last one."""
    runs = list(session.scalars(select(PurgeRun).order_by(PurgeRun.started_at, PurgeRun.id)))
    real = [r for r in runs if not r.dry_run]
    last = real[-1] if real else None
    return {
        "runs": len(runs),
        "real_runs": len(real),
        "dry_runs": len(runs) - len(real),
        "buckets_shredded": sum(r.buckets_shredded for r in real),
        "rows_deleted": sum(r.rows_deleted for r in real),
        "bytes_freed": sum(r.bytes_freed for r in real),
        "last_run_at": iso(last.finished_at or last.started_at) if last else None,
        "last_run_as_of": iso(last.as_of) if last else None,
        "last_run_status": last.status if last else None,
    }


def bucket_evidence(
    session: Session, event_id: str, now: datetime, writes: dict[str, list[datetime]]
) -> dict[str, Any]:
    """Each bucket: expiry, state, and the audit entry that proves it was destroyed."""
    proof = destruction_proofs(session)
    rows = []
    for bucket in session.scalars(
        select(RetentionBucket)
        .where(RetentionBucket.event_id == event_id)
        .order_by(RetentionBucket.category, RetentionBucket.starts_at)
    ):
        expired = bucket.expires_at is not None and bucket.expires_at <= now
        rows.append(
            {
                "id": bucket.id,
                "category": bucket.category,
                "starts_at": iso(bucket.starts_at),
                "expires_at": iso(bucket.expires_at),
                "state": bucket.state,
                "shredded_at": iso(bucket.shredded_at),
                "deleted_at": iso(bucket.deleted_at),
                "records_written": len(writes.get(bucket.id, [])),
                "expired": expired,
                "proof_seq": proof.get(bucket.id),
            }
        )
    expired_rows = [r for r in rows if r["expired"]]
    return {
        "buckets": rows,
        "expired": len(expired_rows),
        "expired_destroyed_with_receipt": sum(
            1 for r in expired_rows if r["state"] != BUCKET_ACTIVE and r["proof_seq"] is not None
        ),
        "expired_still_active": sum(1 for r in expired_rows if r["state"] == BUCKET_ACTIVE),
        "destroyed_without_receipt": sum(
            1 for r in rows if r["state"] != BUCKET_ACTIVE and r["proof_seq"] is None
        ),
    }


def _cumulative(events: Iterable[tuple[datetime, int]]) -> list[tuple[datetime, int]]:
    per_time: Counter[datetime] = Counter()
    for at, count in events:
        per_time[at] += count
    total, out = 0, []
    for at in sorted(per_time):
        total += per_time[at]
        out.append((at, total))
    if len(out) > MAX_POINTS:  # keep the last value of each bin: cumulative values stay exact
        step = len(out) / MAX_POINTS
        keep = {min(len(out) - 1, int((i + 1) * step) - 1) for i in range(MAX_POINTS)}
        out = [p for i, p in enumerate(out) if i in keep]
    return out


def timeline(
    session: Session, event_id: str, writes: dict[str, list[datetime]], now: datetime
) -> dict[str, Any]:
    """Per category: cumulative records written and destroyed, records held, and the projection
    of what is held if every scheduled destruction happens on time (from ``now`` on)."""
    buckets = {
        b.id: b
        for b in session.scalars(
            select(RetentionBucket).where(RetentionBucket.event_id == event_id)
        )
    }
    out: dict[str, Any] = {}
    for category in (RAW_AUDIO, METADATA):
        written: list[tuple[datetime, int]] = []
        destroyed: list[tuple[datetime, int]] = []
        scheduled: list[tuple[datetime, int]] = []
        indefinite = 0
        for bucket_id, times in writes.items():
            bucket = buckets.get(bucket_id)
            if bucket is None or bucket.category != category:
                continue
            written.extend((t, 1) for t in times)
            if bucket.state != BUCKET_ACTIVE:
                gone_at = bucket.shredded_at or bucket.deleted_at
                if gone_at is not None:
                    destroyed.append((gone_at, len(times)))
            elif bucket.expires_at is not None:
                scheduled.append((max(bucket.expires_at, now), len(times)))
            else:
                indefinite += len(times)
        held = _cumulative(written + [(t, -c) for t, c in destroyed])
        held_now = len(written) - sum(c for _, c in destroyed)
        projected = [(now, held_now)]
        for at, value in _cumulative([(t, -c) for t, c in scheduled]):
            projected.append((at, held_now + value))
        out[category] = {
            "written": _points(_cumulative(written)),
            "destroyed": _points(_cumulative(destroyed)),
            "held": _points(held),
            "projected": _points(projected),
            "totals": {
                "written": len(written),
                "destroyed": sum(c for _, c in destroyed),
                "held": held_now,
                "scheduled": sum(c for _, c in scheduled),
                "indefinite": indefinite,
            },
        }
    return out


def _points(points: list[tuple[datetime, int]]) -> list[list[Any]]:
    return [[iso(at), value] for at, value in points]


def anonymisation_evidence(session: Session, event_id: str) -> dict[str, Any]:
    """Audit entries of the anonymisation step: linkable metadata turned into aggregates."""
    steps = []
    for entry in session.scalars(
        select(AuditEntry)
        .where(AuditEntry.action == Action.METADATA_ANONYMISE)
        .order_by(AuditEntry.seq)
    ):
        d = entry.details or {}
        if d.get("event") != event_id:
            continue
        steps.append(
            {
                "seq": entry.seq,
                "at": iso(entry.at),
                "bucket": entry.object_id,
                "records_in": int(d.get("records_in") or 0),
                "linkable_records": int(d.get("linkable_records") or 0),
                "subjects": int(d.get("subjects") or 0),
                "aggregates": int(d.get("aggregates") or 0),
                "records_suppressed": int(d.get("records_suppressed") or 0),
                "k_min": d.get("k_min"),
                "min_group_subjects": d.get("min_group_subjects"),
            }
        )
    return {
        "steps": steps,
        "buckets": len(steps),
        "linkable_records": sum(s["linkable_records"] for s in steps),
        "aggregates": sum(s["aggregates"] for s in steps),
        "records_suppressed": sum(s["records_suppressed"] for s in steps),
    }


def erasure_receipts(session: Session) -> dict[str, Any]:
    """Data-subject erasures (Art 17) from their audit receipts: rows deleted per table.

    Receipts count a wristband's rows across every event, so for one event they bound, rather
    than equal, the rows erasure removed from it.
    """
    raw = meta = count = 0
    for details in session.scalars(
        select(AuditEntry.details).where(AuditEntry.action == Action.DSR_ERASE)
    ):
        d = details or {}
        count += 1
        raw += int(d.get("raw_segments_deleted") or 0)
        meta += int(d.get("metadata_records_deleted") or 0)
    return {"erasures": count, "raw_audio": raw, "metadata": meta}
