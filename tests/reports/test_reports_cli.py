"""`flowaudit report`: files written per kind and format; bad input gives one line, exit 1."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from audit.reports import schema_for
from flowaudit.cli import app
from flowaudit.runtime import Runtime

from .conftest import SCENE_EVENT, Built, build_scene

runner = CliRunner()


@pytest.fixture
def scene_home(sqlite_runtime: Runtime, tmp_path: Path) -> Built:
    return build_scene(sqlite_runtime, tmp_path)


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _base(b: Built) -> list[str]:
    return ["--home", str(b.runtime.settings.home), "--now", b.now.isoformat()]


@pytest.mark.parametrize(
    "kind, fmt, files",
    [
        ("gdpr", "all", ["gdpr.md", "gdpr.html", "gdpr.json"]),
        ("dpia", "md", ["dpia.md"]),
        ("ai-act", "json", ["ai-act.json"]),
        ("retention", "html", ["retention.html"]),
    ],
)
def test_report_writes_the_requested_files(
    scene_home: Built, tmp_path: Path, kind: str, fmt: str, files: list[str]
) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = _invoke(
        "report", kind, "--format", fmt, "--out", str(out), *_base(scene_home)
    )
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(files)
    for name in files:
        assert f"wrote {out / name}" in stdout
    for name in files:
        if name.endswith(".json"):
            document = json.loads((out / name).read_text(encoding="utf-8"))
            Draft202012Validator(schema_for(kind)).validate(document)
            assert document["meta"]["event_id"] == SCENE_EVENT


def test_every_store_kind_at_once(scene_home: Built, tmp_path: Path) -> None:
    out = tmp_path / "all"
    for kind in ("gdpr", "retention", "dpia", "dsa", "ai-act"):
        code, _, stderr = _invoke("report", kind, "--out", str(out), *_base(scene_home))
        assert code == 0, stderr
    assert len(list(out.iterdir())) == 15


def test_as_of_changes_the_ai_act_obligations(scene_home: Built, tmp_path: Path) -> None:
    code, _, stderr = _invoke(
        "report",
        "ai-act",
        "--format",
        "json",
        "--out",
        str(tmp_path),
        "--as-of",
        "2027-12-02",
        *_base(scene_home),
    )
    assert code == 0, stderr
    data = json.loads((tmp_path / "ai-act.json").read_text(encoding="utf-8"))
    assert data["meta"]["as_of"] == "2027-12-02"
    assert all(o["in_force"] for o in data["data"]["obligations"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["report", "bogus"], "unknown report kind 'bogus'"),
        (["report", "gdpr", "--format", "pdf"], "--format 'pdf'"),
        (["report", "gdpr", "--as-of", "next week"], "--as-of 'next week' is not a date"),
        (["report", "gdpr", "--event", "nope"], "no event 'nope' in the store"),
        (["report", "gdpr", "--policy", "no-such-policy"], "unknown policy 'no-such-policy'"),
        (["report", "compare", "--profiles", "spotify-2026,nope"], "unknown policy 'nope'"),
        (["report", "compare", "--duration", "soon"], "--duration"),
    ],
)
def test_bad_input_gives_one_line_and_exit_1(
    scene_home: Built, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = _invoke(*args, "--out", str(out), *_base(scene_home))
    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flowaudit: error: ")
    assert message in lines[0]
    assert "Traceback" not in stdout + stderr
    assert not out.exists() or not list(out.iterdir())


def test_several_events_need_event(scene_home: Built, tmp_path: Path) -> None:
    with scene_home.runtime.store.transaction(scene_home.now, actor="test") as tx:
        tx.register_event(
            "second-event",
            name="Second",
            starts_at=scene_home.now,
            ends_at=scene_home.now + timedelta(hours=1),
            policy_name="privacy-by-default",
            policy_sha256="0" * 64,
        )
    code, _, stderr = _invoke("report", "gdpr", "--out", str(tmp_path), *_base(scene_home))
    assert code == 1
    assert "choose one with --event" in stderr and "second-event" in stderr
    code, _, stderr = _invoke(
        "report", "gdpr", "--event", SCENE_EVENT, "--out", str(tmp_path), *_base(scene_home)
    )
    assert code == 0, stderr


def test_empty_store_says_what_to_do(sqlite_runtime: Runtime, tmp_path: Path) -> None:
    code, _, stderr = _invoke(
        "report", "gdpr", "--home", str(sqlite_runtime.settings.home), "--out", str(tmp_path)
    )
    assert code == 1
    assert "run `flowaudit run-event` first" in stderr


def test_unwritable_output_is_one_line(scene_home: Built, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    code, _, stderr = _invoke("report", "gdpr", "--out", str(blocker / "sub"), *_base(scene_home))
    assert code == 1
    assert "cannot create report directory" in stderr
