"""What the anonymiser keeps: records aggregated into groups of at least ``k_min`` people.

The anonymiser (:mod:`retention.anonymise`) reads a bucket's linkable records into a frame and
asks this module what to write back. The choice of generalisation is the engine's one lattice
search (:class:`~retention.anonymity.lattice.Lattice`, one cost function), configured for
anonymisation rather than reporting:

- ladders are **lenient** (:func:`~retention.anonymity.hierarchies.lenient_hierarchy`): a level
  or a value the policy's hierarchies cannot read becomes ``*``, never an error that would
  leave data linkable;
- no value is kept as stored: the search starts at a **floor** — time quasi-identifiers
  (:data:`~retention.ground.quasi.TIME_QUASI_IDENTIFIERS`) at the hour at least, every other
  one a step up;
- classes count **wristbands** (distinct pseudonyms), not records, and are split by record
  **kind**;
- only ``k_min`` is asked for, and at most ``max_suppression`` of the wristbands may fall in
  groups that are too small (those groups are suppressed). If no node qualifies, every QI
  becomes ``*`` and the groups still too small are dropped whatever their share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..ground.quasi import TIME_QUASI_IDENTIFIERS
from .hierarchies import Hierarchy, lenient_hierarchy
from .lattice import Lattice
from .risk import Thresholds

__all__ = ["GroupingChoice", "anonymiser_ladders", "choose_generalisation", "aggregate_k_anonymous"]

_HOUR = 3600
VALUE_PREFIX = "v:"  # numeric fields, aggregated to their group mean
SENSITIVE_PREFIX = "s:"  # sensitive attributes, kept as counts where the group is l-diverse


@dataclass(frozen=True)
class GroupingChoice:
    """The lattice node chosen for one table, and what it costs."""

    levels: dict[str, int]
    labels: dict[str, str]
    suppressed_subjects: int
    suppressed_records: int
    generalised: pd.DataFrame  # the table with QIs recoded, small groups still in
    small: np.ndarray  # bool mask of rows in groups below k_min


def anonymiser_ladders(
    policy_hierarchies: Mapping[str, Any], qis: Sequence[str]
) -> dict[str, Hierarchy]:
    """The lenient ladder of each QI from the policy's (parsed) ``[reid.hierarchies]``."""
    return {
        q: lenient_hierarchy(q, policy_hierarchies.get(q), is_time=q in TIME_QUASI_IDENTIFIERS)
        for q in qis
    }


def _floor(ladder: Hierarchy, qi: str) -> int:
    """Never keep a value as stored: time at least to the hour, everything else one step."""
    if qi in TIME_QUASI_IDENTIFIERS:
        return ladder.first_level_at_least(_HOUR)
    return min(1, ladder.height)


def choose_generalisation(
    frame: pd.DataFrame,
    qis: Sequence[str],
    hierarchies: Mapping[str, Any],
    *,
    k_min: int,
    max_suppression: float,
    group_by: Sequence[str] = ("kind",),
    subject: str = "pseudonym",
) -> GroupingChoice:
    """The least generalisation (least information loss above the floor) meeting ``k_min``.

    A node is acceptable when the wristbands in groups smaller than ``k_min`` are at most
    ``max_suppression`` of all wristbands; among the cheapest acceptable nodes the one
    suppressing least wins. If none is acceptable, every QI is suppressed (``*``) and the
    groups still too small are dropped whatever their share.
    """
    ladders = anonymiser_ladders(hierarchies, qis)
    table = frame.copy()
    for q in qis:  # a QI the records do not carry is unknown for all of them
        if q not in table:
            table[q] = pd.Series([None] * len(table), index=table.index, dtype=object)
    limits = Thresholds(
        k_min=k_min, l_min=1, t_max=1.0, max_prosecutor_risk=1.0, max_suppression=max_suppression
    )
    lattice = Lattice(
        table,
        qis,
        (),
        ladders,
        limits,
        floor={q: _floor(ladders[q], q) for q in qis},
        subject=subject,
        within=group_by,
    )
    best = lattice.search().best
    levels = dict(best.levels) if best is not None else {q: ladders[q].height for q in qis}
    generalised, small = lattice.apply(levels)
    return GroupingChoice(
        levels=levels,
        labels=lattice.labels([levels[q] for q in qis]),
        suppressed_subjects=int(generalised.loc[small, subject].nunique()),
        suppressed_records=int(small.sum()),
        generalised=generalised,
        small=small,
    )


def aggregate_k_anonymous(
    frame: pd.DataFrame,
    qis: Sequence[str],
    hierarchies: Mapping[str, Any],
    *,
    k_min: int,
    l_min: int = 1,
    max_suppression: float = 0.0,
) -> tuple[list[dict[str, Any]], GroupingChoice]:
    """Aggregate linkable records into groups of at least ``k_min`` wristbands.

    ``frame`` has a ``pseudonym`` and a ``kind`` column, the QI columns, numeric columns named
    ``v:<field>`` and sensitive columns named ``s:<field>``. Returns one dict per kept group
    (``kind``, ``qi``, ``subjects``, ``records``, ``mean``, ``sensitive``) and the choice made.
    """
    choice = choose_generalisation(
        frame, qis, hierarchies, k_min=k_min, max_suppression=max_suppression
    )
    values = [c for c in frame.columns if c.startswith(VALUE_PREFIX)]
    sensitive = [c for c in frame.columns if c.startswith(SENSITIVE_PREFIX)]
    kept = choice.generalised.loc[~choice.small]
    groups: list[dict[str, Any]] = []
    if kept.empty:
        return groups, choice
    keys = ["kind", *qis]
    for key, part in kept.groupby(keys, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        means = {}
        for name in values:
            mean = part[name].astype(float).mean()
            means[name[len(VALUE_PREFIX) :]] = None if math.isnan(mean) else round(float(mean), 6)
        diverse = {}
        for name in sensitive:
            counts = part[name].dropna().astype(str).value_counts()
            if len(counts) >= max(l_min, 1):  # a homogeneous group would disclose the value
                diverse[name[len(SENSITIVE_PREFIX) :]] = {str(k): int(v) for k, v in counts.items()}
        groups.append(
            {
                "kind": str(key[0]),
                "qi": {q: str(v) for q, v in zip(qis, key[1:], strict=True)},
                "subjects": int(part["pseudonym"].nunique()),
                "records": len(part),
                "mean": means,
                "sensitive": diverse,
            }
        )
    return groups, choice
