"""IBANs (presidio's IbanRecognizer: per-country shape plus the mod-97 checksum).

presidio's recognizer already handles French IBANs written in groups of four or in one piece
(``FR76 3000 6000 0112 3456 7890 189``); only the context words are adapted per language and
a gate skips texts without "two capitals then two digits", which every IBAN starts with.
"""

from __future__ import annotations

from presidio_analyzer import EntityRecognizer
from presidio_analyzer.predefined_recognizers import IbanRecognizer

from audit.pii.recognizers._gate import IBAN_HINT, GatedPatternMixin
from audit.pii.recognizers._registry import RecognizerConfig, recognizer

__all__ = ["GatedIbanRecognizer"]

_CONTEXT = {
    "fr": ["iban", "rib", "banque", "bancaire", "compte", "virement", "rembourser"],
    "en": ["iban", "bank", "account", "transfer", "refund", "transaction"],
}


class GatedIbanRecognizer(GatedPatternMixin, IbanRecognizer):
    """presidio's IBAN recognizer behind a cheap gate."""

    def might_match(self, text: str) -> bool:
        return IBAN_HINT.search(text) is not None


@recognizer("iban")
def build(language: str, config: RecognizerConfig) -> EntityRecognizer:
    return GatedIbanRecognizer(
        supported_language=language,
        context=_CONTEXT.get(language, _CONTEXT["en"]),
        name=f"IbanRecognizer_{language}",
    )
