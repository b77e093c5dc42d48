"""Data-subject requests against the GDPR Art 12(3) deadline (one month, +2 with notice).

Deadline and lateness are :func:`retention.subject_requests.request_status`, the rule
``flowaudit dsr`` and the ``overdue-subject-request`` check apply, and the Art 12(3) limits on
due dates and extensions are those of the ``subject-request-deadline-beyond-limit`` check, so
the report, the request log and the checks cannot disagree. Verdicts are the checks'.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.checks.dsr_deadline import deadline_within_limits
from audit.reports._fmt import iso
from retention.models import SubjectRequest
from retention.subject_requests import request_status

__all__ = ["subject_requests"]


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
        status = request_status(req, now)
        completed = req.completed_at
        took = _days(completed - req.received_at) if completed is not None else None
        due_ok, extension_ok = deadline_within_limits(req)
        rows.append(
            {
                "id": req.id,
                "kind": req.kind,
                "status": req.status,
                "received_at": iso(req.received_at),
                "due_at": iso(req.due_at),
                "extended_to": iso(req.extended_to),
                "completed_at": iso(req.completed_at),
                "deadline": iso(status.deadline),
                "days_to_complete": took,
                "on_time": completed is not None and not status.late,
                "late": status.late,
                "overdue": status.overdue,
                "due_date_within_one_month": due_ok,
                "extension_within_limit": extension_ok,
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
