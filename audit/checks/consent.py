"""Data of a wristband without consent, after opting out, or after consent was withdrawn.

For every stored record tied to a wristband, the consent row of that wristband for that event
is consulted: opted out, withdrawn before the record was captured (or withdrawn at an unknown
time), captured before consent was given (window-level metadata may start up to
``WINDOW_SLACK`` earlier: its window straddles the moment of consent), or — when the event's
policy requires consent — no consent row at all. Consent is an Art 6(1)(a) basis only while
it lasts (Art 7(3)).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from audit.checks._common import WINDOW_SLACK, iso
from audit.checks._registry import ERROR, CheckContext, rule, sample
from retention.models import Consent, Event, MetadataRecord, RawSegment, Subject

__all__ = ["data_without_consent", "consent_problem", "consent_problems"]


def consent_problem(
    start_at: datetime,
    status: str | None,
    given_at: datetime | None,
    withdrawn_at: datetime | None,
    required: bool,
    slack: timedelta = timedelta(0),
) -> str | None:
    """Why a record captured at ``start_at`` lacks consent, or ``None`` if it is covered.

    ``slack``: how much earlier than consent a record may be stamped (see ``WINDOW_SLACK``).
    """
    if status is None:
        return "no_consent" if required else None
    if status == "opted_out":
        return "opted_out"
    if withdrawn_at is not None and start_at >= withdrawn_at:
        return "after_withdrawal"
    if status == "withdrawn" and withdrawn_at is None:
        return "after_withdrawal"
    if given_at is not None and start_at + slack < given_at:
        return "before_consent"
    return None


def consent_problems(
    session: Session, event: Event, required: bool
) -> Iterator[tuple[str, str, datetime, str]]:
    """``(record id, pseudonym, start, reason)`` of every wristband record of ``event`` that
    consent does not cover (see :func:`consent_problem`), raw segments then metadata."""
    for model, slack in ((RawSegment, timedelta(0)), (MetadataRecord, WINDOW_SLACK)):
        query = (
            select(
                model.id,
                model.subject_pseudonym,
                model.start_at,
                Consent.status,
                Consent.given_at,
                Consent.withdrawn_at,
            )
            .join(Subject, Subject.pseudonym == model.subject_pseudonym, isouter=True)
            .join(
                Consent,
                and_(Consent.subject_id == Subject.id, Consent.event_id == model.event_id),
                isouter=True,
            )
            .where(model.event_id == event.id, model.subject_pseudonym.is_not(None))
        )
        for rid, pseud, start, status, given, withdrawn in session.execute(query):
            why = consent_problem(start, status, given, withdrawn, required, slack)
            if why is not None:
                yield str(rid), str(pseud), start, why


@rule(
    "data-without-consent",
    title="Data of a wristband without consent or after withdrawal",
    severity=ERROR,
    legal_ref="GDPR Art 6(1)(a), Art 7(3)",
)
def data_without_consent(ctx: CheckContext) -> Iterator[tuple]:
    with ctx.session() as session:
        for event in ctx.events(session):
            required = bool(ctx.policy_for(event).capture.require_consent)
            reasons: Counter[str] = Counter()
            subjects: dict[str, set[str]] = {}
            ids: list[str] = []
            times: list[datetime] = []
            for rid, pseud, start, why in consent_problems(session, event, required):
                reasons[why] += 1
                subjects.setdefault(why, set()).add(pseud)
                ids.append(rid)
                times.append(start)
            if not ids:
                continue
            everyone = set().union(*subjects.values())
            evidence: dict[str, Any] = {
                "event": event.id,
                "consent_required": required,
                "records": len(ids),
                "record_ids": sample(ids),
                "wristbands": len(everyone),
                "pseudonyms": sample(everyone, 10),
                "records_by_reason": dict(sorted(reasons.items())),
                "wristbands_by_reason": {k: len(v) for k, v in sorted(subjects.items())},
                "first_at": iso(min(times)),
                "last_at": iso(max(times)),
            }
            detail = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in sorted(reasons.items()))
            yield (
                f"event {event.id}: {len(ids)} record(s) of {len(everyone)} wristband(s) "
                f"were stored without valid consent ({detail})",
                evidence,
            )
