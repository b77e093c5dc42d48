"""Wristbands captured before they were told about emotion recognition (AI Act Art 50(3), (5)).

The crowd-sentiment model is an emotion recognition system, so the people exposed to it must
be informed at the latest at their first exposure. The consent taken at wristband pick-up is
where the notice is shown: a wristband with data stored before its consent was given (window
metadata may start up to ``WINDOW_SLACK`` earlier, as for the consent rule) or with no consent
row at all was captured before being informed — an error from the date Art 50 applies
(``as_of``), a warning before it. When wristbands have data but no consent of the event names
the notice version shown, which text was given cannot be proven: a warning.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from audit.checks._common import iso
from audit.checks._registry import ERROR, WARNING, CheckContext, rule, sample
from audit.checks.consent import consent_problems
from audit.legal_dates import AI_ACT_TRANSPARENCY, in_force
from retention.models import Consent, Event, MetadataRecord, RawSegment

__all__ = ["exposed_before_notice"]

#: consent_problem reasons that mean "captured before being informed"
_UNINFORMED = ("before_consent", "no_consent")


def _has_wristband_data(session: Session, event: Event) -> bool:
    return any(
        session.scalar(
            select(exists().where(model.event_id == event.id, model.subject_pseudonym.is_not(None)))
        )
        for model in (RawSegment, MetadataRecord)
    )


@rule(
    "emotion-recognition-notice",
    title="Wristbands captured before the emotion-recognition notice",
    severity=ERROR,
    legal_ref="AI Act Art 50(3), Art 50(5)",
)
def exposed_before_notice(ctx: CheckContext) -> Iterator[tuple]:
    binding = in_force(AI_ACT_TRANSPARENCY, ctx.as_of)
    with ctx.session() as session:
        for event in ctx.events(session):
            reason: dict[str, str] = {}  # pseudonym -> why it was not informed first
            first: dict[str, datetime] = {}
            for _, pseud, start, why in consent_problems(session, event, required=True):
                if why in _UNINFORMED:
                    reason.setdefault(pseud, why)
                    first[pseud] = min(start, first.get(pseud, start))
            if reason:
                before = sum(1 for why in reason.values() if why == "before_consent")
                message = (
                    f"event {event.id}: {len(reason)} wristband(s) were captured before being "
                    f"informed ({before} before their consent, {len(reason) - before} with no "
                    "consent record); the notice is due at the latest at first exposure"
                    + ("" if binding else f" (Art 50 applies from {AI_ACT_TRANSPARENCY})")
                )
                evidence = {
                    "event": event.id,
                    "wristbands": len(reason),
                    "pseudonyms": sample(reason, 10),
                    "before_consent": before,
                    "no_consent_record": len(reason) - before,
                    "first_at": iso(min(first.values())),
                    "as_of": ctx.as_of.isoformat(),
                    "art50_applies_from": AI_ACT_TRANSPARENCY.isoformat(),
                }
                yield (message, evidence) if binding else (message, evidence, WARNING)
            with_version = session.scalar(
                select(func.count()).where(
                    Consent.event_id == event.id, Consent.notice_version != ""
                )
            )
            if not with_version and _has_wristband_data(session, event):
                yield (
                    f"event {event.id}: wristbands have data stored but no consent record "
                    "names the notice version shown, so which text people were given cannot "
                    "be proven",
                    {"event": event.id, "consents_with_notice_version": 0},
                    WARNING,
                )
