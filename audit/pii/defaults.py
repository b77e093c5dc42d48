"""The PII scanner's defaults, importable without presidio or spaCy.

The CLI names these in its ``--help`` text; keeping them apart from the engine lets every
``flowaudit`` command start without loading the NLP stack (about a second per process).
"""

from __future__ import annotations

__all__ = [
    "STRUCTURED_ENTITIES",
    "NER_ENTITIES",
    "DEFAULT_ENTITIES",
    "DEFAULT_THRESHOLD",
    "LANGUAGE_CHOICES",
    "FREE_TEXT_KINDS",
]

STRUCTURED_ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "FR_NIR",
    "IBAN_CODE",
    "CREDIT_CARD",
    "IP_ADDRESS",
)
NER_ENTITIES: tuple[str, ...] = ("PERSON", "LOCATION", "ORGANIZATION")
# LOCATION and ORGANIZATION are off by default: a venue, a city or a label is not personal
# data on its own, and at an event they are mostly vocabulary. Ask for them explicitly.
DEFAULT_ENTITIES: tuple[str, ...] = ("PERSON", *STRUCTURED_ENTITIES, "URL")
DEFAULT_THRESHOLD = 0.5
LANGUAGE_CHOICES = ("fr", "en", "auto")
#: metadata kinds of the store that hold free text (scanned by default)
FREE_TEXT_KINDS: tuple[str, ...] = (
    "track_request",
    "request",
    "note",
    "comment",
    "message",
    "dedication",
)
