"""Fixtures for the PII tests: one loaded scanner and one labelled corpus per session.

Loading the spaCy model takes seconds, so every test shares the engine (as the library does).
"""

from __future__ import annotations

import pytest

from audit.pii.scanner import Scanner, get_scanner
from tests.pii.pii_corpus import LabelledText, make_corpus


@pytest.fixture(scope="session")
def scanner() -> Scanner:
    """The library's default scanner, loaded once."""
    return get_scanner().load()


@pytest.fixture(scope="session")
def corpus() -> list[LabelledText]:
    """600 labelled French / English event texts (seeded Faker)."""
    return make_corpus(600, seed=7)
