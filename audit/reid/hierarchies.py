"""Generalisation hierarchies for quasi-identifiers, as a policy writes them.

The implementation lives in :mod:`retention.hierarchies` (the anonymiser needs the same ladders
and may not import `audit`); this module is the audit side's name for its strict mode: specs
are validated into :class:`PolicyError` naming the policy file, key and value, and values a
level cannot read raise :class:`InputError`. See :mod:`retention.hierarchies` for the syntax.
"""

from __future__ import annotations

from retention.hierarchies import (
    SUPPRESSED,
    Hierarchy,
    Level,
    generalise_frame,
    hierarchies_from_policy,
    hierarchy_for,
    parse_hierarchies,
    parse_hierarchy,
    zone_area,
)

__all__ = [
    "SUPPRESSED",
    "Level",
    "Hierarchy",
    "parse_hierarchy",
    "parse_hierarchies",
    "hierarchies_from_policy",
    "hierarchy_for",
    "zone_area",
    "generalise_frame",
]
