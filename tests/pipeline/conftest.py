"""Fixtures for the pipeline tests: event and policy files written to tmp, real speech, homes."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pipeline_helpers import SET_START, espeak, event_doc, to_toml

from flowaudit.config import Settings
from flowaudit.runtime import Runtime, initialise_home, open_runtime
from retention.policy import Policy, load_policy, policy_dir


@pytest.fixture
def write_event(tmp_path: Path) -> Callable[..., Path]:
    """``write_event(**overrides)``: keys like ``capture__synthetic_script="steady"``."""
    counter = iter(range(1000))

    def write(doc: dict[str, Any] | None = None, **overrides: Any) -> Path:
        path = tmp_path / f"event-{next(counter)}.toml"
        path.write_text(to_toml(doc if doc is not None else event_doc(**overrides)),
                        encoding="utf-8")
        return path

    return write


@pytest.fixture
def policy_variant(tmp_path: Path) -> Callable[..., Policy]:
    """``policy_variant("tiktok-2026", selection__scorer="x")``: a shipped policy, edited."""
    counter = iter(range(1000))

    def make(base: str, **changes: Any) -> Policy:
        doc = tomllib.loads((policy_dir() / f"{base}.toml").read_text(encoding="utf-8"))
        for dotted, v in changes.items():
            section, key = dotted.split("__")
            doc[section][key] = v
        doc["policy"]["name"] = f"{base}-variant"
        path = tmp_path / f"policy-{next(counter)}.toml"
        path.write_text(to_toml(doc), encoding="utf-8")
        return load_policy(path)

    return make


@pytest.fixture
def pipeline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for var in ("FLOWAUDIT_HOME", "FLOWAUDIT_DB_URL", "FLOWAUDIT_MASTER_KEY", "FLOWAUDIT_NOW"):
        monkeypatch.delenv(var, raising=False)
    return initialise_home(tmp_path / "home")


@pytest.fixture
def pipeline_runtime(pipeline_home: Settings) -> Iterator[Runtime]:
    rt = open_runtime(pipeline_home, SET_START)
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def french_speech() -> np.ndarray:
    return espeak(
        "Bonjour, je m'appelle Camille. Je te donne mon numéro: zéro six, douze, trente-quatre, "
        "cinquante-six, soixante-dix-huit. Rappelle-moi demain après le concert, d'accord?"
    )
