"""Results of the other audit modules, as report facts: check findings and re-ID risk."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from audit.checks import SEVERITIES
from audit.reid.risk import assess_policy
from audit.reid.source import metadata_frame
from audit.reports import _fmt as f
from audit.reports._context import ReportContext
from retention.models import Consent

__all__ = ["findings", "reid_figures"]


def findings(ctx: ReportContext) -> dict[str, Any]:
    """Every compliance check's findings on the report's scope: counts by severity, the list.

    The checks run once per context (:meth:`ReportContext.findings`), whatever the kinds built.
    """
    found = ctx.findings()
    counts = {s: sum(1 for f in found if f.severity == s) for s in SEVERITIES}
    return {
        "counts": counts,
        "findings": [
            {
                "rule_id": f.rule_id,
                "severity": f.severity,
                "title": f.title,
                "legal_ref": f.legal_ref,
                "message": f.message,
            }
            for f in found
        ],
    }


def reid_figures(ctx: ReportContext) -> dict[str, Any]:
    """Re-identification risk of the linked metadata against the policy's thresholds."""
    frame = metadata_frame(ctx.runtime.store, now=ctx.now, event_id=ctx.event_id)
    if frame.empty:
        return {
            "available": False,
            "meets_policy": None,
            "summary": "no metadata linked to a wristband is readable at report time: "
            "nothing left to re-identify",
            "rows": [],
        }
    qis = [q for q in ctx.policy.reid.quasi_identifiers if q in frame.columns]
    with ctx.session() as session:
        population = int(
            session.scalar(select(func.count(Consent.id)).where(Consent.event_id == ctx.event_id))
            or 0
        )
    report = assess_policy(
        frame,
        ctx.policy,
        quasi_identifiers=qis,
        population=max(population, len(frame)),
    )
    t = report.thresholds
    figures = report.as_dict()
    rows = [
        ("Wristbands with linked, readable metadata", f.n(report.records)),
        ("Quasi-identifiers", ", ".join(qis)),
        ("Equivalence classes", f.n(report.classes)),
        ("k (smallest class)", f"{f.n(report.k)} (policy k_min {f.n(t.k_min)})"),
        ("Distinct l", f"{f.n(report.distinct_l)} (policy l_min {f.n(t.l_min)})"),
        ("t-closeness", f"{f.num(report.t_closeness, 3)} (policy t_max {f.num(t.t_max, 2)})"),
        (
            "Prosecutor risk",
            f"{f.num(report.prosecutor_risk, 3)} (policy max {f.num(t.max_prosecutor_risk, 2)})",
        ),
        ("Journalist risk", f.num(report.journalist_risk, 3)),
        ("Marketer risk", f.num(report.marketer_risk, 3)),
        ("Sample uniques", f.n(report.sample_uniques)),
        ("Records in classes below k_min", f.pct(report.records_at_risk_share)),
    ]
    missed = ", ".join(m["metric"] for m in figures["missed"]) or "none"
    return {
        "available": True,
        "meets_policy": report.meets(),
        "summary": f"{report.summary()}; thresholds missed: {missed}",
        "rows": rows,
        "figures": figures,
    }
