"""Biometric (health) fields of a wristband without explicit Art 9(2)(a) consent.

Heart rate or skin conductance can reveal health; the only realistic basis at a festival is
explicit consent, recorded separately from the ticket terms (``biometrics_explicit``). Any
metadata record whose kind starts with ``biometric`` for a wristband without that consent for
the event is a finding.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from sqlalchemy import and_, select

from audit.checks._common import iso
from audit.checks._registry import ERROR, CheckContext, rule, sample
from retention.models import Consent, MetadataRecord, Subject

__all__ = ["biometrics_without_consent"]


@rule(
    "biometrics-without-explicit-consent",
    title="Biometric fields without explicit consent",
    severity=ERROR,
    legal_ref="GDPR Art 9(1), Art 9(2)(a)",
)
def biometrics_without_consent(ctx: CheckContext) -> Iterator[tuple]:
    with ctx.session() as session:
        for event in ctx.events(session):
            query = (
                select(
                    MetadataRecord.id,
                    MetadataRecord.subject_pseudonym,
                    MetadataRecord.kind,
                    MetadataRecord.start_at,
                    Consent.biometrics_explicit,
                )
                .join(Subject, Subject.pseudonym == MetadataRecord.subject_pseudonym, isouter=True)
                .join(
                    Consent,
                    and_(Consent.subject_id == Subject.id, Consent.event_id == event.id),
                    isouter=True,
                )
                .where(
                    MetadataRecord.event_id == event.id,
                    MetadataRecord.kind.like("biometric%"),
                )
            )
            bad = [row for row in session.execute(query) if not row.biometrics_explicit]
            if not bad:
                continue
            policy = ctx.policy_for(event)
            wristbands = {r.subject_pseudonym for r in bad if r.subject_pseudonym}
            note = "" if policy.capture.biometrics else f" (policy {policy.name} disables them)"
            yield (
                f"event {event.id}: {len(bad)} biometric record(s) of {len(wristbands)} "
                f"wristband(s) without explicit consent{note}",
                {
                    "event": event.id,
                    "policy": policy.name,
                    "records": len(bad),
                    "record_ids": sample(r.id for r in bad),
                    "by_kind": dict(sorted(Counter(r.kind for r in bad).items())),
                    "wristbands": len(wristbands),
                    "pseudonyms": sample(wristbands, 10),
                    "first_at": iso(min(r.start_at for r in bad)),
                    "last_at": iso(max(r.start_at for r in bad)),
                },
            )
