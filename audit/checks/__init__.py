"""Compliance checks: registered rules that prove from the store and log that the policy held.

See :mod:`audit.checks._registry` for how to write a rule. Every module in this package whose
name does not start with ``_`` is a rule module and is imported by :func:`load_rules`.
"""

from audit.checks._registry import (
    ERROR,
    INFO,
    SEVERITIES,
    WARNING,
    CheckContext,
    Finding,
    Rule,
    RuntimeLike,
    get_rule,
    load_rules,
    rule,
    rules,
    run_checks,
    sample,
)

__all__ = [
    "ERROR",
    "WARNING",
    "INFO",
    "SEVERITIES",
    "Finding",
    "Rule",
    "RuntimeLike",
    "CheckContext",
    "rule",
    "rules",
    "get_rule",
    "load_rules",
    "run_checks",
    "sample",
]
