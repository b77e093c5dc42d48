"""The scanner works with the network blocked: no suffix-list fetch, no model download.

Every way out (``socket.connect``, ``create_connection``, ``getaddrinfo``) is replaced by a
function that records the attempt and raises. A fresh engine is built *inside* the block, so
loading spaCy and the recognizers is covered too, not only scanning.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import spacy.cli
import tldextract

from audit.pii._engine import build_analyzer
from audit.pii.recognizers.email import offline_extractor
from audit.pii.scanner import PiiFinding, Scanner
from retention.errors import ConfigError

TEXTS = [
    "Écris-moi à marie.dupont@orange.fr ou sur https://instagram.com/marie.dupont",
    "Mail me at james.smith@example.co.uk, photos on www.jamessmith-photos.com",
    "Mon profil : soundcloud.com/dj-marie, tél 06 12 34 56 78",
]


class Blocked:
    def __init__(self) -> None:
        self.attempts: list[str] = []

    def make(self, name: str) -> Any:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            self.attempts.append(name)
            raise OSError(f"network blocked in tests ({name})")

        return refuse


@pytest.fixture(scope="module")
def offline() -> Iterator[tuple[Blocked, list[PiiFinding]]]:
    blocked = Blocked()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", blocked.make("socket.connect"))
        mp.setattr(socket.socket, "connect_ex", blocked.make("socket.connect_ex"))
        mp.setattr(socket, "create_connection", blocked.make("create_connection"))
        mp.setattr(socket, "getaddrinfo", blocked.make("getaddrinfo"))
        mp.setattr(spacy.cli, "download", blocked.make("spacy.cli.download"))
        offline_extractor.cache_clear()  # the extractor is built under the block as well
        scanner = Scanner(analyzer=build_analyzer())  # a fresh engine, not the shared one
        findings = scanner.scan_texts(TEXTS)
        yield blocked, findings


def test_emails_and_urls_are_found_offline(offline: tuple[Blocked, list[PiiFinding]]) -> None:
    _, findings = offline
    got = {(f.row, f.entity_type, f.text) for f in findings}
    assert (0, "EMAIL_ADDRESS", "marie.dupont@orange.fr") in got
    assert (0, "URL", "https://instagram.com/marie.dupont") in got
    assert (1, "EMAIL_ADDRESS", "james.smith@example.co.uk") in got
    assert (1, "URL", "www.jamessmith-photos.com") in got
    assert (2, "URL", "soundcloud.com/dj-marie") in got
    assert (2, "PHONE_NUMBER", "06 12 34 56 78") in got


def test_nothing_tried_to_reach_the_network(offline: tuple[Blocked, list[PiiFinding]]) -> None:
    blocked, _ = offline
    assert blocked.attempts == []


def test_the_block_catches_a_suffix_list_fetch(tmp_path: Path) -> None:
    """Control: tldextract's default extractor, with an empty cache, does try to go online."""
    blocked = Blocked()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", blocked.make("socket.connect"))
        mp.setattr(socket, "create_connection", blocked.make("create_connection"))
        mp.setattr(socket, "getaddrinfo", blocked.make("getaddrinfo"))
        stock = tldextract.TLDExtract(cache_dir=str(tmp_path), cache_fetch_timeout=1)
        stock("someone@example.org")  # falls back to the snapshot after the failed fetch
    assert blocked.attempts, "the stock extractor should have tried to fetch the list"


def test_a_missing_model_is_a_config_error_not_a_download(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(spacy.cli, "download", lambda *a, **k: calls.append(a))
    with pytest.raises(ConfigError, match="not installed.*never downloads"):
        build_analyzer(["fr"], models={"fr": "xx_flowaudit_missing_model"})
    assert calls == []


def test_a_language_without_a_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no spaCy model configured for language 'de'"):
        build_analyzer(["de"])
