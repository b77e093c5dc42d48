"""The recognizers flowaudit adds or adapts: French phones, phone shapes, offline email, gates."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from presidio_analyzer import PatternRecognizer
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    IbanRecognizer,
    IpRecognizer,
)

from audit.pii.recognizers import build_recognizers, recognizer_names
from audit.pii.recognizers.credit_card import GatedCreditCardRecognizer
from audit.pii.recognizers.email import OfflineEmailRecognizer, offline_extractor
from audit.pii.recognizers.fr_nir import FrNirRecognizer
from audit.pii.recognizers.fr_phone import FrPhoneRecognizer
from audit.pii.recognizers.iban import GatedIbanRecognizer
from audit.pii.recognizers.ip_address import GatedIpRecognizer
from audit.pii.recognizers.phone_shapes import PhoneShapeRecognizer
from audit.pii.recognizers.url import OfflineUrlRecognizer


def _found(recognizer: PatternRecognizer, text: str, entity: str, min_score: float = 0.5) -> list[
    str
]:
    return [text[r.start : r.end] for r in recognizer.analyze(text, [entity]) if r.score >= min_score]


FR_PHONES = [
    # valid
    ("rappelle-moi au 06 12 34 56 78", "06 12 34 56 78"),
    ("tel 06.12.34.56.78 svp", "06.12.34.56.78"),
    ("0612345678", "0612345678"),
    ("appelle le +33 6 12 34 56 78", "+33 6 12 34 56 78"),
    ("+33 (0)1 41 63 60 83", "+33 (0)1 41 63 60 83"),
    ("0033 612345678", "0033 612345678"),
    ("01-23-45-67-89", "01-23-45-67-89"),
    # invalid
    ("00 12 34 56 78", None),  # no number starts 00 after the trunk 0
    ("06 12 34 56", None),  # too short
    ("06 12 34 56 78 90", None),  # too long
    ("ref A0612345678", None),  # glued to a word
]


@pytest.mark.parametrize("text, expected", FR_PHONES)
def test_french_phone_numbers(text: str, expected: str | None) -> None:
    found = _found(FrPhoneRecognizer("fr"), text, "PHONE_NUMBER")
    assert found == ([expected] if expected else [])


PHONE_SHAPES = [
    # valid (0.5 or more without context)
    ("+44(0)115 4960914", "+44(0)115 4960914"),
    ("+1-537-640-6812x41586", "+1-537-640-6812x41586"),
    ("(591)341-7776", "(591)341-7776"),
    ("206.269.0743", "206.269.0743"),
    ("(01632) 960128", "(01632) 960128"),
    ("0115 496 0400", "0115 496 0400"),
    # invalid without context
    ("6279883151", None),  # bare digits score 0.3
    ("2026-06-21", None),  # a date
    ("+12 34", None),  # too few digits
]


@pytest.mark.parametrize("text, expected", PHONE_SHAPES)
def test_phone_shapes(text: str, expected: str | None) -> None:
    found = _found(PhoneShapeRecognizer("en"), text, "PHONE_NUMBER")
    assert found == ([expected] if expected else [])


def test_bare_digits_count_with_a_context_word(scanner) -> None:  # type: ignore[no-untyped-def]
    findings = scanner.scan_texts(["Text Tracy on 6279883151", "Order 6279883151 shipped"], "en")
    assert [(f.row, f.entity_type) for f in findings] == [(0, "PHONE_NUMBER")]


def test_email_validation_uses_the_bundled_suffix_list() -> None:
    extractor = offline_extractor()
    assert extractor.suffix_list_urls == ()
    recognizer = OfflineEmailRecognizer("fr")
    assert _found(recognizer, "écris à marie.dupont@orange.fr", "EMAIL_ADDRESS") == [
        "marie.dupont@orange.fr"
    ]
    assert _found(recognizer, "bob@mail.example.co.uk !", "EMAIL_ADDRESS") == [
        "bob@mail.example.co.uk"
    ]
    # no public suffix: not an address anyone can write to
    assert _found(recognizer, "root@localhost.invalidtld", "EMAIL_ADDRESS") == []


def test_url_recognizer_never_validates_online() -> None:
    recognizer = OfflineUrlRecognizer("en")
    assert _found(recognizer, "see https://instagram.com/marie.d", "URL") == [
        "https://instagram.com/marie.d"
    ]
    assert recognizer.validate_result("anything") is None


def test_every_recognizer_is_built_for_both_languages() -> None:
    names = recognizer_names()
    assert {"fr_nir", "fr_phone", "phone_shapes", "email", "url", "iban", "person"} <= set(names)
    built = build_recognizers(["fr", "en"])
    languages = {r.supported_language for r in built}
    assert languages == {"fr", "en"}
    assert len(built) == 2 * len(build_recognizers(["fr"]))


def test_libphonenumber_is_opt_in() -> None:
    from audit.pii.recognizers import RecognizerConfig

    default = {type(r).__name__ for r in build_recognizers(["fr"])}
    opted = {type(r).__name__ for r in build_recognizers(["fr"], RecognizerConfig(("DE",)))}
    assert "GatedPhoneRecognizer" not in default
    assert opted - default == {"GatedPhoneRecognizer"}


# A gate only skips texts its recognizer cannot match: with the gate forced open, every
# recognizer must return the same results on any text.
def _gated() -> list[tuple[Any, str]]:
    return [
        (GatedIbanRecognizer(supported_language="en"), "IBAN_CODE"),
        (GatedCreditCardRecognizer(supported_language="en"), "CREDIT_CARD"),
        (GatedIpRecognizer(supported_language="en"), "IP_ADDRESS"),
        (OfflineEmailRecognizer("en"), "EMAIL_ADDRESS"),
        (OfflineUrlRecognizer("en"), "URL"),
        (FrNirRecognizer("fr"), "FR_NIR"),
        (FrPhoneRecognizer("fr"), "PHONE_NUMBER"),
        (PhoneShapeRecognizer("en"), "PHONE_NUMBER"),
    ]


GATED = _gated()
OPEN = _gated()
for _recognizer, _ in OPEN:
    _recognizer.might_match = lambda text: True  # type: ignore[method-assign]

_pieces = st.sampled_from(
    [
        "FR76 3000 6000 0112 3456 7890 189", "GB82WEST12345698765432", "4111 1111 1111 1111",
        "192.168.1.20", "fe80::1", "2001:db8::ff00:42:8329", "marie@orange.fr", "a@b",
        "www.example.com", "https://x.org/a", "Get Lucky", " ", ".", ":", "@", "0", "12",
        "Zone A", "06 12 34 56 78", "+33", "(0)6", "FR", "76", "2 55 08 14 168 025 38",
        "255081416802538", "(591)341-7776", "x123",
    ]
)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(_pieces, max_size=6), sep=st.sampled_from(["", " ", ", "]))
def test_gates_never_change_results(parts: list[str], sep: str) -> None:
    text = sep.join(parts)
    for (gated, entity), (opened, _) in zip(GATED, OPEN, strict=True):
        ours = {(r.start, r.end, r.score) for r in gated.analyze(text, [entity])}
        theirs = {(r.start, r.end, r.score) for r in opened.analyze(text, [entity])}
        assert ours == theirs, (type(gated).__name__, text)


def test_gated_recognizers_match_presidio_stock_ones() -> None:
    text = "IBAN FR76 3000 6000 0112 3456 7890 189, card 4111 1111 1111 1111, ip 192.168.1.20"
    for ours, stock, entity in [
        (GatedIbanRecognizer(supported_language="en"), IbanRecognizer(), "IBAN_CODE"),
        (GatedCreditCardRecognizer(supported_language="en"), CreditCardRecognizer(), "CREDIT_CARD"),
        (GatedIpRecognizer(supported_language="en"), IpRecognizer(), "IP_ADDRESS"),
    ]:
        a = {(r.start, r.end, r.score) for r in ours.analyze(text, [entity])}
        b = {(r.start, r.end, r.score) for r in stock.analyze(text, [entity])}
        assert a == b and a, entity


def test_nir_gate_needs_thirteen_digits() -> None:
    recognizer = FrNirRecognizer("fr")
    assert not recognizer.might_match("2 55 08 14 168")
    assert recognizer.might_match("2 55 08 14 168 025 38")
