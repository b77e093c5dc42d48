"""Numbers *written like* phone numbers, even where libphonenumber calls them unallocated.

libphonenumber's VALID check (used by :mod:`.phone`) rejects numbers in unassigned ranges: a
US area code that does not exist yet, the UK's reserved drama ranges. People still write such
numbers, and in a privacy scan a miss costs more than a flag, so two shapes are accepted:

* international: ``+`` or ``00``, a country code, then 7–13 more digits in groups, an optional
  ``(0)`` and extension (``+44(0)115 4960914``, ``+1-537-640-6812x41586``) — score 0.6;
* North American: ``(591)341-7776``, ``206.269.0743``, ``797-386-9073x6625`` — three, three
  and four digits with separators — score 0.5;
* national with a trunk 0, grouped: ``(01632) 960128``, ``0115 496 0400`` — score 0.5.

A bare run of 10–11 digits scores 0.3 and so only counts next to a context word ("call",
"tél").
"""

from __future__ import annotations

import re

from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer

from audit.pii.recognizers._gate import GatedPatternMixin, digit_count
from audit.pii.recognizers._registry import RecognizerConfig, context_for, recognizer

__all__ = ["PhoneShapeRecognizer"]

_EXT = r"(?:[ ]?(?:x|ext\.?|poste)[ ]?\d{1,5})?"
_INTERNATIONAL = (
    r"(?<![\w+])(?:\+|00)[ ]?[1-9]\d{0,2}(?:[ .\-]?\(0\))?(?:[ .\-]?\(?\d{1,5}\)?){2,6}"
    + _EXT
    + r"(?![\w])"
)
_NANP = (
    r"(?<![\w+(])(?:\(\d{3}\)[ ]?|\d{3}[.\-])\d{3}[.\-]\d{4}" + _EXT + r"(?![\w])"
)
_TRUNK = (
    r"(?<![\w+(])(?:\(0\d{2,4}\)[ ]?|0\d{2,4}[ \-])\d{3,4}[ \-]?\d{3,4}" + _EXT + r"(?![\w])"
)
_BARE = r"(?<![\w+])\d{10,11}(?![\w])"
_PLAIN_DIGITS = re.compile(r"\d")


class PhoneShapeRecognizer(GatedPatternMixin, PatternRecognizer):
    """Phone-shaped numbers; the digit count (8–15 without extension) is checked."""

    PATTERNS = [
        Pattern("phone shape, international", _INTERNATIONAL, 0.6),
        Pattern("phone shape, North American", _NANP, 0.5),
        Pattern("phone shape, national with trunk 0", _TRUNK, 0.5),
        Pattern("phone shape, 10-11 bare digits", _BARE, 0.3),
    ]
    CONTEXT_BY_LANGUAGE = {
        "fr": [
            "tél", "tel", "téléphone", "phone", "portable", "mobile", "numéro", "appeler",
            "appelle",
            "appelez", "rappeler", "rappelle", "joindre", "sms", "whatsapp",
        ],
        "en": [
            "phone", "telephone", "mobile", "cell", "call", "number", "text", "ring",
            "reach", "whatsapp",
        ],
    }

    def __init__(self, supported_language: str = "en", supported_entity: str = "PHONE_NUMBER"):
        super().__init__(
            supported_entity=supported_entity,
            patterns=self.PATTERNS,
            context=context_for(self.CONTEXT_BY_LANGUAGE, supported_language),
            supported_language=supported_language,
            name=f"PhoneShapeRecognizer_{supported_language}",
        )

    def might_match(self, text: str) -> bool:
        return digit_count(text) >= 8

    def validate_result(self, pattern_text: str) -> bool | None:
        # None keeps the pattern's score (presidio raises True to 1.0); False drops the match
        main = re.split(r"(?:x|ext\.?|poste)", pattern_text, maxsplit=1, flags=re.I)[0]
        return None if 8 <= len(_PLAIN_DIGITS.findall(main)) <= 15 else False


@recognizer("phone_shapes")
def build(language: str, config: RecognizerConfig) -> EntityRecognizer:
    return PhoneShapeRecognizer(supported_language=language)
