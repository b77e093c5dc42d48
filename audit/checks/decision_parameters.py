"""Selection decisions without their main parameters or explanation (DSA Art 27).

Every track-selection decision must record the main parameters it used — at least the
``weights`` of its criteria — so the recommender's logic can be published and explained, and
an explanation of why the track was chosen. DSA Art 27 binds online platforms that are not
micro or small enterprises (Art 19, :func:`dsa_art27_applies`); for everyone else a missing
record is a warning, because transparency is what flowaudit promises anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import select

from audit.checks._common import iso
from audit.checks._registry import ERROR, WARNING, CheckContext, rule, sample
from retention.models import Decision
from retention.policy import Policy

__all__ = [
    "decision_without_parameters",
    "decision_without_explanation",
    "missing_parameters",
    "dsa_art27_applies",
]

#: Art 19: micro and small enterprises are exempt from Section 3 (Arts 20-28), Art 27 included
EXEMPT_SIZES = ("micro", "small")


def dsa_art27_applies(policy: Policy) -> bool:
    """Art 27 binds an online platform (Art 3(i)) unless it is a micro or small enterprise."""
    c = policy.classification
    return bool(c.online_platform) and str(c.enterprise_size) not in EXEMPT_SIZES


def missing_parameters(parameters: Any) -> str | None:
    """What is missing from a decision's parameters, or ``None`` if they are complete."""
    if not isinstance(parameters, dict) or not parameters:
        return "no parameters"
    weights = parameters.get("weights")
    if not isinstance(weights, dict) or not weights:
        return "no weights"
    return None


def _missing_explanation(explanation: Any) -> str | None:
    return None if isinstance(explanation, str) and explanation.strip() else "no explanation"


def _decisions(
    ctx: CheckContext, column: Any, problem: Callable[[Any], str | None], what: str, key: str
) -> Iterator[tuple]:
    """Per event, the decisions whose ``column`` has a ``problem``; ``key`` names their count."""
    with ctx.session() as session:
        for event in ctx.events(session):
            rows = session.execute(
                select(Decision.id, Decision.decided_at, column)
                .where(Decision.event_id == event.id)
                .order_by(Decision.decided_at, Decision.id)
            ).all()
            bad = [(i, at, why) for i, at, value in rows if (why := problem(value))]
            if not bad:
                continue
            policy = ctx.policy_for(event)
            dsa = dsa_art27_applies(policy)
            evidence = {
                "event": event.id,
                "policy": policy.name,
                "decisions": len(rows),
                key: len(bad),
                "decision_ids": sample(i for i, _, _ in bad),
                "reasons": sorted({why for _, _, why in bad}),
                "first_at": iso(min(at for _, at, _ in bad)),
                "last_at": iso(max(at for _, at, _ in bad)),
                "dsa_art27_applies": dsa,
            }
            message = (
                f"event {event.id}: {len(bad)} of {len(rows)} selection decision(s) lack {what}"
                + ("" if dsa else "; DSA Art 27 does not bind this operator, still publish them")
            )
            yield (message, evidence) if dsa else (message, evidence, WARNING)


@rule(
    "decision-without-main-parameters",
    title="Selection decisions without recorded main parameters",
    severity=ERROR,
    legal_ref="DSA Art 27(1)-(2)",
)
def decision_without_parameters(ctx: CheckContext) -> Iterator[tuple]:
    yield from _decisions(
        ctx,
        Decision.parameters,
        missing_parameters,
        "their main parameters (criteria weights)",
        "without_parameters",
    )


@rule(
    "decision-without-explanation",
    title="Selection decisions without a recorded explanation",
    severity=ERROR,
    legal_ref="DSA Art 27(1)",
)
def decision_without_explanation(ctx: CheckContext) -> Iterator[tuple]:
    yield from _decisions(
        ctx, Decision.explanation, _missing_explanation, "an explanation", "without_explanation"
    )
