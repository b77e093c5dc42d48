"""Data-subject requests against the GDPR Art 12(3) deadline (one month, +2 with notice)."""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from retention.models import SubjectRequest

from .._fmt import iso

__all__ = ["subject_requests", "ONE_MONTH_MAX", "THREE_MONTHS_MAX"]

#: the longest calendar month; a due date later than this after receipt breaks Art 12(3)
ONE_MONTH_MAX = timedelta(days=31)
#: one month plus "two further months" (Art 12(3)), at their longest
THREE_MONTHS_MAX = timedelta(days=92)


def _days(delta: timedelta) -> float:
    return round(delta.total_seconds() / 86400, 2)


def subject_requests(session: Session, now: datetime) -> dict[str, Any]:
    """Every request in the store, each judged against its deadline at ``now``.

    No pseudonym is listed: the report identifies requests by their number only.
    """
    rows: list[dict[str, Any]] = []
    for req in session.scalars(
        select(SubjectRequest).order_by(SubjectRequest.received_at, SubjectRequest.id)
    ):
        deadline = req.extended_to or req.due_at
        completed = req.completed_at
        done = completed is not None
        took = _days(completed - req.received_at) if completed is not None else None
        rows.append(
            {
                "id": req.id,
                "kind": req.kind,
                "status": req.status,
                "received_at": iso(req.received_at),
                "due_at": iso(req.due_at),
                "extended_to": iso(req.extended_to),
                "completed_at": iso(req.completed_at),
                "deadline": iso(deadline),
                "days_to_complete": took,
                "on_time": completed is not None and completed <= deadline,
                "late": completed is not None and completed > deadline,
                "overdue": bool(not done and now > deadline),
                "due_date_within_one_month": req.due_at - req.received_at <= ONE_MONTH_MAX,
                "extension_within_limit": (
                    None
                    if req.extended_to is None
                    else req.extended_to - req.received_at <= THREE_MONTHS_MAX
                ),
            }
        )
    durations = [r["days_to_complete"] for r in rows if r["days_to_complete"] is not None]
    by_kind: dict[str, int] = {}
    for r in rows:
        by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + 1
    return {
        "requests": rows,
        "total": len(rows),
        "by_kind": dict(sorted(by_kind.items())),
        "completed": sum(1 for r in rows if r["completed_at"]),
        "open": sum(1 for r in rows if not r["completed_at"]),
        "on_time": sum(1 for r in rows if r["on_time"]),
        "late": sum(1 for r in rows if r["late"]),
        "overdue": sum(1 for r in rows if r["overdue"]),
        "extended": sum(1 for r in rows if r["extended_to"]),
        "median_days_to_complete": statistics.median(durations) if durations else None,
        "max_days_to_complete": max(durations) if durations else None,
    }
