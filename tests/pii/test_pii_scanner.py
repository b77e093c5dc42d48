"""The scanner: allow-list, redaction, ID-like fields, batching, language, no text leaks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.pii.scanner import (
    DEFAULT_ENTITIES,
    PiiFinding,
    Scanner,
    TextItem,
    detect_language,
    is_id_like,
    redact_text,
    redact_texts,
    scan_records,
    scan_texts,
)
from audit.pii.vocabulary import ARTISTS, DEVICE_MODELS, TRACKS, ZONES, AllowList
from retention.errors import InputError
from tests.pii.pii_corpus import LabelledText


def _types(findings: list[PiiFinding]) -> list[tuple[int | str, str]]:
    return [(f.row, f.entity_type) for f in findings]


# -- allow-list ----------------------------------------------------------------------------------
VOCABULARY_TEXTS = [
    "Joue Daft Punk svp",
    "Encore Get Lucky !!!",
    "Play Around the World by Daft Punk",
    "Mettez Aya Nakamura en Zone B",
    "Christine and the Queens, Tout oublier, merci Angèle",
    "Le FlowBand Pro de la Scène Nord ne marche plus",
    "Best set ever, Calvin Harris rocks",
    "Shout out to David Guetta on the Main Stage",
]


@pytest.mark.parametrize("text", VOCABULARY_TEXTS)
def test_event_vocabulary_is_not_reported(scanner: Scanner, text: str) -> None:
    assert scanner.scan_texts([text]) == []


def test_without_the_allow_list_vocabulary_is_reported(scanner: Scanner) -> None:
    """The allow-list does the work: the same texts give PERSON findings without it."""
    bare = Scanner(event_vocabulary=False)
    flagged = [f for f in bare.scan_texts(VOCABULARY_TEXTS) if f.entity_type == "PERSON"]
    assert len({f.row for f in flagged}) >= 2  # e.g. "Aya Nakamura", "Calvin Harris"


def test_a_custom_allow_list_extends_the_vocabulary() -> None:
    text = "Dédicace à Jean-Michel Jarre pour son concert"
    assert _types(Scanner().scan_texts([text])) == [(0, "PERSON")]
    assert Scanner(allow_list=["Jean-Michel Jarre"]).scan_texts([text]) == []


def test_allow_list_keeps_a_real_name_next_to_vocabulary(scanner: Scanner) -> None:
    findings = scanner.scan_texts(["Joue Daft Punk pour Marie Dupont, rappelle-moi au 06 12 34 56 78"])
    assert [(f.entity_type, f.text) for f in findings] == [
        ("PERSON", "Marie Dupont"),
        ("PHONE_NUMBER", "06 12 34 56 78"),
    ]


def test_structured_identifiers_are_allowed_only_on_exact_match() -> None:
    scanner = Scanner(allow_list=["contact@fete-musique.fr"])
    findings = scanner.scan_texts(["écrire à contact@fete-musique.fr ou à marie@orange.fr"])
    assert [f.text for f in findings if f.entity_type == "EMAIL_ADDRESS"] == ["marie@orange.fr"]


def test_allow_list_matching_ignores_case_and_accents() -> None:
    allow = AllowList(["Angèle", "Scène Nord"])
    text = "ANGELE sur la scene nord"
    assert allow.allows(text, 0, 6, ner=True)
    assert allow.allows(text, 14, 24, ner=True)
    assert not allow.allows("Marie", 0, 5, ner=True)


def test_the_builtin_vocabulary_is_not_empty() -> None:
    assert ZONES and DEVICE_MODELS and ARTISTS and TRACKS


# -- redaction ------------------------------------------------------------------------------------
def test_redact_text_replaces_every_entity() -> None:
    text = (
        "Joue Daft Punk pour Marie Dupont, rappelle-moi au 06 12 34 56 78 "
        "ou marie.dupont@orange.fr, IBAN FR76 3000 6000 0112 3456 7890 189"
    )
    assert redact_text(text) == (
        "Joue Daft Punk pour <PERSON>, rappelle-moi au <PHONE_NUMBER> "
        "ou <EMAIL_ADDRESS>, IBAN <IBAN_CODE>"
    )


def test_redact_text_leaves_clean_text_alone() -> None:
    assert redact_text("Encore Get Lucky !!!") == "Encore Get Lucky !!!"
    assert redact_text("") == ""


def test_redact_texts_is_the_batched_form() -> None:
    texts = ["Call Sarah Johnson on +44 20 7946 0958", "Play Get Lucky", "mail: bob@gmail.com"]
    assert redact_texts(texts) == [redact_text(t) for t in texts]


@settings(max_examples=25, deadline=None)
@given(index=st.integers(min_value=0, max_value=599))
def test_redaction_removes_every_structured_identifier(
    index: int, corpus: list[LabelledText]
) -> None:
    item = corpus[index]
    redacted = redact_text(item.text, item.language)
    for gold in item.gold:
        if gold.entity_type != "PERSON":
            assert item.text[gold.start : gold.end] not in redacted
    assert not [f for f in scan_texts([redacted]) if f.entity_type != "PERSON"]


# -- fields, rows, batching --------------------------------------------------------------------
ID_LIKE = [
    ("WB-000123", "", True),  # valid: a wristband serial
    ("0612345678", "", True),
    ("2026-06-21T20:00:00Z", "", True),
    ("3f2b8c1e-9a4d-4c7e-8f00-1234567890ab", "", True),
    ("a3f9c2d4e5b6a7f8", "", True),
    ("Jean Dupont", "ticket_id", True),
    ("Jean Dupont", "pseudonym", True),
    ("Jean Dupont", "name", False),  # invalid: free text in a text field
    ("Joue Daft Punk pour Marie", "text", False),
    ("Marie", "", False),
]


@pytest.mark.parametrize("value, field_name, expected", ID_LIKE)
def test_is_id_like(value: str, field_name: str, expected: bool) -> None:
    assert is_id_like(value, field_name) is expected


def test_no_ner_on_id_fields_but_patterns_still_run(scanner: Scanner) -> None:
    records = [{"ticket_id": "Jean Dupont", "phone": "0612345678", "name": "Jean Dupont"}]
    findings = scanner.scan_records(records)
    assert sorted((f.field, f.entity_type) for f in findings) == [
        ("name", "PERSON"),
        ("phone", "PHONE_NUMBER"),
    ]


def test_nested_records_get_dotted_field_names_and_row_numbers() -> None:
    records = [
        {"kind": "note", "payload": {"text": "rien à signaler"}},
        {"kind": "track_request", "payload": {"text": "mail: bob@gmail.com", "n": 3}},
        {"contacts": [{"tel": "06 12 34 56 78"}]},
    ]
    findings = scan_records(records)
    assert [(f.row, f.field, f.entity_type) for f in findings] == [
        (2, "payload.text", "EMAIL_ADDRESS"),
        (3, "contacts[0].tel", "PHONE_NUMBER"),
    ]
    assert [f.field for f in scan_records(records, fields=["contacts"])] == ["contacts[0].tel"]


def test_repeated_texts_are_reported_for_every_row(scanner: Scanner) -> None:
    text = "rappelle-moi au 06 12 34 56 78"
    findings = scanner.scan_texts([text, "Get Lucky", text, text])
    assert _types(findings) == [(0, "PHONE_NUMBER"), (2, "PHONE_NUMBER"), (3, "PHONE_NUMBER")]


def test_batched_scan_equals_a_per_text_presidio_loop(
    scanner: Scanner, corpus: list[LabelledText]
) -> None:
    """The batch path (nlp.pipe, skipped analyses, de-duplication) changes time, not results."""
    items = [TextItem(c.text, "text", i, None) for i, c in enumerate(corpus[:200])]
    items += [TextItem("06 12 34 56 78", "phone", 999, None), TextItem("WB-1", "id", 998, None)]
    per_text: set[tuple[object, ...]] = set()
    for item in items:
        language = scanner.language_of(item)
        results = scanner.analyzer.analyze(
            text=item.text,
            language=language,
            entities=scanner.entities,
            score_threshold=scanner.score_threshold,
            context=[item.field],
        )
        ner = not is_id_like(item.text, item.field)
        per_text |= {f.key() for f in scanner.findings_from(results, item, language, ner=ner)}
    batched = {f.key() for f in scanner.scan_items(items)}
    assert batched == per_text
    assert len(batched) > 150


def test_threshold_filters_weak_findings() -> None:
    text = "see www.marie-dupont.fr"  # a bare URL scores 0.5
    assert _types(Scanner(score_threshold=0.5).scan_texts([text])) == [(0, "URL")]
    assert Scanner(score_threshold=0.6).scan_texts([text]) == []


def test_entities_can_be_narrowed_and_widened() -> None:
    text = "Marie Dupont habite à Marseille, mail marie@orange.fr"
    only_email = Scanner(entities=["EMAIL_ADDRESS"]).scan_texts([text])
    assert {f.entity_type for f in only_email} == {"EMAIL_ADDRESS"}
    wide = Scanner(entities=[*DEFAULT_ENTITIES, "LOCATION"]).scan_texts([text])
    assert "LOCATION" in {f.entity_type for f in wide}


def test_bad_settings_are_input_errors() -> None:
    with pytest.raises(InputError, match="unknown PII entity 'SSN'"):
        Scanner(entities=["SSN"])
    with pytest.raises(InputError, match="between 0 and 1"):
        Scanner(score_threshold=1.5)
    with pytest.raises(InputError, match="language 'de' is not supported"):
        scan_texts(["hallo"], language="de")


# -- language, privacy of the output ---------------------------------------------------------
LANGUAGES = [
    ("Joue Daft Punk pour Marie, rappelle-moi au 06 12 34 56 78", "fr"),
    ("Dédicace à Chloé de la part de Léa", "fr"),
    ("Please play Wonderwall for Sarah, call me on 07700 900123", "en"),
    ("Happy birthday to my brother!", "en"),
    ("06 12 34 56 78", "fr"),  # nothing to go on: the default
]


@pytest.mark.parametrize("text, expected", LANGUAGES)
def test_detect_language(text: str, expected: str) -> None:
    assert detect_language(text) == expected


def test_findings_never_show_the_text_unless_asked(scanner: Scanner) -> None:
    [finding] = scanner.scan_texts(["mail: marie.dupont@orange.fr"])
    assert finding.text == "marie.dupont@orange.fr"
    assert "marie" not in repr(finding)
    assert "marie" not in str(finding.as_dict())
    assert finding.as_dict(show=True)["text"] == "marie.dupont@orange.fr"
    assert set(finding.as_dict()) == {
        "entity_type", "field", "row", "start", "end", "score", "language"
    }


def test_empty_input() -> None:
    assert scan_texts([]) == []
    assert scan_records([]) == []


def test_findings_are_in_numeric_row_order(scanner: Scanner) -> None:
    texts = ["Encore"] * 12
    texts[2] = texts[10] = "mail: bob@gmail.com"
    assert [f.row for f in scanner.scan_texts(texts)] == [2, 10]
