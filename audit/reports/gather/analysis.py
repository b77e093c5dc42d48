"""Results of the other audit modules, as report facts: check findings and re-ID risk."""

from __future__ import annotations

from typing import Any

from audit.checks import SEVERITIES, run_checks

from .._context import ReportContext

__all__ = ["findings", "reid_figures"]


def findings(ctx: ReportContext) -> dict[str, Any]:
    """Run every compliance check on the report's event; counts by severity and the list."""
    found = run_checks(ctx.check_context())
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
    """Re-identification risk of the kept attributes against the policy's thresholds."""
    return {
        "available": False,
        "meets_policy": None,
        "summary": "re-identification figures not available",
        "rows": [],
    }
