"""No human can override the selector (AI Act Art 14, Art 26(2)).

A high-risk system's deployer must assign human oversight with the authority to disregard or
override its output. The track selector acts on the emotion-recognition score; with
``selection.artist_control = "none"`` nobody can override it. This binds from the Annex III
date (:data:`audit.legal_dates.AI_ACT_ANNEX_III`, evaluated at ``as_of``): a warning from then,
a note before.
"""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._registry import INFO, WARNING, CheckContext, rule
from audit.legal_dates import AI_ACT_ANNEX_III, in_force

__all__ = ["no_human_oversight"]


@rule(
    "no-human-oversight",
    title="No human can override the selector",
    severity=WARNING,
    legal_ref="AI Act Art 14, Art 26(2)",
)
def no_human_oversight(ctx: CheckContext) -> Iterator[tuple]:
    binding = in_force(AI_ACT_ANNEX_III, ctx.as_of)
    for event, policy in ctx.events_with_policies():
        if policy.selection.artist_control != "none":
            continue
        message = (
            f"event {event.id}: no human can override the selector (policy {policy.name}: "
            'selection.artist_control = "none"): human oversight is missing'
            + ("" if binding else f" (Annex III duties apply from {AI_ACT_ANNEX_III})")
        )
        evidence = {
            "event": event.id,
            "policy": policy.name,
            "as_of": ctx.as_of.isoformat(),
            "applies_from": AI_ACT_ANNEX_III.isoformat(),
        }
        yield (message, evidence) if binding else (message, evidence, INFO)
