"""Data-subject requests answered late or not at all (GDPR Art 12(3)).

A request must be answered within one month of receipt, extendable by two further months
(three in total). Open requests past their deadline are errors; requests completed after it
are warnings, since the lateness is part of the record.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import select

from retention.models import SubjectRequest

from ._common import iso
from ._registry import ERROR, WARNING, CheckContext, rule, sample

__all__ = ["overdue_subject_requests", "deadline", "add_months"]


def add_months(at: datetime, months: int) -> datetime:
    """``at`` plus calendar months, clamped to the month's last day (31 Jan + 1 → 28/29 Feb)."""
    month = at.month - 1 + months
    year, month = at.year + month // 12, month % 12 + 1
    return at.replace(year=year, month=month, day=min(at.day, calendar.monthrange(year, month)[1]))


def deadline(request: SubjectRequest) -> datetime:
    """The effective deadline: the extension if any (at most 3 months), else ``due_at``."""
    if request.extended_to is None:
        return request.due_at
    return min(request.extended_to, add_months(request.received_at, 3))


@rule(
    "overdue-subject-request",
    title="Data-subject requests past their deadline",
    severity=ERROR,
    legal_ref="GDPR Art 12(3)",
)
def overdue_subject_requests(ctx: CheckContext) -> Iterator[tuple]:
    with ctx.session() as session:
        requests = list(session.scalars(select(SubjectRequest).order_by(SubjectRequest.id)))
    open_late = [r for r in requests if r.completed_at is None and ctx.now > deadline(r)]
    done_late = [r for r in requests if r.completed_at is not None and r.completed_at > deadline(r)]
    for items, state, severity in ((open_late, "open", ERROR), (done_late, "answered", WARNING)):
        if not items:
            continue
        worst = max(items, key=lambda r: (r.completed_at or ctx.now) - deadline(r))
        late_days = ((worst.completed_at or ctx.now) - deadline(worst)).days
        evidence = {
            "requests": len(items),
            "request_ids": sample(r.id for r in items),
            "kinds": sorted({r.kind for r in items}),
            "pseudonyms": sample({r.subject_pseudonym for r in items}, 10),
            "oldest_received_at": iso(min(r.received_at for r in items)),
            "most_days_late": late_days,
            "now": iso(ctx.now),
        }
        message = (
            f"{len(items)} data-subject request(s) still open past their deadline "
            f"(up to {late_days} day(s) late)"
            if state == "open"
            else f"{len(items)} data-subject request(s) were answered after their deadline "
            f"(up to {late_days} day(s) late)"
        )
        yield message, evidence, severity
