"""The audit log kept less than six months (AI Act Art 26(6)).

Deployers of a high-risk system keep its automatically generated logs for at least six months
(:data:`audit.legal_dates.AI_ACT_LOG_RETENTION`); flowaudit's audit log is that record, and it
must outlive the raw audio. A policy whose ``retention.audit_log`` is shorter is an error from
the Annex III date (:data:`audit.legal_dates.AI_ACT_ANNEX_III`, at ``as_of``), a warning before.
"""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._registry import ERROR, WARNING, CheckContext, rule
from audit.legal_dates import AI_ACT_ANNEX_III, AI_ACT_LOG_RETENTION, in_force
from retention.ground.durations import format_duration

__all__ = ["audit_log_too_short"]


@rule(
    "audit-log-retention-too-short",
    title="Audit log kept less than six months",
    severity=ERROR,
    legal_ref="AI Act Art 26(6), Art 12",
)
def audit_log_too_short(ctx: CheckContext) -> Iterator[tuple]:
    binding = in_force(AI_ACT_ANNEX_III, ctx.as_of)
    for event, policy in ctx.events_with_policies():
        kept = policy.retention.audit_log
        if kept is None or kept >= AI_ACT_LOG_RETENTION:
            continue
        message = (
            f"event {event.id}: policy {policy.name} keeps the audit log "
            f"{format_duration(kept)}, less than the six months "
            f"({format_duration(AI_ACT_LOG_RETENTION)}) deployers must keep the system's logs"
            + ("" if binding else f" (from {AI_ACT_ANNEX_III})")
        )
        evidence = {
            "event": event.id,
            "policy": policy.name,
            "audit_log": format_duration(kept),
            "minimum": format_duration(AI_ACT_LOG_RETENTION),
            "as_of": ctx.as_of.isoformat(),
            "applies_from": AI_ACT_ANNEX_III.isoformat(),
        }
        yield (message, evidence) if binding else (message, evidence, WARNING)
