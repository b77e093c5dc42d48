"""Re-identification assessment: audit's thin door onto the one privacy engine.

Every figure is computed by :mod:`retention.anonymity` — the same code the anonymiser asks — so
the ``reid-threshold`` check, ``flowaudit reid`` and ``flowaudit export`` report exactly what
the anonymiser achieved. This module only adds what a report needs: thresholds from a policy
with per-call overrides, and the lattice search under the policy's (strict) hierarchies::

    from audit.reid.risk import assess, assess_policy, suggest, Thresholds

    report = assess(frame, ["zone", "arrival_bucket", "age_band"], ["mean_sentiment_band"],
                    k_min=10, l_min=2, t_max=0.5, max_prosecutor_risk=0.1)
    report.k, report.distinct_l, report.entropy_l, report.t_closeness
    report.meets()            # against the thresholds it was measured with
    report.missed(policy_t)   # or any others: a tuple of Miss("k", 3, 10, ...)

    report = assess_policy(frame, policy)   # QIs, sensitive attributes, thresholds from policy
    result = suggest(frame, policy, qis, sensitive, report.thresholds)   # least recoding

The figures and their definitions are documented in :mod:`retention.anonymity.risk`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from retention.anonymity import (
    Lattice,
    Miss,
    RiskReport,
    SearchResult,
    SensitiveFigures,
    Thresholds,
    hierarchies_from_policy,
    measure,
)
from retention.policy import Policy

__all__ = [
    "Thresholds",
    "Miss",
    "SensitiveFigures",
    "RiskReport",
    "SearchResult",
    "assess",
    "assess_policy",
    "suggest",
]


def assess(
    frame: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    sensitive: Sequence[str] = (),
    *,
    thresholds: Thresholds | None = None,
    k_min: int | None = None,
    l_min: int | None = None,
    t_max: float | None = None,
    max_prosecutor_risk: float | None = None,
    population: pd.DataFrame | int | None = None,
) -> RiskReport:
    """Measure a frame; thresholds default to :class:`Thresholds` (the policy defaults).

    Keyword thresholds that are not None override ``thresholds``. ``population``: a frame
    holding the quasi-identifiers of the whole population the table was drawn from (e.g. every
    wristband of the event), or just its size.
    """
    overrides: dict[str, Any] = {
        "k_min": k_min,
        "l_min": l_min,
        "t_max": t_max,
        "max_prosecutor_risk": max_prosecutor_risk,
    }
    limits = replace(
        thresholds or Thresholds(), **{k: v for k, v in overrides.items() if v is not None}
    )
    return measure(frame, quasi_identifiers, sensitive, thresholds=limits, population=population)


def assess_policy(
    frame: pd.DataFrame,
    policy: Policy,
    *,
    quasi_identifiers: Sequence[str] | None = None,
    sensitive: Sequence[str] | None = None,
    population: pd.DataFrame | int | None = None,
    **overrides: Any,
) -> RiskReport:
    """:func:`assess` with the policy's quasi-identifiers, sensitive attributes and thresholds.

    Sensitive attributes the frame lacks are left out (a subjects table has none), so callers
    can pass any of flowaudit's source tables.
    """
    qis = list(
        quasi_identifiers if quasi_identifiers is not None else policy.reid.quasi_identifiers
    )
    if sensitive is None:
        sensitive = [c for c in policy.reid.sensitive if c in frame.columns]
    return measure(
        frame,
        qis,
        list(sensitive),
        thresholds=Thresholds.from_policy(policy, **overrides),
        population=population,
    )


def suggest(
    frame: pd.DataFrame,
    policy: Policy,
    quasi_identifiers: Sequence[str],
    sensitive: Sequence[str],
    thresholds: Thresholds,
) -> SearchResult:
    """The least recoding along the policy's hierarchies that would meet ``thresholds``."""
    hierarchies = hierarchies_from_policy(policy)
    return Lattice(frame, quasi_identifiers, sensitive, hierarchies, thresholds).search()
