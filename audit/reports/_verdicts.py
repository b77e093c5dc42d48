"""Verdicts in reports come from the check registry, never from a report's own judgement.

A report section that says pass / fail / warn names the rules that judge its matter;
:func:`verdicts` renders their findings on the report's scope (run once per context, see
:meth:`ReportContext.findings`) — severity, message, legal reference, rule id — or states that
the rule passed. :func:`audit.reports._build.finish` collects every verdict of a report into
its JSON ``data.verdicts``, so the document and ``flowaudit audit check`` agree by construction.
"""

from __future__ import annotations

from audit.checks import ERROR, INFO, WARNING, Finding, get_rule
from audit.reports._context import ReportContext
from audit.reports._model import FAIL, PASS, WARN, Verdict
from audit.reports._model import INFO as INFO_LEVEL

__all__ = ["verdicts", "findings_of", "LEVELS", "level_of"]

#: how a finding's severity shows in a report
LEVELS = {ERROR: FAIL, WARNING: WARN, INFO: INFO_LEVEL}


def level_of(findings: list[Finding]) -> str:
    """The worst level among some findings (pass if there are none)."""
    severities = {f.severity for f in findings}
    for severity in (ERROR, WARNING, INFO):
        if severity in severities:
            return LEVELS[severity]
    return PASS


def findings_of(ctx: ReportContext, *rule_ids: str, category: str | None = None) -> list[Finding]:
    """The findings of these rules on the report's scope (``category``: only those about it,
    or about no category in particular)."""
    for rule_id in rule_ids:
        get_rule(rule_id)  # an unknown id is a bug in the report kind: fail loudly
    return [
        f
        for f in ctx.findings()
        if f.rule_id in rule_ids
        and (category is None or f.evidence.get("category") in (None, category))
    ]


def verdicts(ctx: ReportContext, *rule_ids: str, category: str | None = None) -> list[Verdict]:
    """One block per finding of each rule, in the order given, or one saying the rule passed."""
    found = findings_of(ctx, *rule_ids, category=category)
    out: list[Verdict] = []
    for rule_id in rule_ids:
        meta = get_rule(rule_id)
        mine = [f for f in found if f.rule_id == rule_id]
        for f in mine:
            out.append(
                Verdict(f.rule_id, f.title, f.legal_ref, LEVELS[f.severity], f.message, f.severity)
            )
        if not mine:
            scope = f" for {category}" if category else ""
            message = f"passed, no finding{scope}: “{meta.title}” does not occur."
            out.append(Verdict(rule_id, meta.title, meta.legal_ref, PASS, message))
    return out
