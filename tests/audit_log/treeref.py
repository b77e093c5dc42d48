"""Reference data for the tree tests: the canonical bytes of every stored entry, in order."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from audit.log.rows import ENTRY_COLUMNS_SQL, row_canonical


def canonical_rows(conn: Connection) -> list[bytes]:
    """Every entry's canonical bytes, read back from the database (seq order)."""
    sql = f"SELECT {ENTRY_COLUMNS_SQL[conn.dialect.name]} FROM audit_log ORDER BY seq"
    return [row_canonical(row) for row in conn.exec_driver_sql(sql).fetchall()]
