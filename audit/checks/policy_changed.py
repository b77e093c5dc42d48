"""An event judged against a policy other than the one it ran under (GDPR Art 5(2), 35(11)).

The event row stores the SHA-256 of the policy file it ran under. When the policy an audit
evaluates it against — the file of that name today, or the one given with ``--policy`` — has
another hash, the settings being checked may not be those that applied, and the DPIA must be
reviewed (Art 35(11)). A warning: the findings still hold for the policy as it is now.
"""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._registry import WARNING, CheckContext, rule

__all__ = ["policy_changed_since_event"]


@rule(
    "policy-changed-since-event",
    title="Policy evaluated differs from the one the event ran under",
    severity=WARNING,
    legal_ref="GDPR Art 5(2), Art 35(11)",
)
def policy_changed_since_event(ctx: CheckContext) -> Iterator[tuple]:
    with ctx.session() as session:
        events = [
            (e.id, e.policy_name, e.policy_sha256, ctx.policy_for(e)) for e in ctx.events(session)
        ]
    for event_id, ran_name, ran_sha, policy in events:
        if policy.sha256 == ran_sha:
            continue
        yield (
            f"event {event_id} ran under policy {ran_name} (sha256 {ran_sha[:16]}…) but is "
            f"evaluated against {policy.name} (sha256 {policy.sha256[:16]}…): the settings "
            "judged may not be those that applied; review the DPIA",
            {
                "event": event_id,
                "ran_under": ran_name,
                "ran_under_sha256": ran_sha,
                "evaluated_against": policy.name,
                "evaluated_sha256": policy.sha256,
            },
        )
