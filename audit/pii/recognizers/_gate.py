"""Cheap pre-checks that let a recognizer skip a text its patterns cannot match.

Most event texts ("encore !", "play Get Lucky") hold no digit, no ``@`` and no dot, yet
presidio runs every regex of every recognizer over each of them. A gate is a constant-time-ish
test that is *necessary* for a match (e.g. an IBAN needs two capitals followed by two digits),
so skipping on a failed gate never changes the results — only the time.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["GatedPatternMixin", "digit_count"]


def digit_count(text: str) -> int:
    """Number of digit characters (as ``str.isdigit`` counts them)."""
    return sum(map(str.isdigit, text))


class GatedPatternMixin:
    """Put before a PatternRecognizer base: ``analyze`` returns [] when ``might_match`` fails."""

    def might_match(self, text: str) -> bool:
        raise NotImplementedError

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: Any = None,
        regex_flags: int | None = None,
    ) -> list[Any]:
        if not self.might_match(text):
            return []
        return super().analyze(text, entities, nlp_artifacts, regex_flags)  # type: ignore[misc]


IBAN_HINT = re.compile(r"[A-Z]{2}\d{2}")
# every URL pattern of presidio needs "<label char>.<tld>" with a TLD of 2+ letters
URL_HINT = re.compile(r"[a-z0-9.\-]\.[a-z]{2}", re.IGNORECASE)
IPV4_HINT = re.compile(r"\d\.\d+\.\d")
