"""Selection decisions without their main parameters (DSA Art 27 recommender transparency).

Every track-selection decision must record the main parameters it used — at least the
``weights`` of its criteria — so the recommender's logic can be published and explained. DSA
Art 27 binds online platforms that are not micro or small enterprises (Art 19); for everyone
else a missing record is a warning, because transparency is what flowaudit promises anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import select

from audit.checks._common import iso
from audit.checks._registry import ERROR, WARNING, CheckContext, rule, sample
from retention.models import Decision

__all__ = ["decision_without_parameters", "missing_parameters"]


def missing_parameters(parameters: Any) -> str | None:
    """What is missing from a decision's parameters, or ``None`` if they are complete."""
    if not isinstance(parameters, dict) or not parameters:
        return "no parameters"
    weights = parameters.get("weights")
    if not isinstance(weights, dict) or not weights:
        return "no weights"
    return None


@rule(
    "decision-without-main-parameters",
    title="Selection decisions without recorded main parameters",
    severity=ERROR,
    legal_ref="DSA Art 27(1)-(2)",
)
def decision_without_parameters(ctx: CheckContext) -> Iterator[tuple]:
    with ctx.session() as session:
        for event in ctx.events(session):
            rows = session.execute(
                select(Decision.id, Decision.decided_at, Decision.parameters)
                .where(Decision.event_id == event.id)
                .order_by(Decision.decided_at, Decision.id)
            ).all()
            bad = [(i, at, why) for i, at, p in rows if (why := missing_parameters(p))]
            if not bad:
                continue
            policy = ctx.policy_for(event)
            dsa = bool(policy.classification.online_platform) and (
                policy.classification.enterprise_size not in ("micro", "small")
            )
            evidence = {
                "event": event.id,
                "policy": policy.name,
                "decisions": len(rows),
                "without_parameters": len(bad),
                "decision_ids": sample(i for i, _, _ in bad),
                "reasons": sorted({why for _, _, why in bad}),
                "first_at": iso(min(at for _, at, _ in bad)),
                "last_at": iso(max(at for _, at, _ in bad)),
                "dsa_art27_applies": dsa,
            }
            message = (
                f"event {event.id}: {len(bad)} of {len(rows)} selection decision(s) lack their "
                "main parameters (criteria weights)"
                + ("" if dsa else "; DSA Art 27 does not bind this operator, still publish them")
            )
            yield (message, evidence) if dsa else (message, evidence, WARNING)
