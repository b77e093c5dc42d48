"""Legitimate interests claimed without a recorded balancing test (GDPR Art 6(1)(f), Art 21).

Art 6(1)(f) needs a documented balancing test between the controller's interest and the
attendees' rights, and attendees must be able to object (Art 21); a policy cannot record
either, so an event run under such a policy is a warning that a person must check.

(The other gaps between a claimed basis and the capture settings — consent as the basis with
the consent gate off, biometrics without the Art 9(2)(a) exception — cannot occur: the policy
loader refuses such a file, so they are decided there, once.)
"""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._registry import WARNING, CheckContext, rule

__all__ = ["legitimate_interests"]


@rule(
    "legitimate-interests-without-balancing-test",
    title="Legitimate interests claimed without a recorded balancing test",
    severity=WARNING,
    legal_ref="GDPR Art 6(1)(f), Art 21",
)
def legitimate_interests(ctx: CheckContext) -> Iterator[tuple]:
    for event, policy in ctx.events_with_policies():
        if policy.policy.lawful_basis == "legitimate_interests":
            yield (
                f"event {event.id}: policy {policy.name} relies on legitimate interests; Art "
                "6(1)(f) needs a documented balancing test, which the policy does not record, "
                "and attendees must be able to object (Art 21)",
                {"event": event.id, "policy": policy.name, "lawful_basis": "legitimate_interests"},
            )
