"""No data protection officer named in the policy an event ran under (GDPR Art 37(1)(b)).

Wristband microphones monitoring a festival crowd are regular and systematic monitoring of
data subjects on a large scale, so a DPO must be designated, and the Art 30(1)(a) record names
them. A policy whose ``policy.dpo_contact`` is empty is reported as a warning: the designation
may exist outside the policy, but the record cannot show it.
"""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._registry import WARNING, CheckContext, rule

__all__ = ["no_dpo_contact"]


@rule(
    "no-dpo-contact",
    title="No DPO contact in the policy",
    severity=WARNING,
    legal_ref="GDPR Art 37(1)(b), Art 30(1)(a)",
)
def no_dpo_contact(ctx: CheckContext) -> Iterator[tuple]:
    for event, policy in ctx.events_with_policies():
        if not (policy.policy.dpo_contact or "").strip():
            yield (
                f"event {event.id}: policy {policy.name} names no DPO (policy.dpo_contact is "
                "empty); large-scale systematic monitoring requires one",
                {"event": event.id, "policy": policy.name},
            )
