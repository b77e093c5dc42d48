"""Validity-checked national phone formats via libphonenumber (presidio's PhoneRecognizer).

Opt-in (``Scanner(phone_regions=("DE", "IT"))``; off by default, see ``_registry``). Two
changes to presidio's recognizer: the regions are explicit (older presidio releases had the
typo "FE" instead of "FR"), and a text with fewer than seven digits is skipped before any
libphonenumber matcher runs — the matchers are the slowest part of an analysis (presidio
#1094) and most event texts hold no digits at all. A number libphonenumber calls *valid* for a
region scores 0.6 (presidio: 0.4), so it clears the default threshold without context words.
"""

from __future__ import annotations

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

from audit.pii.recognizers._gate import digit_count
from audit.pii.recognizers._registry import RecognizerConfig, context_for, recognizer

__all__ = ["GatedPhoneRecognizer", "MIN_DIGITS"]

MIN_DIGITS = 7  # the shortest numbers libphonenumber validates in our regions


class GatedPhoneRecognizer(PhoneRecognizer):
    """libphonenumber matching, skipped for texts that cannot hold a phone number."""

    SCORE = 0.6
    CONTEXT_BY_LANGUAGE = {
        "fr": [
            "tél", "tel", "téléphone", "phone", "portable", "mobile", "numéro", "appeler",
            "rappeler",
        ],
        "en": ["phone", "telephone", "mobile", "cell", "call", "number", "text"],
    }

    def __init__(self, supported_language: str, supported_regions: tuple[str, ...]):
        super().__init__(
            context=context_for(self.CONTEXT_BY_LANGUAGE, supported_language),
            supported_language=supported_language,
            supported_regions=supported_regions,
            leniency=1,  # VALID: the number must be a real allocation for its region
            name=f"GatedPhoneRecognizer_{supported_language}",
        )

    def might_match(self, text: str) -> bool:
        return digit_count(text) >= MIN_DIGITS

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        if not self.might_match(text):
            return []
        return super().analyze(text, entities, nlp_artifacts)  # type: ignore[arg-type]


@recognizer("phone")
def build(language: str, config: RecognizerConfig) -> EntityRecognizer | None:
    if not config.phone_regions:
        return None
    return GatedPhoneRecognizer(language, config.phone_regions)
