"""URLs by regex (presidio's patterns), with French context words.

presidio 2.2.366's UrlRecognizer is regex-only and fetches nothing; this subclass pins that
down (``validate_result`` never calls tldextract) so a future presidio that adds a suffix-list
check cannot bring a network fetch back in. The network-blocked test proves it.
"""

from __future__ import annotations

from typing import Any

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import UrlRecognizer

from audit.pii.recognizers._gate import URL_HINT, GatedPatternMixin
from audit.pii.recognizers._registry import RecognizerConfig, recognizer

__all__ = ["OfflineUrlRecognizer"]

_TRAILING = ".,;:!?)»\"'"


class OfflineUrlRecognizer(GatedPatternMixin, UrlRecognizer):
    """URL patterns only; no validation that could reach the network."""

    CONTEXT_BY_LANGUAGE = {
        "fr": ["url", "lien", "site", "profil", "insta", "instagram", "page"],
        "en": ["url", "website", "link", "profile", "insta", "instagram", "page"],
    }

    def __init__(self, supported_language: str = "en"):
        super().__init__(
            context=self.CONTEXT_BY_LANGUAGE.get(supported_language, ["url"]),
            supported_language=supported_language,
            name=f"OfflineUrlRecognizer_{supported_language}",
        )

    def might_match(self, text: str) -> bool:
        return URL_HINT.search(text) is not None

    def validate_result(self, pattern_text: str) -> None:
        return None  # keep the pattern's own score

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: Any = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        """presidio's matches minus trailing punctuation ("…/dj-marie," → "…/dj-marie")."""
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        for result in results:
            while result.end > result.start and text[result.end - 1] in _TRAILING:
                result.end -= 1
        return [r for r in results if r.end > r.start]


@recognizer("url")
def build(language: str, config: RecognizerConfig) -> EntityRecognizer:
    return OfflineUrlRecognizer(supported_language=language)
