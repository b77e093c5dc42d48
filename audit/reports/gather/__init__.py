"""The data-gathering layer: every number a report prints comes from one of these functions.

Each reads the store's tables or the audit log through SQLAlchemy and returns JSON-friendly
values; none reads ciphertext or key material. Report kinds compose them; tests recompute them
with direct SQL.
"""

from audit.reports.gather.analysis import findings, reid_figures
from audit.reports.gather.console import console_options
from audit.reports.gather.decisions import (
    decision_stats,
    minimisation,
    parameter_weights,
    percentile,
    run_summaries,
)
from audit.reports.gather.evidence import (
    anonymisation_evidence,
    bucket_evidence,
    erasure_receipts,
    purge_receipts,
    purge_runs,
    timeline,
    writes_per_bucket,
)
from audit.reports.gather.requests import subject_requests
from audit.reports.gather.store import (
    CATEGORIES,
    FRAME_MS,
    category_stats,
    event_facts,
    notice_timing,
    population,
    readable_at,
)
from audit.reports.gather.system import audit_chain, chain_verification, security_facts

__all__ = [
    "CATEGORIES",
    "FRAME_MS",
    "anonymisation_evidence",
    "audit_chain",
    "bucket_evidence",
    "category_stats",
    "chain_verification",
    "console_options",
    "decision_stats",
    "erasure_receipts",
    "event_facts",
    "findings",
    "minimisation",
    "notice_timing",
    "reid_figures",
    "parameter_weights",
    "percentile",
    "population",
    "purge_receipts",
    "purge_runs",
    "readable_at",
    "run_summaries",
    "security_facts",
    "subject_requests",
    "timeline",
    "writes_per_bucket",
]
