"""Emotion recognition applied to staff (AI Act Art 5(1)(f): prohibited at the workplace).

Festival staff, bar workers, security and artists on duty are at work; inferring their
emotions is prohibited since 2 February 2025. Any stored record of a wristband flagged
``is_staff`` is a finding — an error from that date (``as_of``), a warning before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from sqlalchemy import select

from audit.checks._common import summarise
from audit.checks._registry import ERROR, WARNING, CheckContext, rule
from retention.models import MetadataRecord, RawSegment, Subject

__all__ = ["staff_processed", "PROHIBITION_APPLIES"]

PROHIBITION_APPLIES = date(2025, 2, 2)


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
            in_force = ctx.as_of >= PROHIBITION_APPLIES
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
                + ("" if in_force else f" from {PROHIBITION_APPLIES.isoformat()}")
            )
            yield (message, evidence) if in_force else (message, evidence, WARNING)
