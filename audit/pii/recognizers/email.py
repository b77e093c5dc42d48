"""Email addresses, validated offline against the public suffix list bundled with tldextract.

presidio's EmailRecognizer validates each match with ``tldextract.extract()``, whose default
extractor fetches the public suffix list from the internet on first use and hangs until a
timeout when there is no network (presidio #1205). Here the extractor is built with
``suffix_list_urls=()`` (never fetch; use the snapshot shipped in the tldextract wheel) and
``cache_dir=None`` (never write a cache file), once per process.
"""

from __future__ import annotations

import functools

import tldextract
from presidio_analyzer import EntityRecognizer
from presidio_analyzer.predefined_recognizers import EmailRecognizer

from audit.pii.recognizers._gate import GatedPatternMixin
from audit.pii.recognizers._registry import RecognizerConfig, recognizer

__all__ = ["OfflineEmailRecognizer", "offline_extractor"]


@functools.cache
def offline_extractor() -> tldextract.TLDExtract:
    """A tldextract extractor that uses only the bundled suffix-list snapshot."""
    return tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)


class OfflineEmailRecognizer(GatedPatternMixin, EmailRecognizer):
    """presidio's email regex; the domain must end in a known public suffix (offline)."""

    CONTEXT_BY_LANGUAGE = {
        "fr": ["email", "e-mail", "mail", "courriel", "adresse", "écrire", "écris"],
        "en": ["email", "e-mail", "mail", "address", "write"],
    }

    def __init__(self, supported_language: str = "en"):
        super().__init__(
            context=self.CONTEXT_BY_LANGUAGE.get(supported_language, ["email"]),
            supported_language=supported_language,
            name=f"OfflineEmailRecognizer_{supported_language}",
        )

    def might_match(self, text: str) -> bool:
        return "@" in text

    def validate_result(self, pattern_text: str) -> bool:
        return offline_extractor()(pattern_text).fqdn != ""


@recognizer("email")
def build(language: str, config: RecognizerConfig) -> EntityRecognizer:
    return OfflineEmailRecognizer(supported_language=language)
