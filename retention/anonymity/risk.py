"""Re-identification risk of a table: k, l, t and the attacker models, from one grouping.

"Anonymised" data is not anonymous when a few ordinary attributes single a person out (GDPR
Recital 26). :func:`measure` says how far a table is from that line; every figure comes from
one compression of the records (:mod:`retention.anonymity.grouping`).

Figures (definitions match pycanon, checked by differential tests; risk models as in ARX /
sdcMicro, see ``shared/research/reid-pii.md``):

- ``k``: the smallest equivalence class (records sharing all quasi-identifier values).
- ``distinct_l`` / ``entropy_l``: the fewest distinct sensitive values in a class / ``exp`` of
  the lowest class entropy ``H = -Σ p·log p`` (pycanon truncates entropy l to an int; this
  keeps the float). With several sensitive attributes, the worst one.
- ``t_closeness``: the largest EMD between a class's sensitive distribution and the table's:
  ordered EMD ``1/(m−1)·Σ_i |Σ_{j≤i} (q_j − p_j)|`` over the m distinct values in sorted order
  for numeric columns (and ordered pandas categoricals), equal-distance ``½·Σ|q − p|``
  otherwise.
- ``prosecutor_risk`` = 1/k: the attacker knows the person is in the table.
  ``average_risk`` = classes/records (ARX's average prosecutor risk).
- ``journalist_risk``: the attacker does not know who is in the table, so a match is with the
  whole population class. With a population table, ``max 1/F`` over the classes in the sample
  (F = matching records in the population); with only a population size N, F is estimated as
  ``f·N/n``; without either, the table is its own population and this equals prosecutor risk.
- ``marketer_risk``: the expected share re-identified when every record is matched:
  classes/records, or ``Σ f/F / n`` with a population table, ``classes/N`` with a size.
- ``sample_uniques``: records alone in their class; ``records_at_risk``: records in classes
  smaller than ``k_min``.

When ``subject`` names a person column, class sizes count distinct persons (a wristband with
ten records in one class is one person, not ten), so every size-based figure above — k, the
risks, uniques, records at risk, ``records`` itself — counts persons; l and t still describe
the distribution of sensitive values over the records.

Missing quasi-identifier values form a class value of their own (nobody silently drops out of
the measurement).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ._settings import PolicySettings
from .grouping import Table, class_sizes, frame_table, group_rows, qi_codes

__all__ = [
    "Thresholds",
    "Miss",
    "SensitiveFigures",
    "RiskReport",
    "ClassFigures",
    "class_figures",
    "assess_table",
    "measure",
    "k_anonymity",
]

_DENSE_CELLS = 4_000_000  # cells of one chunk of the class x value matrix (ordered EMD)


@dataclass(frozen=True)
class Thresholds:
    """What a table must meet. Defaults are those of the privacy-by-default policy."""

    k_min: int = 10
    l_min: int = 2
    t_max: float = 0.5
    max_prosecutor_risk: float = 0.1
    max_suppression: float = 0.05

    def __post_init__(self) -> None:
        if self.k_min < 1 or self.l_min < 1:
            raise InputError(f"k_min ({self.k_min}) and l_min ({self.l_min}) must be at least 1")
        for name in ("t_max", "max_prosecutor_risk", "max_suppression"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{name} = {value!r} must be between 0 and 1")

    @classmethod
    def from_policy(cls, policy: PolicySettings, **overrides: Any) -> Thresholds:
        """The ``[reid]`` thresholds of a policy; keyword overrides that are not None win."""
        reid = policy.reid
        values: dict[str, Any] = {
            "k_min": reid.k_min,
            "l_min": reid.l_min,
            "t_max": reid.t_max,
            "max_prosecutor_risk": reid.max_prosecutor_risk,
            "max_suppression": reid.max_suppression,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def min_class_size(self) -> int:
        """The class size that satisfies both ``k_min`` and ``max_prosecutor_risk``."""
        if self.max_prosecutor_risk <= 0:
            return sys.maxsize  # no class is small enough for a zero risk
        return max(self.k_min, math.ceil(1.0 / self.max_prosecutor_risk - 1e-9))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Miss:
    """One threshold a table does not meet."""

    metric: str  # k | distinct_l | t_closeness | prosecutor_risk
    value: float
    limit: float
    threshold: str  # k_min | l_min | t_max | max_prosecutor_risk

    def __str__(self) -> str:
        op = "<" if self.threshold in ("k_min", "l_min") else ">"
        value = f"{self.value:g}" if isinstance(self.value, int) else f"{self.value:.3g}"
        return f"{self.metric} = {value} {op} {self.threshold} {self.limit:g}"


@dataclass(frozen=True)
class SensitiveFigures:
    """l and t for one sensitive attribute."""

    name: str
    distinct_l: int
    entropy_l: float
    t_closeness: float
    ordered: bool  # ordered EMD (numeric / ordered categorical) or equal-distance
    values: int  # distinct values in the table


@dataclass(frozen=True)
class RiskReport:
    """Every figure for one table; frozen, JSON-friendly through :meth:`as_dict`."""

    records: int
    classes: int
    quasi_identifiers: tuple[str, ...]
    sensitive: tuple[SensitiveFigures, ...]
    k: int
    prosecutor_risk: float
    average_risk: float
    journalist_risk: float
    marketer_risk: float
    sample_uniques: int
    records_at_risk: int
    highest_risk_records: int
    population: int | None
    thresholds: Thresholds
    class_sizes: Mapping[str, int] = field(default_factory=dict)  # "1".."k_min-1", "k_min+"

    @property
    def distinct_l(self) -> int | None:
        return min((s.distinct_l for s in self.sensitive), default=None)

    @property
    def entropy_l(self) -> float | None:
        return min((s.entropy_l for s in self.sensitive), default=None)

    @property
    def t_closeness(self) -> float | None:
        return max((s.t_closeness for s in self.sensitive), default=None)

    @property
    def sample_uniques_share(self) -> float:
        return self.sample_uniques / self.records if self.records else 0.0

    @property
    def records_at_risk_share(self) -> float:
        return self.records_at_risk / self.records if self.records else 0.0

    def missed(self, thresholds: Thresholds | None = None) -> tuple[Miss, ...]:
        """The thresholds this table misses (l and t only if it has sensitive attributes)."""
        limits = thresholds or self.thresholds
        out: list[Miss] = []
        if self.k < limits.k_min:
            out.append(Miss("k", self.k, limits.k_min, "k_min"))
        if self.distinct_l is not None and self.distinct_l < limits.l_min:
            out.append(Miss("distinct_l", self.distinct_l, limits.l_min, "l_min"))
        t = self.t_closeness
        if t is not None and t > limits.t_max + 1e-9:
            out.append(Miss("t_closeness", t, limits.t_max, "t_max"))
        if self.prosecutor_risk > limits.max_prosecutor_risk + 1e-9:
            out.append(
                Miss(
                    "prosecutor_risk",
                    self.prosecutor_risk,
                    limits.max_prosecutor_risk,
                    "max_prosecutor_risk",
                )
            )
        return tuple(out)

    def meets(self, thresholds: Thresholds | None = None) -> bool:
        """True if no threshold is missed."""
        return not self.missed(thresholds)

    def summary(self) -> str:
        """One line of the headline figures."""
        parts = [f"{self.records} records in {self.classes} classes", f"k = {self.k}"]
        if self.sensitive:
            parts += [
                f"l = {self.distinct_l}",
                f"entropy l = {self.entropy_l:.2f}",
                f"t = {self.t_closeness:.3f}",
            ]
        parts += [
            f"prosecutor risk = {self.prosecutor_risk:.3f}",
            f"sample uniques = {self.sample_uniques}",
            f"at risk (< k_min {self.thresholds.k_min}) = {self.records_at_risk_share:.1%}",
        ]
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly figures, with the thresholds and what was missed."""
        return {
            "records": self.records,
            "classes": self.classes,
            "quasi_identifiers": list(self.quasi_identifiers),
            "sensitive": [asdict(s) for s in self.sensitive],
            "k": self.k,
            "distinct_l": self.distinct_l,
            "entropy_l": self.entropy_l,
            "t_closeness": self.t_closeness,
            "prosecutor_risk": self.prosecutor_risk,
            "average_risk": self.average_risk,
            "journalist_risk": self.journalist_risk,
            "marketer_risk": self.marketer_risk,
            "sample_uniques": self.sample_uniques,
            "sample_uniques_share": self.sample_uniques_share,
            "records_at_risk": self.records_at_risk,
            "records_at_risk_share": self.records_at_risk_share,
            "highest_risk_records": self.highest_risk_records,
            "population": self.population,
            "class_sizes": dict(self.class_sizes),
            "thresholds": self.thresholds.as_dict(),
            "meets": self.meets(),
            "missed": [
                {"metric": m.metric, "value": m.value, "threshold": m.threshold, "limit": m.limit}
                for m in self.missed()
            ],
        }


# -- per-class figures -------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassFigures:
    """Per-equivalence-class l and t; index ``c`` is the class id from :meth:`Table.classes`."""

    records: np.ndarray  # (J,) records per class (the distributions' denominators)
    distinct_l: tuple[np.ndarray, ...]  # per sensitive attribute, (J,)
    entropy: tuple[np.ndarray, ...]  # natural-log entropy, (J,)
    t: tuple[np.ndarray, ...]  # EMD to the table's distribution, (J,)
    values: tuple[int, ...]  # distinct values of each sensitive attribute in the table


def class_figures(table: Table, cls: np.ndarray, n_classes: int) -> ClassFigures:
    """Distinct l, entropy and t of every class, for every sensitive attribute."""
    sizes = np.bincount(cls, weights=table.w, minlength=n_classes)
    n = float(sizes.sum())
    distinct, entropy, t, values = [], [], [], []
    for j in range(table.s.shape[1]):
        per_value = np.bincount(table.s[:, j], weights=table.w)
        used = per_value > 0
        rank = np.cumsum(used) - 1  # values absent from this table drop out of the domain
        s = rank[table.s[:, j]]
        m = int(used.sum())
        p = per_value[used] / n
        pair, n_pairs = group_rows([cls, s])
        pair_w = np.bincount(pair, weights=table.w, minlength=n_pairs)
        pair_cls = np.zeros(n_pairs, dtype=np.int64)
        pair_s = np.zeros(n_pairs, dtype=np.int64)
        pair_cls[pair] = cls
        pair_s[pair] = s
        q = pair_w / sizes[pair_cls]
        distinct.append(np.bincount(pair_cls, minlength=n_classes))
        entropy.append(-np.bincount(pair_cls, weights=q * np.log(q), minlength=n_classes))
        if table.ordered[j]:
            t.append(_ordered_emd(pair_cls, pair_s, q, p, n_classes))
        else:
            # ½ Σ_v |q_v − p_v| with the values absent from a class contributing p_v each
            present = np.bincount(pair_cls, weights=np.abs(q - p[pair_s]), minlength=n_classes)
            present_p = np.bincount(pair_cls, weights=p[pair_s], minlength=n_classes)
            t.append(np.clip(0.5 * (present + (1.0 - present_p)), 0.0, 1.0))
        values.append(m)
    return ClassFigures(sizes, tuple(distinct), tuple(entropy), tuple(t), tuple(values))


def _ordered_emd(
    pair_cls: np.ndarray, pair_s: np.ndarray, q: np.ndarray, p: np.ndarray, n_classes: int
) -> np.ndarray:
    """Ordered EMD per class; the only loop is over chunks of a dense class x value matrix."""
    m = len(p)
    out = np.zeros(n_classes)
    if m < 2:
        return out  # one value: every class has the table's distribution (pycanon divides by 0)
    order = np.argsort(pair_cls, kind="stable")
    pair_cls, pair_s, q = pair_cls[order], pair_s[order], q[order]
    chunk = max(1, _DENSE_CELLS // m)
    bounds = np.searchsorted(pair_cls, np.arange(0, n_classes + chunk, chunk))
    for number, start in enumerate(range(0, n_classes, chunk)):
        stop = min(start + chunk, n_classes)
        lo, hi = bounds[number], bounds[number + 1]
        dense = np.zeros((stop - start, m))
        dense[pair_cls[lo:hi] - start, pair_s[lo:hi]] = q[lo:hi]
        dense -= p
        out[start:stop] = np.abs(np.cumsum(dense, axis=1)).sum(axis=1) / (m - 1)
    return out


# -- a whole table -----------------------------------------------------------------------------


def assess_table(
    table: Table,
    quasi_identifiers: Sequence[str],
    sensitive: Sequence[str],
    thresholds: Thresholds,
    *,
    population_sizes: np.ndarray | None = None,
    population: int | None = None,
) -> RiskReport:
    """Figures of an already compressed table (used by :func:`measure` and the lattice).

    ``population_sizes`` gives F for each table row's class (a population table);
    ``population`` a population size N.
    """
    if table.records == 0:
        raise InputError("the table has no records to assess")
    cls, n_classes = table.classes()
    sizes = class_sizes(table, cls, n_classes)
    n = int(sizes.sum())
    fig = class_figures(table, cls, n_classes)
    k = int(sizes.min())
    per_sa = tuple(
        SensitiveFigures(
            name=name,
            distinct_l=int(fig.distinct_l[j].min()),
            entropy_l=float(np.exp(fig.entropy[j].min())),
            t_closeness=float(fig.t[j].max()),
            ordered=bool(table.ordered[j]),
            values=int(fig.values[j]),
        )
        for j, name in enumerate(sensitive)
    )
    prosecutor = 1.0 / k
    average = n_classes / n
    if population_sizes is not None:
        big_f = np.zeros(n_classes)
        big_f[cls] = population_sizes
        big_f = np.maximum(big_f, sizes)  # the population contains the sample
        journalist = float((1.0 / big_f).max())
        marketer = float((sizes / big_f).sum() / n)
        pop_n: int | None = int(max(population or 0, n))
    elif population is not None:
        if population < n:
            raise InputError(f"population size {population} is smaller than the {n} records")
        journalist = min(prosecutor, n / (population * k))
        marketer = n_classes / population
        pop_n = int(population)
    else:
        journalist, marketer, pop_n = prosecutor, average, None
    small = sizes < thresholds.k_min
    histogram = np.bincount(sizes[small].astype(np.int64), minlength=thresholds.k_min)
    histogram_sizes = {str(s): int(histogram[s]) for s in range(1, thresholds.k_min)}
    histogram_sizes[f"{thresholds.k_min}+"] = int((~small).sum())
    return RiskReport(
        records=n,
        classes=n_classes,
        quasi_identifiers=tuple(quasi_identifiers),
        sensitive=per_sa,
        k=k,
        prosecutor_risk=prosecutor,
        average_risk=average,
        journalist_risk=journalist,
        marketer_risk=marketer,
        sample_uniques=int((sizes == 1).sum()),
        records_at_risk=int(sizes[small].sum()),
        highest_risk_records=int(sizes[sizes == k].sum()),
        population=pop_n,
        thresholds=thresholds,
        class_sizes=histogram_sizes,
    )


def _population_sizes(
    frame: pd.DataFrame,
    population: pd.DataFrame,
    qis: Sequence[str],
    rows: np.ndarray,
    table_rows: int,
) -> np.ndarray:
    """F (records in the population with the same QI values) for each table row."""
    missing = [c for c in qis if c not in population.columns]
    if missing:
        raise InputError(f"the population table has no column {missing[0]!r}")
    n = len(frame)
    joint = [qi_codes(pd.concat([frame[c], population[c]], ignore_index=True)) for c in qis]
    group, n_groups = group_rows(joint)
    counts = np.bincount(group[n:], minlength=n_groups)
    representative = np.zeros(table_rows, dtype=np.int64)
    representative[rows] = np.arange(n)
    return counts[group[representative]]


def measure(
    frame: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    sensitive: Sequence[str] = (),
    *,
    thresholds: Thresholds | None = None,
    population: pd.DataFrame | int | None = None,
    subject: str | None = None,
) -> RiskReport:
    """Every figure of a frame; thresholds default to :class:`Thresholds` (the policy defaults).

    ``population``: a frame holding the quasi-identifiers of the whole population the table
    was drawn from (e.g. every wristband of the event), or just its size. ``subject``: the
    column naming a person, to count people rather than records.
    """
    limits = thresholds or Thresholds()
    table, rows = frame_table(frame, quasi_identifiers, sensitive, subject=subject)
    if isinstance(population, pd.DataFrame):
        sizes = _population_sizes(frame, population, quasi_identifiers, rows, len(table.w))
        return assess_table(
            table,
            quasi_identifiers,
            sensitive,
            limits,
            population_sizes=sizes,
            population=len(population),
        )
    if population is not None and (isinstance(population, bool) or population < 1):
        raise InputError(f"population size {population!r} must be a positive number")
    return assess_table(table, quasi_identifiers, sensitive, limits, population=population)


def k_anonymity(
    frame: pd.DataFrame, quasi_identifiers: Sequence[str], *, subject: str | None = None
) -> int:
    """The table's k (people with ``subject``, else records); 0 for a table without rows."""
    if frame.empty:
        return 0
    return measure(frame, quasi_identifiers, subject=subject).k
