"""What mypy catches: a misspelt policy key, a key provider missing part of the protocol.

One mypy run over small files written to a temp dir (and the in-memory provider the store
tests use), with its own cache so the answer does not depend on an earlier run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[2]

SNIPPETS = {
    "misspelt.py": """
        from retention.policy import load_policy

        policy = load_policy("privacy-by-default")
        keep: bool = policy.capture.stor_speech
        """,
    "spelt_right.py": """
        from datetime import timedelta

        from retention.policy import load_policy

        policy = load_policy("privacy-by-default")
        keep: bool = policy.capture.store_speech
        raw: timedelta | None = policy.retention.raw_audio
        qis: list[str] = policy.reid.quasi_identifiers
        control: str = policy.selection.artist_control
        """,
    "wrong_type.py": """
        from retention.policy import load_policy

        policy = load_policy("privacy-by-default")
        k: str = policy.reid.k_min
        """,
    "partial_provider.py": """
        from datetime import datetime

        from retention.keys import KeyProvider

        class NoSubjectAnswer:
            def bucket_key(self, bucket_id: str, *, create: bool = False) -> bytes:
                return b"k" * 32

            def subject_key(self, pseudonym: str, *, create: bool = False) -> bytes:
                return b"s" * 32

            def destroy_bucket_keys(self, bucket_ids: list[str], at: datetime) -> list[str]:
                return bucket_ids

            def destroy_subject_key(self, pseudonym: str, at: datetime) -> bool:
                return True

            def is_bucket_destroyed(self, bucket_id: str) -> bool:
                return False

            def flush(self) -> None:
                pass

        provider: KeyProvider = NoSubjectAnswer()
        """,
}


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """file name -> the lines (errors and notes) mypy reports for it."""
    where = tmp_path_factory.mktemp("snippets")
    files = []
    for name, text in SNIPPETS.items():
        lines = [line[8:] for line in text.splitlines()]
        (where / name).write_text("\n".join(lines).strip() + "\n")
        files.append(str(where / name))
    files.append(str(ROOT / "tests" / "foundation" / "memory_keys.py"))
    cwd = os.getcwd()
    os.chdir(ROOT)  # mypy finds our packages from the working directory
    try:
        out, err, status = api.run(
            [
                "--config-file",
                str(ROOT / "pyproject.toml"),
                "--cache-dir",
                str(where / ".mypy_cache"),
                "--no-error-summary",
                "--hide-error-context",
                *files,
            ]
        )
    finally:
        os.chdir(cwd)
    assert status in (0, 1), err or out  # 2 would be mypy itself failing
    report: dict[str, list[str]] = {Path(f).name: [] for f in files}
    for line in out.splitlines():
        name = Path(line.split(":", 1)[0]).name
        if name in report:
            report[name].append(line)
    return report


def _errors(lines: list[str]) -> list[str]:
    return [line for line in lines if ": error:" in line]


@pytest.mark.slow
def test_a_misspelt_policy_key_is_a_mypy_error(mypy_report: dict[str, list[str]]) -> None:
    [error] = _errors(mypy_report["misspelt.py"])
    assert '"CaptureSection" has no attribute "stor_speech"' in error
    assert mypy_report["spelt_right.py"] == []


@pytest.mark.slow
def test_a_policy_value_has_its_type(mypy_report: dict[str, list[str]]) -> None:
    [error] = _errors(mypy_report["wrong_type.py"])
    assert 'Incompatible types in assignment (expression has type "int"' in error


@pytest.mark.slow
def test_a_provider_must_answer_is_subject_destroyed(mypy_report: dict[str, list[str]]) -> None:
    lines = mypy_report["partial_provider.py"]
    [error] = _errors(lines)
    assert '"NoSubjectAnswer", variable has type "KeyProvider"' in error
    notes = [line.split(": note:", 1)[1].strip() for line in lines if ": note:" in line]
    assert '"NoSubjectAnswer" is missing following "KeyProvider" protocol member:' in notes
    assert "is_subject_destroyed" in notes
    assert mypy_report["memory_keys.py"] == []  # the test provider implements all of it
