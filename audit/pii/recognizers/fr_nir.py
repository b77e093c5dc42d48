"""French social security number (NIR, "numéro de sécurité sociale") with its control key.

Presidio has no French recognizers; this follows the shape of the open presidio PR #2285.
A NIR is 13 characters plus a 2-digit key::

    s  yy mm dd ccc ooo kk     sex, birth year, month, department, commune, order, key
    1  85 05 78 006 084 36

key = 97 − (N mod 97), where N is the 13-character body read as a number after replacing the
Corsican departments 2A by 19 and 2B by 18. The regex finds candidates written with or without
single spaces, dots or dashes between the groups; :func:`is_valid_nir` keeps only those whose
key is right, so a random 15-digit number passes with probability ~1/97 only.
"""

from __future__ import annotations

import re

from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer

from audit.pii.recognizers._gate import GatedPatternMixin, digit_count
from audit.pii.recognizers._registry import RecognizerConfig, context_for, recognizer

__all__ = ["FrNirRecognizer", "nir_key", "is_valid_nir", "normalise_nir"]

_SEP = r"[ .\-]?"
_REGEX = (
    r"(?<![\w])"
    r"[1-478]" + _SEP +  # sex (3/4/7/8: provisional numbers)
    r"\d{2}" + _SEP +  # year of birth
    r"(?:0[1-9]|1[0-2]|[2-9]\d)" + _SEP +  # month (20, 30-42, 50-99: unknown or fictitious)
    r"(?:(?:\d{2}|2[AB])" + _SEP + r"\d{3}|\d{3}" + _SEP + r"\d{2})" + _SEP +  # dept+commune
    r"\d{3}" + _SEP +  # order number
    r"\d{2}"  # control key
    r"(?![\w])"
)
_BODY = re.compile(r"^[1-478]\d{4}(?:\d{2}|2[AB])\d{6}$")
_CORSICA = {"2A": "19", "2B": "18"}


def normalise_nir(text: str) -> str:
    """The NIR without separators, upper-case (2a → 2A)."""
    return re.sub(r"[ .\-]", "", text).upper()


def nir_key(body: str) -> int:
    """Control key of a 13-character NIR body (Corsica: 2A → 19, 2B → 18)."""
    body = normalise_nir(body)
    if not _BODY.match(body):
        raise ValueError("a NIR body is 13 characters: 1 sex digit, 4 digits, dept, 6 digits")
    digits = body[:5] + _CORSICA.get(body[5:7], body[5:7]) + body[7:]
    return 97 - int(digits) % 97


def is_valid_nir(text: str) -> bool:
    """True if ``text`` is a well-formed 15-character NIR whose key matches its body."""
    value = normalise_nir(text)
    if len(value) != 15 or not value[13:].isdigit():
        return False
    try:
        return nir_key(value[:13]) == int(value[13:])
    except ValueError:
        return False


class FrNirRecognizer(GatedPatternMixin, PatternRecognizer):
    """NIR candidates by regex, kept only when the control key checks out (score 1.0)."""

    PATTERNS = [Pattern("NIR (weak, key checked)", _REGEX, 0.5)]
    CONTEXT_BY_LANGUAGE = {
        "fr": ["sécurité", "sociale", "sécu", "nir", "insee", "carte", "vitale", "numéro"],
        "en": ["social", "security", "nir", "insee", "insurance", "number"],
    }

    def __init__(self, supported_language: str = "fr", supported_entity: str = "FR_NIR"):
        super().__init__(
            supported_entity=supported_entity,
            patterns=self.PATTERNS,
            context=context_for(self.CONTEXT_BY_LANGUAGE, supported_language),
            supported_language=supported_language,
            name=f"FrNirRecognizer_{supported_language}",
        )

    def might_match(self, text: str) -> bool:
        return digit_count(text) >= 13

    def validate_result(self, pattern_text: str) -> bool:
        return is_valid_nir(pattern_text)


@recognizer("fr_nir")
def build(language: str, config: RecognizerConfig) -> EntityRecognizer:
    return FrNirRecognizer(supported_language=language)
