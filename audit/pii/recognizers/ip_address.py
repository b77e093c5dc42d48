"""IPv4 / IPv6 addresses (presidio's IpRecognizer, validated with :mod:`ipaddress`)."""

from __future__ import annotations

from presidio_analyzer import EntityRecognizer
from presidio_analyzer.predefined_recognizers import IpRecognizer

from audit.pii.recognizers._gate import IPV4_HINT, GatedPatternMixin
from audit.pii.recognizers._registry import RecognizerConfig, recognizer

__all__ = ["GatedIpRecognizer"]

_CONTEXT = {"fr": ["ip", "adresse", "ipv4", "ipv6"], "en": ["ip", "address", "ipv4", "ipv6"]}


class GatedIpRecognizer(GatedPatternMixin, IpRecognizer):
    """presidio's IP recognizer; an address needs two colons (v6) or digit.digit.digit (v4)."""

    def might_match(self, text: str) -> bool:
        return text.count(":") >= 2 or IPV4_HINT.search(text) is not None


@recognizer("ip_address")
def build(language: str, config: RecognizerConfig) -> EntityRecognizer:
    return GatedIpRecognizer(
        supported_language=language,
        context=_CONTEXT.get(language, _CONTEXT["en"]),
        name=f"IpRecognizer_{language}",
    )
