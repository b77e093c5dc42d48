"""Data-subject requests answered late or not at all (GDPR Art 12(3)).

A request must be answered within one month of receipt, extendable by two further months
(three in total). Open requests past their deadline are errors; requests completed after it
are warnings, since the lateness is part of the record. Deadline and lateness are
:func:`retention.subject_requests.request_status`, the rule ``flowaudit dsr`` and the reports
apply.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select

from audit.checks._common import iso
from audit.checks._registry import ERROR, WARNING, CheckContext, rule, sample
from retention.models import SubjectRequest
from retention.subject_requests import add_months, deadline_of, request_status

__all__ = ["overdue_subject_requests", "deadline", "add_months"]

deadline = deadline_of  # the name this module has always exported


@rule(
    "overdue-subject-request",
    title="Data-subject requests past their deadline",
    severity=ERROR,
    legal_ref="GDPR Art 12(3)",
)
def overdue_subject_requests(ctx: CheckContext) -> Iterator[tuple]:
    with ctx.session() as session:
        requests = list(session.scalars(select(SubjectRequest).order_by(SubjectRequest.id)))
    judged = [(r, request_status(r, ctx.now)) for r in requests]
    open_late = [(r, s) for r, s in judged if s.overdue]
    done_late = [(r, s) for r, s in judged if s.late]
    for items, state, severity in ((open_late, "open", ERROR), (done_late, "answered", WARNING)):
        if not items:
            continue
        late_days = max(((s.completed_at or ctx.now) - s.deadline).days for _, s in items)
        evidence = {
            "requests": len(items),
            "request_ids": sample(r.id for r, _ in items),
            "kinds": sorted({r.kind for r, _ in items}),
            "pseudonyms": sample({r.subject_pseudonym for r, _ in items}, 10),
            "oldest_received_at": iso(min(r.received_at for r, _ in items)),
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
