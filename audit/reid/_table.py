"""The vectorised core of re-identification measurement (private to :mod:`audit.reid.risk`).

Microdata are first *compressed*: one row per distinct combination of quasi-identifier and
sensitive-attribute codes, with the number of records that share it. Every figure — class
sizes, distinct and entropy l, t-closeness — is then a handful of ``bincount`` calls over that
table, and a coarser generalisation is computed from a finer table rather than from the raw
records (the lattice search rolls up this way). No Python loop runs per equivalence class; the
only loop is over chunks of classes when the ordered EMD needs a dense class × value matrix.

Definitions follow pycanon (IFCA-Advanced-Computing/pycanon, ``anonymity/utils``):
entropy ``H = -Σ p·log p`` per class; categorical t = equal-distance EMD ``½·Σ|q − p|``;
numerical t = ordered EMD ``1/(m−1)·Σ_i |Σ_{j≤i} (q_j − p_j)|`` over the m distinct values in
sorted order, where ``p`` is the distribution over the whole table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Table", "ClassFigures", "group_rows", "compress", "rollup", "class_figures"]

_KEY_LIMIT = 2**62
_DENSE_CELLS = 4_000_000  # cells of one chunk of the class x value matrix (ordered EMD)


def _dense(key: np.ndarray) -> tuple[np.ndarray, int]:
    codes, uniques = pd.factorize(key, sort=False)
    return codes.astype(np.int64, copy=False), len(uniques)


def group_rows(columns: Sequence[np.ndarray], n: int | None = None) -> tuple[np.ndarray, int]:
    """Dense group id per row for the combination of non-negative integer code columns.

    Codes are packed into one int64 key (mixed radix, re-densified before it could overflow)
    and hashed once — O(n), no sort.
    """
    rows = len(columns[0]) if columns else (n or 0)
    if not columns:
        return np.zeros(rows, dtype=np.int64), (1 if rows else 0)
    if rows == 0:
        return np.zeros(0, dtype=np.int64), 0
    key = np.zeros(rows, dtype=np.int64)
    span = 1
    for column in columns:
        card = int(column.max()) + 1
        if span * card >= _KEY_LIMIT:
            key, span = _dense(key)
        key = key * card + column
        span *= card
    return _dense(key)


@dataclass(frozen=True)
class Table:
    """Compressed microdata: distinct (QI codes, SA codes) rows and their record counts."""

    q: np.ndarray  # (m, n_qi) int64
    s: np.ndarray  # (m, n_sa) int64; rank order for ordered attributes
    w: np.ndarray  # (m,) int64
    ordered: tuple[bool, ...]

    @property
    def records(self) -> int:
        return int(self.w.sum())

    def take(self, rows: np.ndarray) -> Table:
        """The table restricted to some rows (a boolean mask or indices)."""
        return Table(self.q[rows], self.s[rows], self.w[rows], self.ordered)


def compress(
    q_cols: Sequence[np.ndarray],
    s_cols: Sequence[np.ndarray],
    ordered: Sequence[bool],
    weights: np.ndarray | None = None,
) -> tuple[Table, np.ndarray]:
    """Group records by all their codes; returns the table and each record's table row."""
    columns = [*q_cols, *s_cols]
    n = len(columns[0]) if columns else (0 if weights is None else len(weights))
    ids, m = group_rows(columns, n)
    representative = np.zeros(m, dtype=np.int64)
    representative[ids] = np.arange(n, dtype=np.int64)  # any member will do: codes are equal
    if weights is None:
        w = np.bincount(ids, minlength=m).astype(np.int64)
    else:
        w = np.bincount(ids, weights=weights, minlength=m).astype(np.int64)
    q = np.column_stack([c[representative] for c in q_cols]) if q_cols else np.zeros((m, 0))
    s = np.column_stack([c[representative] for c in s_cols]) if s_cols else np.zeros((m, 0))
    return Table(q.astype(np.int64), s.astype(np.int64), w, tuple(ordered)), ids


def rollup(table: Table, column: int, mapping: np.ndarray) -> Table:
    """Recode one QI column through ``mapping`` (finer code -> coarser code) and re-compress."""
    q = table.q.copy()
    q[:, column] = mapping[q[:, column]]
    out, _ = compress(
        [q[:, i] for i in range(q.shape[1])],
        [table.s[:, j] for j in range(table.s.shape[1])],
        table.ordered,
        weights=table.w,
    )
    return out


@dataclass(frozen=True)
class ClassFigures:
    """Per-equivalence-class figures; index ``c`` is the class id from :func:`group_rows`."""

    sizes: np.ndarray  # (J,) records per class
    distinct_l: tuple[np.ndarray, ...]  # per sensitive attribute, (J,)
    entropy: tuple[np.ndarray, ...]  # natural-log entropy, (J,)
    t: tuple[np.ndarray, ...]  # EMD to the table's distribution, (J,)
    values: tuple[int, ...]  # distinct values of each sensitive attribute in the table


def class_figures(table: Table, cls: np.ndarray, n_classes: int) -> ClassFigures:
    """Sizes, distinct l, entropy and t of every class, for every sensitive attribute."""
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
