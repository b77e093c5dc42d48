"""The least generalisation that meets the thresholds: a best-first walk of the hierarchy lattice.

A *node* is one level per quasi-identifier, from a floor (``(0, 0, …)``, the data as stored,
unless the caller sets minimum levels) to every attribute suppressed.

**The cost of a node** is its information loss, the normalised level sum
``mean(level_i / height_i)`` — 0 = untouched, 1 = every attribute suppressed. It is one minus
Sweeney's precision metric (L. Sweeney, "Achieving k-anonymity privacy protection using
generalization and suppression", 2002), and it is the one cost function flowaudit uses, for
the export gate, ``flowaudit reid --suggest`` and the anonymiser alike. It was chosen over
the plain step count (``Σ level_i``) because it measures what a step takes away: each
attribute's loss is the share of its own hierarchy climbed, so suppressing a one-level
attribute (ticket type → ``*``) costs a whole attribute, whereas the step count charged it the
same as one notch of a four-level time ladder (15 minutes → 1 hour) and so gave whole
attributes away to save fine-grained steps. It also does not depend on how finely a policy
writes a ladder: adding an intermediate level to a hierarchy leaves the cost of reaching
``*`` at 1, where a step count would make that attribute dearer to coarsen. It grows strictly
with any level, which the search below needs.

Because the loss only grows when any level grows, walking the lattice best-first from the
floor (a heap ordered by loss) meets every node after all of its predecessors — so the first
node that meets the thresholds is the least generalisation, and the walk stops there (after
the nodes tied with it: fewest suppressed, then largest k, then the lowest levels win).
Nothing above a passing node is evaluated.

Evaluating a node is cheap because the grouping is reused: the records are compressed once into
a table of distinct code rows with counts, and a node's table is rolled up from an already
evaluated predecessor's (one QI recoded through a small code map, then re-compressed), so
tables shrink as the walk climbs. Each node first checks k — the share of records in classes
below ``min_class_size`` never grows with generalisation (monotone), and it is the cheapest
test — and only then l and t.

Within a node, whole classes that fail k / distinct l / prosecutor risk / t are suppressed if
that removes at most ``max_suppression`` of the records (of the persons, with ``subject``); the
rest is then measured again as a whole (t against the kept distribution) and must meet every
threshold. ``within`` names columns every class is also split by and that are never
generalised (the anonymiser keeps each record kind apart).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from .grouping import Table, check_columns, class_sizes, compress, qi_codes, rollup, sa_codes, units
from .hierarchies import Hierarchy, hierarchy_for
from .risk import RiskReport, Thresholds, assess_table, class_figures

__all__ = ["Generalisation", "SearchResult", "Lattice", "find_generalisation"]

_CACHE_FACTOR = 4  # cached node tables may hold this many times the base table's rows


@dataclass(frozen=True)
class Generalisation:
    """A node that meets the thresholds, with what it costs."""

    levels: Mapping[str, int]
    labels: Mapping[str, str]
    records: int  # before suppression (persons, with ``subject``)
    suppressed: int
    loss: float  # normalised level sum, 0..1
    precision: float  # Sweeney's Prec, suppressed records counted as fully generalised
    report: RiskReport  # of the generalised data after suppression

    @property
    def suppressed_share(self) -> float:
        return self.suppressed / self.records if self.records else 0.0

    def describe(self) -> str:
        changed = [f"{c}={self.labels[c]}" for c, lv in self.levels.items() if lv]
        return ", ".join(changed) or "no recoding"

    def as_dict(self) -> dict[str, Any]:
        return {
            "levels": dict(self.levels),
            "labels": dict(self.labels),
            "records": self.records,
            "suppressed": self.suppressed,
            "suppressed_share": self.suppressed_share,
            "information_loss": self.loss,
            "precision": self.precision,
        }


@dataclass(frozen=True)
class SearchResult:
    """The outcome of a search: the best node, or None with the top node's figures."""

    best: Generalisation | None
    nodes_total: int
    nodes_evaluated: int
    top: RiskReport | None  # figures at the most general node, when nothing passed

    def as_dict(self) -> dict[str, Any]:
        return {
            "found": self.best is not None,
            "generalisation": None if self.best is None else self.best.as_dict(),
            "nodes_total": self.nodes_total,
            "nodes_evaluated": self.nodes_evaluated,
        }


@dataclass
class _Node:
    passes: bool
    suppressed: int
    report: RiskReport | None


class Lattice:
    """One table, its hierarchies and thresholds; evaluate nodes and search for the best.

    ``floor`` gives minimum levels (a value the caller never keeps as stored); ``subject``
    names the column identifying a person, so that classes and the suppression budget count
    people; ``within`` names fixed grouping columns (see the module docstring).
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        quasi_identifiers: Sequence[str],
        sensitive: Sequence[str],
        hierarchies: Mapping[str, Hierarchy],
        thresholds: Thresholds,
        *,
        floor: Mapping[str, int] | None = None,
        subject: str | None = None,
        within: Sequence[str] = (),
    ) -> None:
        others = [*within] + ([] if subject is None else [subject])
        self.qis, self.sas = check_columns(frame, quasi_identifiers, sensitive, others)
        self.frame = frame
        self.thresholds = thresholds
        self.hierarchies = [hierarchy_for(hierarchies, c) for c in self.qis]
        self.heights = tuple(h.height for h in self.hierarchies)
        self.floor = tuple(int((floor or {}).get(c, 0)) for c in self.qis)
        for column, low, height in zip(self.qis, self.floor, self.heights, strict=True):
            if not 0 <= low <= height:
                raise InputError(f"floor {low} of {column!r} is outside its levels 0..{height}")
        # per QI: each row's code of its distinct value, and those values and codes per level
        self._rows: list[np.ndarray] = []
        self._values: list[list[np.ndarray]] = []
        self._codes: list[list[np.ndarray]] = []
        for column, hierarchy in zip(self.qis, self.hierarchies, strict=True):
            codes, uniques = pd.factorize(frame[column], use_na_sentinel=False)
            ladder = hierarchy.ladder(np.asarray(uniques, dtype=object))
            self._values.append(ladder)
            self._codes.append(
                [pd.factorize(v, use_na_sentinel=False)[0].astype(np.int64) for v in ladder]
            )
            self._rows.append(codes.astype(np.int64))
        self._within = [qi_codes(frame[c]) for c in within]
        coded = [sa_codes(frame[c]) for c in self.sas]
        self._sa = [c for c, _ in coded]
        self._ordered = [o for _, o in coded]
        self._subject = None if subject is None else qi_codes(frame[subject])
        self.base, _ = self._compress([0] * len(self.qis))
        self.records = self.base.records
        if self.records == 0:
            raise InputError("the table has no records to generalise")
        self.units = units(self.base)  # records, or persons with ``subject``
        self.budget = int(np.floor(thresholds.max_suppression * self.units + 1e-9))
        self._cache: OrderedDict[tuple[int, ...], Table] = OrderedDict()
        self._cached_rows = 0
        self.evaluated = 0

    def _compress(self, levels: Sequence[int]) -> tuple[Table, np.ndarray]:
        """Every row's codes at ``levels``, compressed (and each row's table row)."""
        q = [self._codes[i][lv][self._rows[i]] for i, lv in enumerate(levels)]
        return compress([*q, *self._within], self._sa, self._ordered, subject=self._subject)

    # -- node tables -------------------------------------------------------------------------
    def _chain(self, column: int, level: int) -> np.ndarray:
        """Code map from ``level`` to ``level + 1`` of one QI."""
        finer, coarser = self._codes[column][level], self._codes[column][level + 1]
        out = np.zeros(int(finer.max()) + 1, dtype=np.int64)
        out[finer] = coarser
        return out

    def table(self, levels: tuple[int, ...]) -> Table:
        """The compressed table at a node, rolled up from the smallest cached predecessor."""
        if not any(levels):
            return self.base
        cached = self._cache.get(levels)
        if cached is not None:
            return cached
        parents = []
        for i, level in enumerate(levels):
            if level:
                parent = levels[:i] + (level - 1,) + levels[i + 1 :]
                if parent in self._cache or not any(parent):
                    parents.append((len(self.table(parent).w), i, parent))
        if parents:
            _, column, parent = min(parents)
            out = rollup(self.table(parent), column, self._chain(column, levels[column] - 1))
        else:  # nothing cached below: recode the base table straight to this node
            q = self.base.q.copy()
            for i, level in enumerate(levels):
                q[:, i] = self._codes[i][level][q[:, i]]
            out, _ = compress(
                [q[:, i] for i in range(q.shape[1])],
                [self.base.s[:, j] for j in range(self.base.s.shape[1])],
                self.base.ordered,
                weights=self.base.w,
                subject=self.base.subject,
            )
        self._remember(levels, out)
        return out

    def _remember(self, levels: tuple[int, ...], table: Table) -> None:
        self._cache[levels] = table
        self._cached_rows += len(table.w)
        limit = _CACHE_FACTOR * max(len(self.base.w), 1)
        while self._cached_rows > limit and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached_rows -= len(old.w)

    # -- evaluation --------------------------------------------------------------------------
    def failing_classes(self, table: Table) -> tuple[np.ndarray, np.ndarray, bool]:
        """``(class id per table row, failing-class mask, within budget)`` at one node."""
        limits = self.thresholds
        cls, n_classes = table.classes()
        sizes = class_sizes(table, cls, n_classes)
        fail = sizes < limits.min_class_size
        if units(table, fail[cls]) > self.budget:  # monotone: cheapest test first
            return cls, fail, False
        if table.s.shape[1]:
            fig = class_figures(table, cls, n_classes)
            for j in range(table.s.shape[1]):
                fail |= fig.distinct_l[j] < limits.l_min
                fail |= fig.t[j] > limits.t_max + 1e-12
        return cls, fail, units(table, fail[cls]) <= self.budget

    def evaluate(self, levels: Sequence[int]) -> _Node:
        """Suppress failing classes (within budget) and measure what remains."""
        self.evaluated += 1
        table = self.table(tuple(levels))
        cls, fail, within = self.failing_classes(table)
        kept = ~fail[cls]
        suppressed = units(table, ~kept)
        if not within or not kept.any():
            return _Node(False, suppressed, None)
        report = assess_table(table.take(kept), self.qis, self.sas, self.thresholds)
        return _Node(report.meets(), suppressed, report)

    def loss(self, levels: Sequence[int]) -> float:
        """Information loss of a node: the normalised level sum (see the module docstring)."""
        return float(np.mean([lv / h for lv, h in zip(levels, self.heights, strict=True)]))

    def labels(self, levels: Sequence[int]) -> dict[str, str]:
        """How each QI's level is written in reports (``as stored``, ``1h``, ``*`` …)."""
        return {c: h.label(lv) for c, h, lv in zip(self.qis, self.hierarchies, levels, strict=True)}

    def _generalisation(self, levels: tuple[int, ...], node: _Node) -> Generalisation:
        assert node.report is not None
        loss = self.loss(levels)
        share = node.suppressed / self.units
        return Generalisation(
            levels=dict(zip(self.qis, levels, strict=True)),
            labels=self.labels(levels),
            records=self.units,
            suppressed=node.suppressed,
            loss=loss,
            precision=1.0 - ((1.0 - share) * loss + share),
            report=node.report,
        )

    def search(self) -> SearchResult:
        """Best-first from the floor; stops after the first passing loss value."""
        total = int(np.prod([h - low + 1 for h, low in zip(self.heights, self.floor, strict=True)]))
        start = self.floor
        heap: list[tuple[float, tuple[int, ...]]] = [(self.loss(start), start)]
        seen = {start}
        found: list[tuple[int, float, tuple[int, ...], _Node]] = []
        best_loss: float | None = None
        while heap:
            loss, levels = heapq.heappop(heap)
            if best_loss is not None and loss > best_loss + 1e-12:
                break
            if any(all(a >= b for a, b in zip(levels, f[2], strict=True)) for f in found):
                continue  # above a passing node: more loss for nothing
            node = self.evaluate(levels)
            if node.passes:
                found.append((node.suppressed, -node.report.k if node.report else 0, levels, node))
                best_loss = loss
                continue
            for i, height in enumerate(self.heights):
                if levels[i] < height:
                    up = levels[:i] + (levels[i] + 1,) + levels[i + 1 :]
                    if up not in seen:
                        seen.add(up)
                        heapq.heappush(heap, (self.loss(up), up))
        if found:
            _, _, levels, node = min(found)
            best = self._generalisation(levels, node)
            return SearchResult(best, total, self.evaluated, None)
        top = tuple(self.heights)
        top_report = assess_table(self.table(top), self.qis, self.sas, self.thresholds)
        return SearchResult(None, total, self.evaluated, top_report)

    # -- output ------------------------------------------------------------------------------
    def apply(self, levels: Mapping[str, int]) -> tuple[pd.DataFrame, np.ndarray]:
        """The frame with each QI recoded to ``levels``, and which rows fall in failing classes.

        Every row is returned; the caller drops (suppresses) the masked ones. A QI at level 0
        keeps its column as stored.
        """
        node = [int(levels.get(c, 0)) for c in self.qis]
        out = self.frame.copy()
        for i, (column, level) in enumerate(zip(self.qis, node, strict=True)):
            if level:
                recoded = self._values[i][level][self._rows[i]]
                out[column] = pd.Series(recoded, index=self.frame.index, dtype=object)
        table, rows = self._compress(node)
        cls, fail, _ = self.failing_classes(table)
        return out, fail[cls][rows]


def find_generalisation(
    frame: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    sensitive: Sequence[str],
    hierarchies: Mapping[str, Hierarchy],
    thresholds: Thresholds,
) -> tuple[SearchResult, pd.DataFrame | None]:
    """Search, then apply the best node: ``(result, generalised frame or None)``."""
    lattice = Lattice(frame, quasi_identifiers, sensitive, hierarchies, thresholds)
    result = lattice.search()
    if result.best is None:
        return result, None
    out, suppressed = lattice.apply(result.best.levels)
    return result, out.loc[~suppressed].reset_index(drop=True)
