"""PII in the store's free-text metadata: what ``flowaudit pii-scan`` and the audit check read.

Free text reaches the store through a few metadata kinds — a track request typed by a guest
(``kind="track_request"``, payload ``{"text": …}``), a steward's note — and that is where names
and phone numbers hide. Only those kinds are read by default, because decrypting every window
score of an event to look for names in numbers would cost much and find nothing; pass
``kinds=None`` to read every kind. Expired or shredded records are skipped by the store itself.

The scan yields findings only (type, field, record id, span, score): the texts are decrypted
in memory, analysed, and dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from audit.pii.defaults import FREE_TEXT_KINDS
from audit.pii.scanner import PiiFinding, Scanner, TextItem, flatten_record, get_scanner

__all__ = ["FREE_TEXT_KINDS", "StoreScan", "iter_store_texts", "scan_store"]



@dataclass
class StoreScan:
    """The outcome of scanning the store: findings plus what was looked at."""

    findings: list[PiiFinding]
    records: int
    texts: int
    kinds: tuple[str, ...] | None
    records_by_id: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def counts(self) -> dict[str, int]:
        """Findings per entity type."""
        return dict(sorted(Counter(f.entity_type for f in self.findings).items()))

    def records_with_findings(self) -> list[str]:
        return sorted({str(f.row) for f in self.findings})


def iter_store_texts(
    store: Any,
    *,
    now: datetime,
    kinds: Sequence[str] | None = FREE_TEXT_KINDS,
    event_id: str | None = None,
    fields: Sequence[str] | None = None,
    language: str | None = None,
    info: dict[str, dict[str, Any]] | None = None,
) -> Iterator[TextItem]:
    """Every string value of readable metadata records of ``kinds`` as a :class:`TextItem`.

    ``field`` is ``<kind>.<dotted path>`` (``track_request.text``), ``row`` the record id.
    ``info`` (if given) collects, per record id, its event, kind and pseudonym.
    """
    wanted = tuple(fields or ())
    selected: list[str | None] = list(kinds) if kinds is not None else [None]
    for kind in selected:
        for record in store.iter_metadata(now=now, event_id=event_id, kind=kind):
            if info is not None:
                info[record.id] = {
                    "event": record.event_id,
                    "kind": record.kind,
                    "pseudonym": record.pseudonym,
                }
            for name, text in flatten_record(record.payload):
                if wanted and not any(
                    name == w or name.startswith(w + ".") or name.startswith(w + "[")
                    for w in wanted
                ):
                    continue
                yield TextItem(text, f"{record.kind}.{name}", record.id, language)


def scan_store(
    store: Any,
    *,
    now: datetime,
    kinds: Sequence[str] | None = FREE_TEXT_KINDS,
    event_id: str | None = None,
    fields: Sequence[str] | None = None,
    language: str | None = None,
    scanner: Scanner | None = None,
) -> StoreScan:
    """Scan the store's free-text metadata; the spaCy model loads only if there is text."""
    info: dict[str, dict[str, Any]] = {}
    items = list(
        iter_store_texts(
            store,
            now=now,
            kinds=kinds,
            event_id=event_id,
            fields=fields,
            language=language,
            info=info,
        )
    )
    findings = (scanner or get_scanner()).scan_items(items) if items else []
    return StoreScan(
        findings=findings,
        records=len(info),
        texts=len(items),
        kinds=tuple(kinds) if kinds is not None else None,
        records_by_id=info,
    )
