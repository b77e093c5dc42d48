"""Emotion recognition applied to staff (AI Act Art 5(1)(f): prohibited at the workplace).

Festival staff, bar workers, security and artists on duty are at work; inferring their
emotions is prohibited from :data:`audit.legal_dates.AI_ACT_PROHIBITIONS` (2 February 2025).
Any stored record of a wristband flagged ``is_staff`` is a finding — an error from that date
(``as_of``), a warning before it.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select

from audit.checks._common import summarise
from audit.checks._registry import ERROR, WARNING, CheckContext, rule
from audit.legal_dates import AI_ACT_PROHIBITIONS, in_force
from retention.models import MetadataRecord, RawSegment, Subject

__all__ = ["staff_processed", "PROHIBITION_APPLIES"]

PROHIBITION_APPLIES = AI_ACT_PROHIBITIONS  # the name this module has always exported


@rule(
    "staff-wristbands-processed",
    title="Staff wristbands processed by the emotion-recognition pipeline",
    severity=ERROR,
    legal_ref="AI Act Art 5(1)(f)",
)
def staff_processed(ctx: CheckContext) -> Iterator[tuple]:
    with ctx.session() as session:
        staff = set(session.scalars(select(Subject.pseudonym).where(Subject.is_staff.is_(True))))
        if not staff:
            return
        for event in ctx.events(session):
            rows: list[RawSegment | MetadataRecord] = []
            for model in (RawSegment, MetadataRecord):
                rows += list(  # type: ignore[arg-type]
                    session.scalars(
                        select(model).where(
                            model.event_id == event.id, model.subject_pseudonym.in_(staff)
                        )
                    )
                )
            if not rows:
                continue
            binding = in_force(PROHIBITION_APPLIES, ctx.as_of)
            evidence = {
                "event": event.id,
                "as_of": ctx.as_of.isoformat(),
                "prohibition_applies_from": PROHIBITION_APPLIES.isoformat(),
                **summarise(rows),
            }
            message = (
                f"event {event.id}: {evidence['records']} record(s) of "
                f"{evidence['wristbands']} staff wristband(s) were processed; emotion "
                "recognition at the workplace is prohibited"
                + ("" if binding else f" from {PROHIBITION_APPLIES.isoformat()}")
            )
            yield (message, evidence) if binding else (message, evidence, WARNING)
