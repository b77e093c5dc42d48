"""Package data is found through importlib.resources, as real paths, and the override works."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import migrations
import pipeline
import policies
from pipeline.event import default_event_file, load_event
from retention.db import alembic_config
from retention.errors import NotFoundError
from retention.policy import list_policies, load_policy, policy_dir

SHIPPED = ["apple-music-2025", "privacy-by-default", "spotify-2026", "tiktok-2026"]


def test_shipped_data_lives_inside_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWAUDIT_POLICY_DIR", raising=False)
    assert policy_dir() == Path(policies.__file__).parent
    assert list_policies() == SHIPPED
    script_location = alembic_config("sqlite:///x.db").get_main_option("script_location")
    assert Path(str(script_location)) == Path(migrations.__file__).parent
    event_file = default_event_file()
    assert event_file.parent == Path(pipeline.__file__).parent / "demo_event"
    event = load_event(event_file)  # its catalogue and artist files resolve beside it
    assert event.id == "fete-2026-republique" and len(event.wristbands) > 100


def test_the_policy_dir_variable_points_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "profiles"
    own.mkdir()
    (own / "our-festival.toml").write_bytes((policy_dir() / "tiktok-2026.toml").read_bytes())
    monkeypatch.setenv("FLOWAUDIT_POLICY_DIR", str(own))
    assert list_policies() == ["our-festival"]
    assert load_policy("our-festival").retention.raw_audio.total_seconds() == 0
    with pytest.raises(NotFoundError, match="unknown policy 'privacy-by-default'; shipped: our-fe"):
        load_policy("privacy-by-default")


def test_a_zipped_package_is_extracted_once_and_removed_at_exit(tmp_path: Path) -> None:
    archive = tmp_path / "zipped.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("zpkg/__init__.py", "")
        zf.writestr("zpkg/data/note.txt", "from inside the zip")
    probe = (
        "from retention.ground.resources import package_path\n"
        "p = package_path('zpkg', 'data', 'note.txt')\n"
        "assert p is package_path('zpkg', 'data', 'note.txt')\n"
        "print(p); print(p.read_text())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(archive), "PATH": "/usr/bin:/bin"}, cwd=tmp_path,
    ).stdout.splitlines()
    extracted = Path(out[0])
    assert out[1] == "from inside the zip"
    assert archive not in extracted.parents and not extracted.exists()  # gone at exit
