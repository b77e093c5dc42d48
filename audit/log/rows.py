"""Canonical entry bytes from raw ``audit_log`` rows, without parsing the stored details.

The verifier, the tree builder and the prover all read rows straight from the driver (the
details as the stored text, the time as UTC text) and rebuild the bytes
:func:`audit.log.chain.canonical_entry` produced when the entry was written; this module is
the one place that knows how.
"""

from __future__ import annotations

from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _esc
from typing import Any

__all__ = ["ENTRY_TEMPLATE", "ENTRY_COLUMNS_SQL", "RANGE_SQL", "stored_iso", "row_canonical"]

# the canonical entry (see audit.log.chain): sorted keys, no spaces, details as stored text
ENTRY_TEMPLATE = (
    '{"action":%s,"actor":%s,"at":%s,"details":%s,"object_id":%s,"object_type":%s,"seq":%d}'
)
_TEMPLATE = ENTRY_TEMPLATE

# seq, at (as UTC text), actor, action, object_type, object_id, details text, prev_hash, hash
ENTRY_COLUMNS_SQL = {
    "sqlite": "seq, at, actor, action, object_type, object_id, details, prev_hash, hash",
    "postgresql": (
        "seq, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), actor, "
        "action, object_type, object_id, details::text, prev_hash, hash"
    ),
}
_PARAM = {"sqlite": "?", "postgresql": "%s"}
RANGE_SQL = {
    dialect: (
        f"SELECT {columns} FROM audit_log WHERE seq >= {_PARAM[dialect]} "
        f"AND seq <= {_PARAM[dialect]} ORDER BY seq"
    )
    for dialect, columns in ENTRY_COLUMNS_SQL.items()
}


def stored_iso(raw: Any) -> str:
    """The chain's ISO time from the value the database returns for ``at``.

    Raises ``ValueError`` for anything that is not a time: the caller names the entry.
    """
    if isinstance(raw, str):
        if len(raw) == 26 and raw[10] == " " and raw[19] == ".":
            frac = raw[20:]
            tail = "+00:00" if frac == "000000" else "." + frac + "+00:00"
            return raw[:10] + "T" + raw[11:19] + tail
        raw = datetime.fromisoformat(raw)
    if isinstance(raw, datetime):
        value = raw if raw.tzinfo is not None else raw.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    raise ValueError("not a time")


def row_canonical(row: tuple[Any, ...], seq: int | None = None) -> bytes:
    """The canonical bytes of a raw row (``seq`` overrides the row's own number)."""
    number, at, actor, action, otype, oid, details = row[:7]
    if type(details) is not str:
        raise TypeError("details")
    return (
        _TEMPLATE
        % (
            _esc(action),
            _esc(actor),
            _esc(stored_iso(at)),
            details,
            _esc(oid),
            _esc(otype),
            number if seq is None else seq,
        )
    ).encode()
