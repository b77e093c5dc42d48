"""French phone numbers: ``06 12 34 56 78``, ``06.12.34.56.78``, ``+33 6 12 34 56 78``,
``+33 (0)6 12 34 56 78``, ``0033 612345678``.

libphonenumber (presidio's PhoneRecognizer) already knows France, but only scores a match 0.4
and misses some everyday spellings (dots, a doubled ``(0)``). A French number has a fixed shape
— a trunk ``0`` or ``+33`` / ``0033``, then nine digits starting 1–9 — so a pattern with
consistent two-digit groups is both precise and fast.
"""

from __future__ import annotations

from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer

from audit.pii.recognizers._gate import GatedPatternMixin, digit_count
from audit.pii.recognizers._registry import RecognizerConfig, context_for, recognizer

__all__ = ["FrPhoneRecognizer"]

_GROUPS = r"(?:[ .\-]?\d{2}){4}"
_END = r"(?![\w]|[ .\-]\d)"  # not followed by a further digit group: "06 12 34 56 78 90"
_NATIONAL = r"(?<![\w+])0[1-9]" + _GROUPS + _END
_INTERNATIONAL = r"(?<![\w+])(?:\+|00)[ ]?33[ .\-]?(?:\(0\)[ .\-]?)?[1-9]" + _GROUPS + _END


class FrPhoneRecognizer(GatedPatternMixin, PatternRecognizer):
    """French numbers by shape; the score rises with context words (tél, portable, call …)."""

    PATTERNS = [
        Pattern("FR phone, +33", _INTERNATIONAL, 0.7),
        Pattern("FR phone, national", _NATIONAL, 0.6),
    ]
    CONTEXT_BY_LANGUAGE = {
        "fr": [
            "tél", "tel", "téléphone", "phone", "portable", "mobile", "numéro", "appeler",
            "appelle",
            "rappeler", "rappelle", "joindre", "sms", "whatsapp",
        ],
        "en": ["phone", "telephone", "mobile", "cell", "call", "number", "text", "whatsapp"],
    }

    def __init__(self, supported_language: str = "fr", supported_entity: str = "PHONE_NUMBER"):
        super().__init__(
            supported_entity=supported_entity,
            patterns=self.PATTERNS,
            context=context_for(self.CONTEXT_BY_LANGUAGE, supported_language),
            supported_language=supported_language,
            name=f"FrPhoneRecognizer_{supported_language}",
        )

    def might_match(self, text: str) -> bool:
        return digit_count(text) >= 10  # 0 + 9 digits, or 33 + 9 digits


@recognizer("fr_phone")
def build(language: str, config: RecognizerConfig) -> EntityRecognizer:
    return FrPhoneRecognizer(supported_language=language)
