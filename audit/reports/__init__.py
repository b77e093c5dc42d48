"""Compliance reports: GDPR Art 30 record, retention evidence, DPIA, DSA Art 27, AI Act, compare.

Usage::

    ctx = ReportContext.open(runtime, now=now, event_id="fete-2026")
    report = build_report("gdpr", ctx)
    write_report(report, Path("reports"), ["md", "html", "json"])

Every number comes from the store and the audit log (:mod:`audit.reports.gather`); each kind
is a module in ``audit/reports/kinds/`` with a JSON Schema in ``audit/reports/schemas/``.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from audit.reports._context import ReportContext, resolve_event_id
from audit.reports._model import Report, Section
from audit.reports._registry import ReportKind, get_kind, kind_ids, kinds, report_kind
from audit.reports._render import FORMATS, render, write_report

__all__ = [
    "FORMATS",
    "Report",
    "ReportContext",
    "ReportKind",
    "Section",
    "build_report",
    "get_kind",
    "kind_ids",
    "kinds",
    "render",
    "report_kind",
    "resolve_event_id",
    "schema_for",
    "write_report",
]


def build_report(kind: str, ctx: ReportContext) -> Report:
    """Build one report kind from the store (nothing is written)."""
    return get_kind(kind).build(ctx)


def schema_for(kind: str) -> dict[str, Any]:
    """The JSON Schema a kind's JSON output validates against (shipped in the package)."""
    get_kind(kind)
    text = resources.files("audit.reports").joinpath("schemas", f"{kind}.json").read_text("utf-8")
    return dict(json.loads(text))
