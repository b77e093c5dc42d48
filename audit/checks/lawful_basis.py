"""The lawful basis an event's policy claims must be one its capture settings can support.

Three rules, one per gap between the claimed basis and the capture settings:

* consent (GDPR Art 6(1)(a)) as the basis while the consent gate is off
  (``capture.require_consent = false``): wristbands without consent are captured anyway;
* legitimate interests (Art 6(1)(f)) need a documented balancing test and a way to object
  (Art 21), which a policy cannot record: a warning so that a person checks it;
* biometric capture (``capture.biometrics = true``, health data under Art 9(1)) without the
  Art 9(2)(a) explicit-consent exception.
"""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._registry import ERROR, WARNING, CheckContext, rule
from retention.policy import Policy

__all__ = ["consent_without_gate", "legitimate_interests", "biometrics_without_art9"]


def _policies(ctx: CheckContext) -> list[tuple[str, Policy]]:
    with ctx.session() as session:
        events = ctx.events(session)
    return [(event.id, ctx.policy_for(event)) for event in events]


@rule(
    "consent-basis-without-consent-gate",
    title="Consent is the lawful basis but the consent gate is off",
    severity=ERROR,
    legal_ref="GDPR Art 6(1)(a), Art 7(1)",
)
def consent_without_gate(ctx: CheckContext) -> Iterator[tuple]:
    for event_id, policy in _policies(ctx):
        if policy.policy.lawful_basis == "consent" and not policy.capture.require_consent:
            yield (
                f"event {event_id}: policy {policy.name} relies on consent but captures "
                "wristbands without it (capture.require_consent = false)",
                {"event": event_id, "policy": policy.name, "require_consent": False},
            )


@rule(
    "legitimate-interests-without-balancing-test",
    title="Legitimate interests claimed without a recorded balancing test",
    severity=WARNING,
    legal_ref="GDPR Art 6(1)(f), Art 21",
)
def legitimate_interests(ctx: CheckContext) -> Iterator[tuple]:
    for event_id, policy in _policies(ctx):
        if policy.policy.lawful_basis == "legitimate_interests":
            yield (
                f"event {event_id}: policy {policy.name} relies on legitimate interests; Art "
                "6(1)(f) needs a documented balancing test, which the policy does not record, "
                "and attendees must be able to object (Art 21)",
                {"event": event_id, "policy": policy.name, "lawful_basis": "legitimate_interests"},
            )


@rule(
    "biometrics-without-art9-exception",
    title="Biometric capture without an Art 9(2) exception",
    severity=ERROR,
    legal_ref="GDPR Art 9(1), Art 9(2)(a)",
)
def biometrics_without_art9(ctx: CheckContext) -> Iterator[tuple]:
    for event_id, policy in _policies(ctx):
        exception = policy.capture.art9_exception
        if policy.capture.biometrics and exception != "explicit_consent":
            yield (
                f"event {event_id}: policy {policy.name} captures heart rate / skin "
                f"conductance (health data) with capture.art9_exception = {exception!r}; "
                "set it to explicit_consent",
                {"event": event_id, "policy": policy.name, "art9_exception": exception},
            )
