"""PERSON (plus LOCATION and ORGANIZATION, when asked for) from the spaCy NER.

The entities come from the NLP engine's pass over the text (``nlp.pipe`` in a batch); this
recognizer only turns them into results. spaCy's small models give no calibrated confidence,
so every entity scores a fixed 0.85 (presidio's ``ner_strength``); the allow-list of event
vocabulary and the rule "no NER on numeric or ID-like fields" in :mod:`audit.pii.scanner` cut the
false positives that small models are known for (presidio #786, #1173, #1352).
"""

from __future__ import annotations

from presidio_analyzer import EntityRecognizer
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

from audit.pii.recognizers._registry import RecognizerConfig, recognizer

__all__ = ["NER_ENTITIES", "build"]

NER_ENTITIES = ["PERSON", "LOCATION", "ORGANIZATION"]


@recognizer("person")
def build(language: str, config: RecognizerConfig) -> EntityRecognizer:
    return SpacyRecognizer(
        supported_language=language,
        supported_entities=list(NER_ENTITIES),
        name=f"SpacyRecognizer_{language}",
    )
