"""Read a CSV or JSON Lines file a user brings, as records for the PII scanner.

A DPO checks an export *before* it leaves: ``flowaudit pii-scan export.csv``. Rows are
numbered as a person would count them: for CSV the first data row is row 1 (the header is not
counted), for JSON Lines the row is the line number. A file that cannot be read is one
:class:`InputError` naming the file and the line — never the content, which may be personal.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.pii.scanner import TextItem, flatten_record
from retention.errors import InputError

__all__ = ["FileRecords", "read_records", "FILE_TYPES"]

FILE_TYPES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass
class FileRecords:
    """The records of one file with their row numbers and the fields seen."""

    path: Path
    kind: str  # "csv" | "jsonl"
    rows: list[int]
    records: list[dict[str, Any]]
    fields: list[str]

    def items(self, fields: Sequence[str] | None = None, language: str | None = None) -> list[
        TextItem
    ]:
        """Text items to scan, restricted to ``fields`` (unknown names are an error)."""
        wanted = tuple(fields or ())
        unknown = [f for f in wanted if f not in self.fields]
        if unknown:
            known = ", ".join(self.fields) or "none"
            raise InputError(
                f"'{self.path}' has no field {unknown[0]!r}; its fields are: {known}"
            )
        out: list[TextItem] = []
        for row, record in zip(self.rows, self.records, strict=True):
            for name, text in flatten_record(record):
                top = name.split(".", 1)[0].split("[", 1)[0]
                if wanted and top not in wanted:
                    continue
                out.append(TextItem(text, name, row, language))
        return out


def _kind_of(path: Path) -> str:
    kind = FILE_TYPES.get(path.suffix.lower())
    if kind is None:
        raise InputError(
            f"'{path}': unsupported file type {path.suffix or '(none)'!r}; "
            "use a .csv file with a header row or a .jsonl file (one JSON object per line)"
        )
    return kind


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"'{path}' does not exist") from None
    except IsADirectoryError:
        raise InputError(f"'{path}' is a directory; give a .csv or .jsonl file") from None
    except UnicodeDecodeError as exc:
        raise InputError(
            f"'{path}' is not UTF-8 text (bad byte at offset {exc.start}); re-export it as UTF-8"
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(f"'{path}' cannot be read ({reason})") from None


def _read_csv(path: Path, text: str) -> FileRecords:
    if "\x00" in text:
        raise InputError(f"'{path}' holds NUL bytes; it is not a CSV text file")
    reader = csv.DictReader(text.splitlines(keepends=True), strict=True)
    try:
        header = reader.fieldnames
        if not header:
            raise InputError(f"'{path}' is empty; a CSV file needs a header row")
        fields = [name.strip() for name in header]
        if len(set(fields)) != len(fields) or not all(fields):
            raise InputError(f"'{path}': the header row has empty or repeated column names")
        rows: list[int] = []
        records: list[dict[str, Any]] = []
        last_line = reader.line_num
        for number, raw in enumerate(reader, start=1):
            if None in raw:
                raise InputError(
                    f"'{path}' row {number} (line {reader.line_num}) has more fields than the "
                    f"header's {len(fields)}"
                )
            rows.append(number)
            records.append(
                {f: v for f, v in zip(fields, raw.values(), strict=True) if v is not None}
            )
            last_line = reader.line_num
    except csv.Error as exc:  # raised while reading the line after the last good one
        raise InputError(f"'{path}' line {last_line + 1} is not valid CSV ({exc})") from None
    return FileRecords(path, "csv", rows, records, fields)


def _read_jsonl(path: Path, text: str) -> FileRecords:
    rows: list[int] = []
    records: list[dict[str, Any]] = []
    fields: dict[str, None] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"'{path}' line {number} is not valid JSON ({exc.msg} at column {exc.colno})"
            ) from None
        if not isinstance(value, dict):
            raise InputError(
                f"'{path}' line {number} is a JSON {type(value).__name__}, not an object; "
                "JSON Lines input needs one object per line"
            )
        rows.append(number)
        records.append(value)
        fields.update(dict.fromkeys(str(k) for k in value))
    return FileRecords(path, "jsonl", rows, records, list(fields))


def read_records(path: Path) -> FileRecords:
    """Parse ``path`` (.csv with a header, or .jsonl / .ndjson) into records."""
    kind = _kind_of(path)
    text = _read_text(path)
    return _read_csv(path, text) if kind == "csv" else _read_jsonl(path, text)
