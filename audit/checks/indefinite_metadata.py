"""Linkable metadata kept indefinitely without anonymisation (GDPR Art 5(1)(e), Recital 26).

"Indefinite" is lawful only for data that is no longer personal. A metadata record that still
carries a wristband pseudonym, has no expiry and is not marked anonymised — once the policy's
``anonymise_metadata_after`` has passed, or at once if the policy never anonymises — is
pseudonymous personal data kept forever. A policy that plans this is reported as a warning
even before such records exist.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select

from audit.checks._common import iso, summarise
from audit.checks._registry import ERROR, WARNING, CheckContext, rule
from retention.ground.durations import format_duration
from retention.models import MetadataRecord

__all__ = ["indefinite_linkable_metadata"]


@rule(
    "indefinite-linkable-metadata",
    title="Linkable metadata kept indefinitely and not anonymised",
    severity=ERROR,
    legal_ref="GDPR Art 5(1)(e), Recital 26",
)
def indefinite_linkable_metadata(ctx: CheckContext) -> Iterator[tuple]:
    with ctx.session() as session:
        for event in ctx.events(session):
            policy = ctx.policy_for(event)
            anonymise_after = policy.retention.anonymise_metadata_after
            rows = list(
                session.scalars(
                    select(MetadataRecord).where(
                        MetadataRecord.event_id == event.id,
                        MetadataRecord.expires_at.is_(None),
                        MetadataRecord.anonymised.is_(False),
                        MetadataRecord.subject_pseudonym.is_not(None),
                    )
                )
            )
            due = [
                r
                for r in rows
                if anonymise_after is None or r.start_at + anonymise_after <= ctx.now
            ]
            plan = (
                "never anonymises"
                if anonymise_after is None
                else f"anonymises after {format_duration(anonymise_after)}"
            )
            if due:
                yield (
                    f"event {event.id}: {len(due)} metadata record(s) of "
                    f"{len({r.subject_pseudonym for r in due})} wristband(s) have no expiry, "
                    f"still carry a pseudonym and are not anonymised (policy {policy.name} "
                    f"{plan}); set retention.metadata or anonymise them",
                    {
                        "event": event.id,
                        "policy": policy.name,
                        "metadata_retention": "indefinite",
                        "anonymise_metadata_after": (
                            None if anonymise_after is None else format_duration(anonymise_after)
                        ),
                        **summarise(due),
                        "now": iso(ctx.now),
                    },
                )
            elif (
                policy.retention.metadata is None
                and anonymise_after is None
                and policy.classification.wristbands_linkable
            ):
                yield (
                    f"event {event.id}: policy {policy.name} keeps linkable metadata "
                    "indefinitely and never anonymises it (no such records stored yet)",
                    {"event": event.id, "policy": policy.name, "records": 0},
                    WARNING,
                )
