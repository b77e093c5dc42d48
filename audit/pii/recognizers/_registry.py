"""The PII recognizer registry: one small factory per recognizer, one recognizer per module.

A recognizer module registers a factory that builds its presidio recognizer for one language::

    @recognizer("fr_nir")
    def build(language: str, config: RecognizerConfig) -> EntityRecognizer | None:
        return FrNirRecognizer(supported_language=language)

Returning ``None`` means "not for this language". Every module in ``audit/pii_recognizers/``
whose name does not start with ``_`` is imported by :func:`build_recognizers`, so adding a
recognizer touches one file.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from presidio_analyzer import EntityRecognizer

__all__ = [
    "RecognizerConfig",
    "Factory",
    "recognizer",
    "recognizer_names",
    "build_recognizers",
    "DEFAULT_PHONE_REGIONS",
    "context_for",
]

# libphonenumber (presidio's PhoneRecognizer) is off by default. The shape recognizers
# (fr_phone, phone_shapes) find every number of the labelled corpus on their own; adding
# libphonenumber for FR/GB/US found nothing more there and cost a quarter of the scan time (one
# matcher pass per region over every text with seven digits). Turn it on for stricter,
# validity-checked national formats of other countries: Scanner(phone_regions=("DE", "IT")).
DEFAULT_PHONE_REGIONS: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecognizerConfig:
    """Settings shared by the factories (kept tiny: defaults live in the recognizers)."""

    phone_regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS  # for libphonenumber; () = off


def context_for(table: dict[str, list[str]], language: str) -> list[str]:
    """A recognizer's context words for ``language`` (English ones for other languages)."""
    return list(table.get(language) or table["en"])


Factory = Callable[[str, RecognizerConfig], "EntityRecognizer | None"]
_FACTORIES: dict[str, Factory] = {}


def recognizer(name: str) -> Callable[[Factory], Factory]:
    """Register ``factory(language, config)`` under ``name``."""

    def decorate(factory: Factory) -> Factory:
        existing = _FACTORIES.get(name)
        if existing is not None and existing.__module__ != factory.__module__:
            raise ValueError(f"PII recognizer {name!r} registered twice ({existing.__module__})")
        _FACTORIES[name] = factory
        return factory

    return decorate


def _load() -> None:
    package_dir = Path(__file__).resolve().parent
    for info in sorted(pkgutil.iter_modules([str(package_dir)]), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__package__}.{info.name}")


def recognizer_names() -> list[str]:
    """Names of every registered recognizer."""
    _load()
    return sorted(_FACTORIES)


def build_recognizers(
    languages: Sequence[str], config: RecognizerConfig | None = None
) -> list[EntityRecognizer]:
    """Fresh recognizer instances for every language (presidio binds one language each)."""
    _load()
    config = config or RecognizerConfig()
    built: list[EntityRecognizer] = []
    for language in languages:
        for name in sorted(_FACTORIES):
            instance = _FACTORIES[name](language, config)
            if instance is not None:
                built.append(instance)
    return built
