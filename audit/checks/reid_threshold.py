"""Kept metadata above the policy's re-identification thresholds (GDPR Recital 26, Art 5(1)(e)).

Metadata is only "anonymous" if nobody can be singled out of it. The claim matters for what is
*kept*: metadata past the policy's ``anonymise_metadata_after`` point (all of it when that is
"indefinite"). Fresh pseudonymous metadata inside its anonymisation window is personal data
processed under the policy's lawful basis, not a re-identification failure. For each event, the
per-wristband metadata past that point and still readable now (quasi-identifiers plus the
mean sentiment band, as :func:`audit.reid.source.metadata_frame` builds it) is measured
against the ``[reid]`` thresholds of the policy the event ran under; each threshold it misses
is evidence that the kept metadata is still personal data and must be generalised,
aggregated or deleted.
"""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._common import iso
from audit.checks._registry import ERROR, CheckContext, rule
from audit.reid.risk import assess_policy
from audit.reid.source import metadata_frame

__all__ = ["reid_threshold"]


@rule(
    "reid-threshold",
    title="Kept metadata above the re-identification thresholds",
    severity=ERROR,
    legal_ref="GDPR Recital 26; Art 5(1)(e)",
)
def reid_threshold(ctx: CheckContext) -> Iterator[tuple]:
    with ctx.session() as session:
        events = [(e.id, ctx.policy_for(e)) for e in ctx.events(session)]
    for event_id, policy in events:
        anonymise_after = policy.retention.anonymise_metadata_after
        cutoff = None if anonymise_after is None else ctx.now - anonymise_after
        frame = metadata_frame(ctx.runtime.store, now=ctx.now, event_id=event_id, until=cutoff)
        if frame.empty:
            continue
        report = assess_policy(frame, policy)
        missed = report.missed()
        if not missed:
            continue
        yield (
            f"event {event_id}: the metadata kept past its anonymisation point on "
            f"{report.records} wristband(s) misses "
            f"{'; '.join(str(m) for m in missed)} (policy {policy.name}); "
            f"{report.sample_uniques} wristband(s) are unique on "
            f"{', '.join(report.quasi_identifiers)}; generalise it (`flowaudit export "
            "metadata --generalise`), aggregate or delete it",
            {
                "event": event_id,
                "policy": policy.name,
                "records": report.records,
                "classes": report.classes,
                "k": report.k,
                "distinct_l": report.distinct_l,
                "entropy_l": report.entropy_l,
                "t_closeness": report.t_closeness,
                "prosecutor_risk": report.prosecutor_risk,
                "sample_uniques": report.sample_uniques,
                "records_at_risk": report.records_at_risk,
                "missed": [
                    {
                        "metric": m.metric,
                        "value": m.value,
                        "threshold": m.threshold,
                        "limit": m.limit,
                    }
                    for m in missed
                ],
                "thresholds": report.thresholds.as_dict(),
                "now": iso(ctx.now),
                "kept_before": iso(cutoff) if cutoff is not None else None,
            },
        )
