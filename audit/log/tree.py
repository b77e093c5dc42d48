"""The audit log as an RFC 9162 Merkle tree, stored so that any proof costs O(log n) reads.

Leaf ``i`` (0-based) is entry ``seq = i + 1``; its data is the entry's canonical bytes
(:func:`audit.log.chain.canonical_entry`), so an auditor re-derives the leaf from the entry
alone. ``audit_tree_nodes`` keeps the hash of every complete subtree of ``2^4 = 16`` leaves or
more — about one row per eight entries, written in the same batched insert as the entries —
and anything lower is recomputed from at most 16 entries when a proof needs it. A proof then
reads one indexed query for its stored nodes and one range of at most 16 entries per block
it touches (two at most for an inclusion proof).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy.engine import Connection

from audit.log.merkle import (
    EMPTY_ROOT,
    Frontier,
    MemoryTree,
    Subtree,
    consistency_plan,
    fold,
    inclusion_plan,
    leaf_hash,
    range_subtrees,
)
from audit.log.rows import ENTRY_COLUMNS_SQL, RANGE_SQL, row_canonical
from retention.errors import IntegrityError, StoreError

__all__ = [
    "STORED_LEVEL",
    "BLOCK",
    "NODE_INSERT_SQL",
    "StoredTree",
    "load_frontier",
    "rebuild_nodes",
]

STORED_LEVEL = 4
BLOCK = 1 << STORED_LEVEL
NODE_INSERT_SQL = {
    "sqlite": "INSERT INTO audit_tree_nodes (level, idx, hash) VALUES (?, ?, ?)",
    "postgresql": "INSERT INTO audit_tree_nodes (level, idx, hash) VALUES (%s, %s, %s)",
}
_P = {"sqlite": "?", "postgresql": "%s"}


def _dialect(connection: Connection) -> str:
    name = connection.dialect.name
    if name not in _P:
        raise StoreError(f"the audit log supports SQLite and PostgreSQL, not {name}")
    return name


class StoredTree:
    """The tree of the first ``size`` entries, answered from ``audit_tree_nodes`` and entries.

    ``subtree(level, index)`` is the getter :mod:`audit.log.merkle` generates proofs from;
    :meth:`prefetch` fetches everything a plan names in a couple of queries first.
    """

    def __init__(self, connection: Connection, size: int) -> None:
        self.connection = connection
        self.dialect = _dialect(connection)
        self.size = size
        self._known: dict[Subtree, bytes] = {}
        self._leaves: dict[int, bytes] = {}  # leaf index -> canonical bytes, for blocks read

    # -- reads -----------------------------------------------------------------------------
    def prefetch(self, subtrees: Iterable[Subtree]) -> None:
        wanted = {s for s in subtrees if s not in self._known}
        stored = [s for s in wanted if s[0] >= STORED_LEVEL]
        low = wanted.difference(stored)
        if stored:
            self._fetch_nodes(stored)
        blocks = {(index << level) >> STORED_LEVEL for level, index in low}
        for block in sorted(blocks):
            self._fetch_block(block)

    def _fetch_nodes(self, stored: list[Subtree]) -> None:
        p = _P[self.dialect]
        where = " OR ".join([f"(level = {p} AND idx = {p})"] * len(stored))
        params = tuple(v for s in stored for v in s)
        rows = self.connection.exec_driver_sql(
            f"SELECT level, idx, hash FROM audit_tree_nodes WHERE {where}", params
        ).fetchall()
        for level, index, digest in rows:
            self._known[(int(level), int(index))] = bytes(digest)
        missing = [s for s in stored if s not in self._known]
        if missing:
            level, index = missing[0]
            raise IntegrityError(
                f"the audit tree has no stored node at level {level}, index {index}; "
                "run `flowaudit audit verify` (the node table may have been cut)"
            )

    def _fetch_block(self, block: int) -> None:
        first = block * BLOCK
        last = min(first + BLOCK, self.size)
        sql = RANGE_SQL[self.dialect]
        rows = self.connection.exec_driver_sql(sql, (first + 1, last)).fetchall()
        if [r[0] for r in rows] != list(range(first + 1, last + 1)):
            raise IntegrityError(
                f"audit entries {first + 1}..{last} are not all present; "
                "run `flowaudit audit verify`"
            )
        tree = MemoryTree()
        for row in rows:
            data = row_canonical(row)
            self._leaves[int(row[0]) - 1] = data
            tree.append(data)
        for level in range(STORED_LEVEL):
            base = first >> level
            for offset, digest in enumerate(tree.levels[level] if level < len(tree.levels) else []):
                self._known[(level, base + offset)] = digest

    def subtree(self, level: int, index: int) -> bytes:
        key = (level, index)
        if key not in self._known:
            self.prefetch([key])
        return self._known[key]

    def leaf_data(self, index: int) -> bytes:
        """The canonical bytes of leaf ``index`` (entry ``index + 1``)."""
        if index not in self._leaves:
            self._fetch_block(index >> STORED_LEVEL)
        return self._leaves[index]

    # -- answers ---------------------------------------------------------------------------
    def root(self) -> bytes:
        if self.size == 0:
            return EMPTY_ROOT
        parts = range_subtrees(0, self.size)
        self.prefetch(parts)
        return fold([self._known[s] for s in parts])

    def inclusion(self, index: int) -> list[bytes]:
        plan = inclusion_plan(index, self.size)
        self.prefetch(s for item in plan for s in item)
        return [fold([self._known[s] for s in item]) for item in plan]

    def consistency(self, old: int) -> list[bytes]:
        plan = consistency_plan(old, self.size)
        self.prefetch(s for item in plan for s in item)
        return [fold([self._known[s] for s in item]) for item in plan]


def load_frontier(connection: Connection, size: int) -> Frontier:
    """The right edge of the tree of the first ``size`` entries (O(log n) reads)."""
    if size == 0:
        return Frontier()
    tree = StoredTree(connection, size)
    parts = range_subtrees(0, size)
    tree.prefetch(parts)
    return Frontier(size, [tree.subtree(level, index) for level, index in parts])


def _entry_rows(connection: Connection, batch: int) -> Iterator[tuple[Any, ...]]:
    sql = f"SELECT {ENTRY_COLUMNS_SQL[_dialect(connection)]} FROM audit_log ORDER BY seq"
    result = connection.exec_driver_sql(sql).yield_per(batch)
    try:
        yield from result
    finally:
        result.close()


def rebuild_nodes(connection: Connection, batch: int = 5000) -> int:
    """Recompute ``audit_tree_nodes`` from every entry (the migration of an existing chain).

    Entries must be numbered 1..n without gaps: a log that fails that is refused, since its
    tree could only vouch for a damaged log. Returns the number of leaves.
    """
    dialect = _dialect(connection)
    connection.exec_driver_sql("DELETE FROM audit_tree_nodes")
    frontier = Frontier()
    pending: list[tuple[int, int, bytes]] = []
    insert = NODE_INSERT_SQL[dialect]
    for row in _entry_rows(connection, batch):
        seq = int(row[0])
        if seq != frontier.size + 1:
            raise IntegrityError(
                f"audit entry {frontier.size + 1} is missing (found {seq}); the tree cannot be "
                "built over a damaged log — run `flowaudit audit verify`"
            )
        for node in frontier.append(leaf_hash(row_canonical(row))):
            if node[0] >= STORED_LEVEL:
                pending.append(node)
        if len(pending) >= batch:
            connection.exec_driver_sql(insert, pending)
            pending = []
    if pending:
        connection.exec_driver_sql(insert, pending)
    return frontier.size
