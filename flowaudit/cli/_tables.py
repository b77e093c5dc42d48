"""The plain table the CLI's ``list`` commands print (API keys, device tokens).

Text output: one row a line, columns two spaces apart and padded to the widest cell, then a
count line (``3 key(s)``); ``--format json`` prints the rows' dicts as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import typer

from ._common import print_json

__all__ = ["print_table", "print_listing", "state_of"]


def state_of(revoked_at: str | None) -> str:
    """``live``, or ``revoked <when>``: the last column of a key or token row."""
    return f"revoked {revoked_at}" if revoked_at else "live"


def print_table(rows: Sequence[Sequence[str]], noun: str) -> None:
    """Rows as aligned columns (the last one unpadded), then ``N noun(s)``."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))] if rows else []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        typer.echo("  ".join([*cells, row[-1]]))
    typer.echo(f"{len(rows)} {noun}(s)")


def print_listing(rows: Sequence[Mapping[str, Any]], fmt: str,
                  cells: Callable[[Mapping[str, Any]], Sequence[str]], noun: str) -> None:
    """``rows`` as JSON (``fmt == "json"``) or as the table ``cells`` makes of each row."""
    if fmt == "json":
        print_json([dict(row) for row in rows])
        return
    print_table([list(cells(row)) for row in rows], noun)
