"""Personal data in free text: find it (French and English, offline) and redact it.

Usage::

    from audit.pii.scanner import scan_texts, redact_text

    findings = scan_texts(["Joue Daft Punk pour Marie, rappelle-moi au 06 12 34 56 78"])
    # [PiiFinding(entity_type='PERSON', field='text', row=0, start=20, end=25, score=0.85, …),
    #  PiiFinding(entity_type='PHONE_NUMBER', …)]
    redact_text("écris à marie@example.fr")   # 'écris à <EMAIL_ADDRESS>'

How it stays fast and quiet, following what presidio users struggle with (see
``shared/research/reid-pii.md`` §4):

* **one engine**: a :class:`Scanner` builds one presidio ``AnalyzerEngine`` on first use and
  keeps it; the module-level functions share a lazy singleton (:func:`get_scanner`);
* **batched**: the spaCy NER runs once over all unique texts of a call with ``nlp.pipe``;
  identical texts (the same request sent twice, a repeated field value) are analysed once;
* **no NER where it cannot help**: numeric or ID-like values (``"WB-000123"``, a UUID, a
  timestamp, a column called ``ticket_id``) get the pattern recognizers only — small models
  tag bare numbers as PERSON (presidio #1173);
* **allow-list** of event vocabulary (:mod:`audit.pii.vocabulary`) and a **score threshold**
  (0.5: a NER hit scores 0.85, a checksum-validated identifier 1.0, a bare URL 0.5);
* **offline**: see :mod:`audit.pii._engine` and :mod:`audit.pii.recognizers.email`.

A finding keeps the matched text in memory only (``PiiFinding.text``, hidden from ``repr``
and from :meth:`PiiFinding.as_dict` unless ``show=True``): findings go into audit evidence
and CLI output, which must never repeat the personal data they point at.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import SpacyRecognizer
from spacy.tokens import Doc

from audit.pii._engine import LANGUAGES, OfflineSpacyNlpEngine, shared_analyzer
from audit.pii._language import detect_language
from audit.pii._names import name_runs
from audit.pii.defaults import (
    DEFAULT_ENTITIES,
    DEFAULT_THRESHOLD,
    LANGUAGE_CHOICES,
    NER_ENTITIES,
    STRUCTURED_ENTITIES,
)
from audit.pii.recognizers import DEFAULT_PHONE_REGIONS, RecognizerConfig
from audit.pii.vocabulary import EVENT_VOCABULARY, AllowList
from retention.errors import InputError

__all__ = [
    "DEFAULT_ENTITIES",
    "STRUCTURED_ENTITIES",
    "NER_ENTITIES",
    "DEFAULT_THRESHOLD",
    "PiiFinding",
    "TextItem",
    "Scanner",
    "get_scanner",
    "scan_texts",
    "scan_records",
    "redact_text",
    "redact_texts",
    "flatten_record",
    "is_id_like",
    "detect_language",
]

# How unlikely a false match of each validator is (NIR mod 97 > IBAN mod 97 > Luhn mod 10 …)
_SPECIFICITY = {
    "FR_NIR": 6, "IBAN_CODE": 5, "EMAIL_ADDRESS": 5, "CREDIT_CARD": 4, "IP_ADDRESS": 3,
    "PHONE_NUMBER": 2, "URL": 1,
}

_ID_FIELD = re.compile(
    r"(?:^|[._\-])(?:id|ids|uuid|guid|serial|pseudonym|hash|sha256|digest|nonce|key_id|"
    r"token|checksum|bucket|code)$",
    re.IGNORECASE,
)
_UUID_OR_HEX = re.compile(r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|"
                          r"[0-9a-f]{16,})$", re.IGNORECASE)


# Field names that say nothing about what a value holds (and would collide with context words
# such as "text" in "text me on …"); other names ("phone", "email", "iban") are context.
_GENERIC_FIELDS = frozenset(
    "text texte message note notes comment comments body content value description request "
    "requests demande remarque".split()
)


def _field_context(field_name: str) -> list[str]:
    last = re.sub(r"\[\d+\]", "", field_name).rsplit(".", 1)[-1].lower()
    return [] if not last or last in _GENERIC_FIELDS else [last]


def is_id_like(value: str, field_name: str = "") -> bool:
    """True for values the NER should not see: numbers, codes, hashes, timestamps, ID fields.

    Pattern recognizers still run on them (a ``phone`` column of bare digits is found).
    """
    if field_name and _ID_FIELD.search(field_name.rsplit(".", 1)[-1]):
        return True
    stripped = value.strip()
    if not any(ch.isalpha() for ch in stripped):
        return True  # digits, punctuation, spaces: "06 12 34 56 78", "2026-06-21 20:00"
    if _UUID_OR_HEX.match(stripped):
        return True
    # one token mixing letters and digits: "WB-000123", "2026-06-21T20:00:00Z", "FR76300…"
    return not any(ch.isspace() for ch in stripped) and any(ch.isdigit() for ch in stripped)


@dataclass(frozen=True)
class PiiFinding:
    """One entity found: where (field, row, character span), what (type) and how sure."""

    entity_type: str
    field: str
    row: int | str
    start: int
    end: int
    score: float
    language: str
    text: str = dc_field(default="", repr=False, compare=False)  # in memory only

    def key(self) -> tuple[Any, ...]:
        """Identity of a finding, for comparing two scans (the matched text excluded)."""
        return (str(self.row), self.field, self.start, self.end, self.entity_type,
                round(self.score, 6))

    def as_dict(self, *, show: bool = False) -> dict[str, Any]:
        """JSON-friendly; the matched text only with ``show=True``."""
        data: dict[str, Any] = {
            "entity_type": self.entity_type,
            "field": self.field,
            "row": self.row,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 4),
            "language": self.language,
        }
        if show:
            data["text"] = self.text
        return data


@dataclass(frozen=True)
class TextItem:
    """One value to scan: its text and where it came from."""

    text: str
    field: str = "text"
    row: int | str = 0
    language: str | None = None  # None / "auto": guessed per text


def _check_language(language: str | None) -> str | None:
    if language is None or language == "auto":
        return None
    if language not in LANGUAGES:
        raise InputError(
            f"language {language!r} is not supported; use one of {', '.join(LANGUAGE_CHOICES)}"
        )
    return language


def flatten_record(record: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """``(dotted.field, text)`` for every string (and long number) leaf of a JSON-like record."""
    out: list[tuple[str, str]] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, str):
            if value.strip():
                out.append((path, value))
        elif isinstance(value, bool) or value is None:
            return
        elif isinstance(value, int):
            if abs(value) >= 1_000_000:  # short numbers cannot be phones, NIRs, cards …
                out.append((path, str(value)))
        elif isinstance(value, Mapping):
            for key, sub in value.items():
                walk(sub, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list | tuple):
            for index, sub in enumerate(value):
                walk(sub, f"{path}[{index}]")

    walk(record, prefix)
    return out


class Scanner:
    """A reusable PII scanner: one presidio engine, batched analysis, allow-list, threshold.

    Construction is cheap; the spaCy model loads on first use (:meth:`load`), a few seconds,
    and the engine is shared by every scanner with the same languages, models and phone
    regions (entities, threshold and allow-list are applied per scanner). Pass ``analyzer``
    to use an engine of your own. A scanner is safe to share between threads for scanning.
    """

    def __init__(
        self,
        *,
        entities: Sequence[str] = DEFAULT_ENTITIES,
        score_threshold: float = DEFAULT_THRESHOLD,
        allow_list: Iterable[str] = (),
        event_vocabulary: bool = True,
        languages: Sequence[str] = LANGUAGES,
        models: Mapping[str, str] | None = None,
        phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS,
        batch_size: int = 128,
        analyzer: AnalyzerEngine | None = None,
    ):
        unknown = [e for e in entities if e not in (*NER_ENTITIES, *STRUCTURED_ENTITIES, "URL")]
        if unknown:
            raise InputError(
                f"unknown PII entity {unknown[0]!r}; known: "
                f"{', '.join((*NER_ENTITIES, *STRUCTURED_ENTITIES, 'URL'))}"
            )
        if not 0.0 <= score_threshold <= 1.0:
            raise InputError(f"score threshold {score_threshold} must be between 0 and 1")
        self.entities = list(entities)
        self.score_threshold = score_threshold
        terms = list(allow_list) + (list(EVENT_VOCABULARY) if event_vocabulary else [])
        self.allow = AllowList(terms)
        self.languages = tuple(languages)
        self.models = dict(models or {})
        self.recognizer_config = RecognizerConfig(phone_regions=tuple(phone_regions))
        self.batch_size = batch_size
        self._analyzer: AnalyzerEngine | None = analyzer
        self._by_language: dict[str, list[EntityRecognizer]] = {}
        self._lock = threading.Lock()

    # -- engine ---------------------------------------------------------------------------------
    @property
    def analyzer(self) -> AnalyzerEngine:
        """The presidio engine (built once, on first use)."""
        if self._analyzer is None:
            with self._lock:
                if self._analyzer is None:
                    self._analyzer = shared_analyzer(
                        self.languages, self.models, self.recognizer_config
                    )
        return self._analyzer

    def load(self) -> Scanner:
        """Load the engine now (e.g. before a timed run); returns self."""
        _ = self.analyzer
        return self

    # -- analysis -------------------------------------------------------------------------------
    def language_of(self, item: TextItem) -> str:
        language = _check_language(item.language)
        if language is None:
            language = detect_language(item.text, default=self.languages[0])
        if language not in self.languages:
            raise InputError(
                f"language {language!r} is not enabled; this scanner has "
                f"{', '.join(self.languages)}"
            )
        return language

    def analyze_one(self, text: str, language: str, field_name: str = "text",
                    nlp_artifacts: Any = None) -> list[RecognizerResult]:
        """presidio's analysis of one text with this scanner's settings (no post-filtering)."""
        return self.analyzer.analyze(
            text=text,
            language=language,
            entities=self.entities,
            score_threshold=self.score_threshold,
            context=_field_context(field_name),
            nlp_artifacts=nlp_artifacts,
        )

    def _recognizers(self, language: str) -> list[EntityRecognizer]:
        if language not in self._by_language:
            self._by_language[language] = self.analyzer.registry.get_recognizers(
                language=language, entities=self.entities, all_fields=False
            )
        return self._by_language[language]

    def _analyze_doc(self, text: str, language: str, field_name: str, doc: Doc) -> list[
        RecognizerResult
    ]:
        """presidio's results for ``text``, skipping its orchestration when it cannot matter.

        If no pattern recognizer's pre-check (``might_match``: an ``@``, enough digits …)
        passes, only the NER can contribute; its entities carry no context words, so presidio
        would return them as they are, above the threshold and de-duplicated — done here
        directly, without building presidio's NLP artifacts. A recognizer without a pre-check
        forces the full analysis. The findings are the same either way (``bench/pii.py`` and
        the tests compare them); only the time differs.
        """
        engine: OfflineSpacyNlpEngine = self.analyzer.nlp_engine  # type: ignore[assignment]
        ner_wanted = False
        for recognizer in self._recognizers(language):
            if isinstance(recognizer, SpacyRecognizer):
                ner_wanted = True
                continue
            might_match = getattr(recognizer, "might_match", None)
            if might_match is None or might_match(text):
                artifacts = engine.artifacts(doc, language)
                return self.analyze_one(text, language, field_name, artifacts)
        if not ner_wanted:
            return []
        entities, scores = engine.entities(doc)
        found = [
            RecognizerResult(ent.label_, ent.start_char, ent.end_char, score)
            for ent, score in zip(entities, scores, strict=True)
            if ent.label_ in self.entities and score >= self.score_threshold
        ]
        return EntityRecognizer.remove_duplicates(found) if found else []

    def scan_items(self, items: Iterable[TextItem]) -> list[PiiFinding]:
        """Analyse many texts in one batch; findings ordered by row, field and position."""
        items = list(items)
        if not items:
            return []
        engine: OfflineSpacyNlpEngine = self.analyzer.nlp_engine  # type: ignore[assignment]
        # one analysis per distinct (text, language, field, ner?) — repeats are common
        keyed: list[tuple[str, str, str, bool]] = []
        for item in items:
            language = self.language_of(item)
            keyed.append((item.text, language, item.field, not is_id_like(item.text, item.field)))
        unique = list(dict.fromkeys(keyed))
        results: dict[tuple[str, str, str, bool], list[RecognizerResult]] = {}
        for language in self.languages:
            for ner in (True, False):
                group = [k for k in unique if k[1] == language and k[3] is ner]
                if not group:
                    continue
                fields_of: dict[str, list[str]] = {}
                for text, _, field_name, _ in group:
                    fields_of.setdefault(text, []).append(field_name)
                texts = list(fields_of)
                docs = engine.docs(texts, language, ner=ner, batch_size=self.batch_size)
                for text, doc in zip(texts, docs, strict=True):  # streamed: docs are not kept
                    for field_name in fields_of[text]:
                        results[(text, language, field_name, ner)] = self._analyze_doc(
                            text, language, field_name, doc
                        )
        findings: list[PiiFinding] = []
        for item, key in zip(items, keyed, strict=True):
            findings.extend(self.findings_from(results[key], item, key[1], ner=key[3]))
        findings.sort(key=_order)
        return findings

    def findings_from(self, results: Sequence[RecognizerResult], item: TextItem,
                      language: str, *, ner: bool) -> list[PiiFinding]:
        """Apply the allow-list and cross-type de-duplication to presidio's results."""
        text = item.text
        covered = self.allow.covered(text)
        kept: list[RecognizerResult] = []
        for r in results:
            if (
                r.entity_type not in self.entities
                or r.score < self.score_threshold
                or (not ner and r.entity_type in NER_ENTITIES)
                or self.allow.allows(
                    text, r.start, r.end, ner=r.entity_type in NER_ENTITIES, covered=covered
                )
            ):
                continue
            if r.entity_type == "PERSON":  # keep only the name-shaped runs of the span
                kept.extend(
                    RecognizerResult("PERSON", a, b, r.score)
                    for a, b in name_runs(text, r.start, r.end, covered)
                )
            else:
                kept.append(r)
        # presidio de-duplicates within a type; a URL inside an email, or 15 digits that are
        # both a NIR and (by Luhn luck, 1 in 10) a card number, are the same data seen twice:
        # keep the stronger reading — higher score, then longer, then the stricter checksum.
        def strength(r: RecognizerResult) -> tuple[float, int, int]:
            return (r.score, r.end - r.start, _SPECIFICITY.get(r.entity_type, 0))

        final = [
            r for r in kept
            if not any(
                o is not r and o.entity_type != r.entity_type
                and o.start <= r.start and r.end <= o.end
                and strength(o) > strength(r)
                for o in kept
            )
        ]
        return [
            PiiFinding(r.entity_type, item.field, item.row, r.start, r.end, float(r.score),
                       language, text[r.start:r.end])
            for r in sorted(final, key=lambda r: (r.start, r.entity_type))
        ]

    # -- public conveniences --------------------------------------------------------------------
    def scan_texts(self, texts: Iterable[str], language: str | None = None,
                   field: str = "text") -> list[PiiFinding]:
        """Findings in a list of texts; ``row`` is the index in ``texts``."""
        lang = _check_language(language)
        return self.scan_items(
            TextItem(text, field, index, lang) for index, text in enumerate(texts)
        )

    def scan_records(
        self,
        records: Iterable[Mapping[str, Any]],
        *,
        fields: Sequence[str] | None = None,
        language: str | None = None,
        first_row: int = 1,
        rows: Iterable[int | str] | None = None,
    ) -> list[PiiFinding]:
        """Findings in JSON-like records (nested keys become dotted field names).

        ``fields`` keeps only those fields (a dotted name also selects what is below it).
        Rows are numbered from ``first_row`` unless ``rows`` gives each record's id.
        """
        lang = _check_language(language)
        wanted = tuple(fields or ())
        row_ids = iter(rows) if rows is not None else None
        items: list[TextItem] = []
        for index, record in enumerate(records):
            row: int | str = next(row_ids) if row_ids is not None else first_row + index
            for name, value in flatten_record(record):
                if wanted and not any(
                    name == w or name.startswith(w + ".") or name.startswith(w + "[")
                    for w in wanted
                ):
                    continue
                items.append(TextItem(value, name, row, lang))
        return self.scan_items(items)

    def redact_texts(self, texts: Sequence[str], language: str | None = None) -> list[str]:
        """Each text with every entity replaced by ``<ENTITY_TYPE>``."""
        findings = self.scan_texts(texts, language)
        by_row: dict[int, list[PiiFinding]] = {}
        for finding in findings:
            by_row.setdefault(int(finding.row), []).append(finding)
        return [_redact(text, by_row.get(index, [])) for index, text in enumerate(texts)]

    def redact_text(self, text: str, language: str | None = None) -> str:
        """``text`` with every entity replaced by ``<ENTITY_TYPE>``."""
        return self.redact_texts([text], language)[0]


def _order(f: PiiFinding) -> tuple[Any, ...]:
    """Row order (numbers numerically, record ids as text), then field and position."""
    row = (0, f.row, "") if isinstance(f.row, int) else (1, 0, str(f.row))
    return (*row, f.field, f.start, f.entity_type)


def _redact(text: str, findings: Sequence[PiiFinding]) -> str:
    """Replace spans right to left; overlaps go to the higher score, then the longer span."""
    chosen: list[PiiFinding] = []
    for f in sorted(findings, key=lambda f: (-f.score, -(f.end - f.start), f.start)):
        if all(f.end <= c.start or f.start >= c.end for c in chosen):
            chosen.append(f)
    for f in sorted(chosen, key=lambda f: f.start, reverse=True):
        text = text[: f.start] + f"<{f.entity_type}>" + text[f.end :]
    return text


_default: Scanner | None = None
_default_lock = threading.Lock()


def get_scanner() -> Scanner:
    """The process-wide default scanner (built lazily, shared by the functions below)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Scanner()
    return _default


def scan_texts(texts: Iterable[str], language: str | None = None) -> list[PiiFinding]:
    """Findings in ``texts`` (``language``: None / "auto" guesses per text, or "fr" / "en")."""
    return get_scanner().scan_texts(texts, language)


def scan_records(
    records: Iterable[Mapping[str, Any]],
    *,
    fields: Sequence[str] | None = None,
    language: str | None = None,
) -> list[PiiFinding]:
    """Findings in JSON-like records, rows numbered from 1."""
    return get_scanner().scan_records(records, fields=fields, language=language)


def redact_text(text: str, language: str | None = None) -> str:
    """``text`` with personal data replaced by ``<TYPE>`` (used before storing free text)."""
    return get_scanner().redact_text(text, language)


def redact_texts(texts: Sequence[str], language: str | None = None) -> list[str]:
    """Batched :func:`redact_text`."""
    return get_scanner().redact_texts(texts, language)
