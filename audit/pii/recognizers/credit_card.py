"""Payment card numbers (presidio's CreditCardRecognizer: issuer prefixes plus Luhn)."""

from __future__ import annotations

from presidio_analyzer import EntityRecognizer
from presidio_analyzer.predefined_recognizers import CreditCardRecognizer

from audit.pii.recognizers._gate import GatedPatternMixin, digit_count
from audit.pii.recognizers._registry import RecognizerConfig, recognizer

__all__ = ["GatedCreditCardRecognizer"]

_CONTEXT = {
    "fr": ["carte", "bancaire", "cb", "visa", "mastercard", "paiement", "payer"],
    "en": ["card", "credit", "debit", "visa", "mastercard", "amex", "payment", "pay"],
}


class GatedCreditCardRecognizer(GatedPatternMixin, CreditCardRecognizer):
    """presidio's card recognizer, skipped for texts with fewer than 12 digits."""

    def might_match(self, text: str) -> bool:
        return digit_count(text) >= 12


@recognizer("credit_card")
def build(language: str, config: RecognizerConfig) -> EntityRecognizer:
    return GatedCreditCardRecognizer(
        supported_language=language,
        context=_CONTEXT.get(language, _CONTEXT["en"]),
        name=f"CreditCardRecognizer_{language}",
    )
