"""Data-subject requests recorded with a deadline the law does not allow (GDPR Art 12(3)).

Art 12(3) gives one month from receipt, and an extension by two further months at most: a
request whose recorded due date is later than one month after receipt, or whose extension runs
past three months, was tracked against the wrong deadline, whatever its state now.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select

from audit.checks._common import iso
from audit.checks._registry import ERROR, CheckContext, rule, sample
from audit.legal_dates import ART12_MAX_MONTHS, ART12_MONTHS
from retention.models import SubjectRequest
from retention.subject_requests import add_months

__all__ = ["deadline_beyond_limit", "deadline_within_limits"]


def deadline_within_limits(request: SubjectRequest) -> tuple[bool, bool | None]:
    """``(due date within one month, extension within three months or None if not extended)``."""
    due_ok = request.due_at <= add_months(request.received_at, ART12_MONTHS)
    if request.extended_to is None:
        return due_ok, None
    return due_ok, request.extended_to <= add_months(request.received_at, ART12_MAX_MONTHS)


@rule(
    "subject-request-deadline-beyond-limit",
    title="Data-subject requests tracked against a deadline beyond Art 12(3)",
    severity=ERROR,
    legal_ref="GDPR Art 12(3)",
)
def deadline_beyond_limit(ctx: CheckContext) -> Iterator[tuple]:
    with ctx.session() as session:
        requests = list(session.scalars(select(SubjectRequest).order_by(SubjectRequest.id)))
    late_due, long_ext = [], []
    for request in requests:
        due_ok, extension_ok = deadline_within_limits(request)
        if not due_ok:
            late_due.append(request)
        if extension_ok is False:
            long_ext.append(request)
    bad = {r.id: r for r in late_due + long_ext}
    if not bad:
        return
    yield (
        f"{len(late_due)} data-subject request(s) have a due date beyond one month after "
        f"receipt and {len(long_ext)} an extension beyond three months",
        {
            "requests": len(bad),
            "request_ids": sample(bad),
            "due_beyond_one_month": len(late_due),
            "extension_beyond_three_months": len(long_ext),
            "oldest_received_at": iso(min(r.received_at for r in bad.values())),
        },
    )
