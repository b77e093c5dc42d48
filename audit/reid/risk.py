"""Re-identification risk of tabular data: k, l, t and the attacker models, from one grouping.

"Anonymised" metadata is not anonymous when a few ordinary attributes single a person out
(GDPR Recital 26). This module measures how far a table is from that line::

    from audit.reid.risk import assess, assess_policy, Thresholds

    report = assess(frame, ["zone", "arrival_bucket", "age_band"], ["mean_sentiment_band"],
                    k_min=10, l_min=2, t_max=0.5, max_prosecutor_risk=0.1)
    report.k, report.distinct_l, report.entropy_l, report.t_closeness
    report.prosecutor_risk, report.journalist_risk, report.marketer_risk
    report.sample_uniques, report.records_at_risk_share
    report.meets()            # against the thresholds it was measured with
    report.missed(policy_t)   # or any others: a tuple of Miss("k", 3, 10, ...)

    report = assess_policy(frame, policy)   # QIs, sensitive attributes, thresholds from policy

Figures (definitions match pycanon; risk models as in ARX / sdcMicro, see
``shared/research/reid-pii.md``):

- ``k``: the smallest equivalence class (records sharing all quasi-identifier values).
- ``distinct_l`` / ``entropy_l``: the fewest distinct sensitive values in a class / ``exp`` of
  the lowest class entropy (pycanon truncates entropy l to an int; this keeps the float). With
  several sensitive attributes, the worst one.
- ``t_closeness``: the largest EMD between a class's sensitive distribution and the table's:
  ordered EMD for numeric columns (and ordered pandas categoricals), equal-distance otherwise.
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

Missing quasi-identifier values form a class value of their own (nobody silently drops out of
the measurement). Everything is vectorised; see :mod:`audit.reid._table`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from audit.reid._table import ClassFigures, Table, class_figures, compress, group_rows
from retention.errors import InputError

__all__ = [
    "Thresholds",
    "Miss",
    "SensitiveFigures",
    "RiskReport",
    "assess",
    "assess_policy",
    "assess_table",
    "frame_table",
    "check_columns",
]


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
    def from_policy(cls, policy: Any, **overrides: Any) -> Thresholds:
        """The ``[reid]`` thresholds of a policy; keyword overrides that are not None win."""
        reid = policy.reid
        values = {
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


# -- building the compressed table -----------------------------------------------------------


def check_columns(
    frame: pd.DataFrame, quasi_identifiers: Sequence[str], sensitive: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Validate the column choice; one clear :class:`InputError` naming what is wrong."""
    qis, sas = list(quasi_identifiers), list(sensitive)
    if not qis:
        raise InputError("no quasi-identifiers given; name the columns an attacker could know")
    for kind, names in (("quasi-identifier", qis), ("sensitive attribute", sas)):
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise InputError(f"{kind} {name!r} is listed twice")
            seen.add(name)
            if name not in frame.columns:
                available = ", ".join(map(str, frame.columns)) or "none"
                raise InputError(
                    f"{kind} column {name!r} is not in the table; columns: {available}"
                )
    both = sorted(set(qis) & set(sas))
    if both:
        raise InputError(f"column {both[0]!r} is both a quasi-identifier and sensitive; pick one")
    return qis, sas


def qi_codes(series: pd.Series) -> np.ndarray:
    """Integer codes of a quasi-identifier; missing values get a code of their own."""
    codes, _ = pd.factorize(series, use_na_sentinel=False)
    return codes.astype(np.int64, copy=False)


def sa_codes(series: pd.Series) -> tuple[np.ndarray, bool]:
    """Codes of a sensitive attribute and whether they are ordered (rank = value order)."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) and dtype.ordered:
        codes = series.cat.codes.to_numpy(dtype=np.int64).copy()
        codes[codes < 0] = len(dtype.categories)
        return codes, True
    if pd.api.types.is_numeric_dtype(dtype):
        values = series.to_numpy(dtype=float, na_value=np.nan)
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        rank = np.empty(len(uniques), dtype=np.int64)
        rank[np.argsort(uniques, kind="stable")] = np.arange(len(uniques))
        return rank[codes], True
    return qi_codes(series), False


def frame_table(
    frame: pd.DataFrame, quasi_identifiers: Sequence[str], sensitive: Sequence[str]
) -> tuple[Table, np.ndarray]:
    """The compressed table of a frame and each row's table row."""
    qis, sas = check_columns(frame, quasi_identifiers, sensitive)
    coded = [sa_codes(frame[c]) for c in sas]
    return compress(
        [qi_codes(frame[c]) for c in qis],
        [c for c, _ in coded],
        [o for _, o in coded],
    )


# -- figures ---------------------------------------------------------------------------------


def assess_table(
    table: Table,
    quasi_identifiers: Sequence[str],
    sensitive: Sequence[str],
    thresholds: Thresholds,
    *,
    population_sizes: np.ndarray | None = None,
    population: int | None = None,
    figures: tuple[np.ndarray, int, ClassFigures] | None = None,
) -> RiskReport:
    """Figures of an already compressed table (used by :func:`assess` and the lattice).

    ``population_sizes`` gives F for each table row's class (a population table);
    ``population`` a population size N. ``figures`` reuses a grouping already computed.
    """
    n = table.records
    if n == 0:
        raise InputError("the table has no records to assess")
    if figures is None:
        cls, n_classes = group_rows([table.q[:, i] for i in range(table.q.shape[1])], len(table.w))
        fig = class_figures(table, cls, n_classes)
    else:
        cls, n_classes, fig = figures
    sizes = fig.sizes
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
    class_sizes = {str(s): int(histogram[s]) for s in range(1, thresholds.k_min)}
    class_sizes[f"{thresholds.k_min}+"] = int((~small).sum())
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
        class_sizes=class_sizes,
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

    ``population``: a frame holding the quasi-identifiers of the whole population the table
    was drawn from (e.g. every wristband of the event), or just its size.
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
    table, rows = frame_table(frame, quasi_identifiers, sensitive)
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


def assess_policy(
    frame: pd.DataFrame,
    policy: Any,
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
    return assess(
        frame,
        qis,
        list(sensitive),
        thresholds=Thresholds.from_policy(policy, **overrides),
        population=population,
    )
