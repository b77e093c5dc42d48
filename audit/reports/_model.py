"""The document model every report kind builds and every format renders.

A report is *facts* (``data``: the JSON payload, validated by the kind's schema) plus a
*presentation* of those facts (``sections`` of blocks) that the Markdown and HTML templates
turn into text. Builders put numbers into both from the same gathered values, so the prose can
never disagree with the machine-readable record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Para",
    "Facts",
    "Table",
    "Chart",
    "Items",
    "Notice",
    "Status",
    "Verdict",
    "Block",
    "Section",
    "Report",
    "PASS",
    "WARN",
    "FAIL",
    "INFO",
]

PASS, WARN, FAIL, INFO = "pass", "warn", "fail", "info"


@dataclass(frozen=True)
class Para:
    """A paragraph of plain text (no markup; templates escape it)."""

    text: str
    kind: str = field(default="para", init=False)


@dataclass(frozen=True)
class Facts:
    """Label → value pairs, e.g. the Art 30(1) fields."""

    rows: list[tuple[str, str]]
    kind: str = field(default="facts", init=False)


@dataclass(frozen=True)
class Table:
    """A table of already formatted cells."""

    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    empty: str = "none"
    kind: str = field(default="table", init=False)


@dataclass(frozen=True)
class Chart:
    """An inline SVG chart; ``table`` carries its numbers (Markdown shows it instead)."""

    svg: str
    caption: str
    table: Table | None = None
    kind: str = field(default="chart", init=False)


@dataclass(frozen=True)
class Items:
    """A bulleted list."""

    items: list[str]
    kind: str = field(default="items", init=False)


@dataclass(frozen=True)
class Notice:
    """Text meant to be shown to people as is (a notice, a statement); rendered boxed."""

    title: str
    paragraphs: list[str]
    kind: str = field(default="notice", init=False)


@dataclass(frozen=True)
class Status:
    """A one-line summary of check findings (counts per severity): pass / warn / fail / info.

    Verdicts on one matter are :class:`Verdict` blocks, taken from the check registry.
    """

    level: str
    text: str
    kind: str = field(default="status", init=False)


@dataclass(frozen=True)
class Verdict:
    """One rule's verdict as the check registry gave it: one of its findings, or its pass.

    ``severity`` is the finding's (``None`` when the rule passed); ``level`` is how it shows:
    pass / fail (error) / warn (warning) / info.
    """

    rule_id: str
    title: str
    legal_ref: str
    level: str
    message: str
    severity: str | None = None
    kind: str = field(default="verdict", init=False)

    def as_dict(self, section: str) -> dict[str, object]:
        return {
            "section": section,
            "rule_id": self.rule_id,
            "title": self.title,
            "legal_ref": self.legal_ref,
            "status": self.level,
            "severity": self.severity,
            "message": self.message,
        }


Block = Para | Facts | Table | Chart | Items | Notice | Status | Verdict


@dataclass
class Section:
    """One numbered part of a report, usually one article or paragraph of the law."""

    id: str
    title: str
    legal_ref: str = ""
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> Section:
        self.blocks.extend(blocks)
        return self


@dataclass
class Report:
    """A built report: identity, meta, JSON facts and the sections that present them."""

    kind: str
    title: str
    subtitle: str
    meta: dict[str, Any]
    data: dict[str, Any]
    sections: list[Section]
    #: label/value lines shown under the title (not part of the JSON: ``meta`` holds the facts)
    header: list[tuple[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The machine-readable document (what ``--format json`` writes)."""
        return {
            "report": self.kind,
            "schema": f"flowaudit/report/{self.kind}/v1",
            "title": self.title,
            "subtitle": self.subtitle,
            "meta": self.meta,
            "sections": [
                {"id": s.id, "title": s.title, "legal_ref": s.legal_ref} for s in self.sections
            ],
            "data": self.data,
        }
