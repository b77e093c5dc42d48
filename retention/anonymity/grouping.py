"""Equivalence classes, computed once: microdata compressed to distinct code rows with counts.

Records are first *compressed*: one row per distinct combination of quasi-identifier codes,
sensitive-attribute codes (and, when people are counted rather than records, the person's
code), with the number of records that share it. Every figure — class sizes, distinct and
entropy l, t-closeness — is then a handful of ``bincount`` calls over that table
(:mod:`retention.anonymity.risk`), and a coarser generalisation is computed from a finer table
rather than from the raw records (:func:`rollup`, used by the lattice search). No Python loop
runs per equivalence class.

Grouping packs the code columns into one int64 key (mixed radix) and hashes it with
``pd.factorize`` — O(n), no sort, and no ``groupby`` per metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = [
    "Table",
    "group_rows",
    "compress",
    "rollup",
    "class_sizes",
    "units",
    "qi_codes",
    "sa_codes",
    "check_columns",
    "frame_table",
]

_KEY_LIMIT = 2**62


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
    """Compressed microdata: distinct (key codes, SA codes[, person]) rows and record counts.

    ``q`` holds the quasi-identifier codes, then any fixed grouping keys (never generalised);
    ``subject`` is None when every record is a person of its own, else each row's person code.
    """

    q: np.ndarray  # (m, n_keys) int64
    s: np.ndarray  # (m, n_sa) int64; rank order for ordered attributes
    w: np.ndarray  # (m,) int64 records
    ordered: tuple[bool, ...]
    subject: np.ndarray | None = None  # (m,) int64 person codes

    @property
    def records(self) -> int:
        return int(self.w.sum())

    def take(self, rows: np.ndarray) -> Table:
        """The table restricted to some rows (a boolean mask or indices)."""
        subject = None if self.subject is None else self.subject[rows]
        return Table(self.q[rows], self.s[rows], self.w[rows], self.ordered, subject)

    def classes(self) -> tuple[np.ndarray, int]:
        """Equivalence class id of every row (all key columns), and the number of classes."""
        return group_rows([self.q[:, i] for i in range(self.q.shape[1])], len(self.w))


def compress(
    q_cols: Sequence[np.ndarray],
    s_cols: Sequence[np.ndarray],
    ordered: Sequence[bool],
    weights: np.ndarray | None = None,
    subject: np.ndarray | None = None,
) -> tuple[Table, np.ndarray]:
    """Group records by all their codes; returns the table and each record's table row."""
    columns = [*q_cols, *s_cols] + ([] if subject is None else [subject])
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
    person = None if subject is None else subject[representative].astype(np.int64)
    table = Table(q.astype(np.int64), s.astype(np.int64), w, tuple(ordered), person)
    return table, ids


def rollup(table: Table, column: int, mapping: np.ndarray) -> Table:
    """Recode one key column through ``mapping`` (finer code -> coarser code) and re-compress."""
    q = table.q.copy()
    q[:, column] = mapping[q[:, column]]
    out, _ = compress(
        [q[:, i] for i in range(q.shape[1])],
        [table.s[:, j] for j in range(table.s.shape[1])],
        table.ordered,
        weights=table.w,
        subject=table.subject,
    )
    return out


def class_sizes(table: Table, cls: np.ndarray, n_classes: int) -> np.ndarray:
    """Size of every class: its records, or its distinct persons when the table counts people.

    A person with several records in one class counts once — k is about people, not rows.
    """
    if table.subject is None:
        return np.bincount(cls, weights=table.w, minlength=n_classes).astype(np.int64)
    pair, n_pairs = group_rows([cls, table.subject])
    pair_cls = np.zeros(n_pairs, dtype=np.int64)
    pair_cls[pair] = cls
    return np.bincount(pair_cls, minlength=n_classes).astype(np.int64)


def units(table: Table, rows: np.ndarray | None = None) -> int:
    """Records (or distinct persons) in some rows of the table (all rows by default)."""
    if rows is None:
        rows = np.ones(len(table.w), dtype=bool)
    if table.subject is None:
        return int(table.w[rows].sum())
    return int(np.unique(table.subject[rows]).size)


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


def check_columns(
    frame: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    sensitive: Sequence[str],
    others: Sequence[str] = (),
) -> tuple[list[str], list[str]]:
    """Validate the column choice; one clear :class:`InputError` naming what is wrong.

    ``others`` are further columns the caller groups or counts by (a person, a record kind).
    """
    qis, sas = list(quasi_identifiers), list(sensitive)
    if not qis:
        raise InputError("no quasi-identifiers given; name the columns an attacker could know")
    for kind, names in (("quasi-identifier", qis), ("sensitive attribute", sas), ("", others)):
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise InputError(f"{kind or 'column'} {name!r} is listed twice")
            seen.add(name)
            if name not in frame.columns:
                available = ", ".join(map(str, frame.columns)) or "none"
                raise InputError(
                    f"{kind + ' ' if kind else ''}column {name!r} is not in the table; "
                    f"columns: {available}"
                )
    both = sorted(set(qis) & set(sas))
    if both:
        raise InputError(f"column {both[0]!r} is both a quasi-identifier and sensitive; pick one")
    clash = sorted((set(qis) | set(sas)) & set(others))
    if clash:
        raise InputError(f"column {clash[0]!r} cannot be grouped by and measured at once")
    return qis, sas


def frame_table(
    frame: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    sensitive: Sequence[str],
    *,
    subject: str | None = None,
) -> tuple[Table, np.ndarray]:
    """The compressed table of a frame and each row's table row.

    ``subject`` names the column identifying a person, when people rather than records are
    counted (a wristband with many records).
    """
    others = [] if subject is None else [subject]
    qis, sas = check_columns(frame, quasi_identifiers, sensitive, others)
    coded = [sa_codes(frame[c]) for c in sas]
    return compress(
        [qi_codes(frame[c]) for c in qis],
        [c for c, _ in coded],
        [o for _, o in coded],
        subject=None if subject is None else qi_codes(frame[subject]),
    )
