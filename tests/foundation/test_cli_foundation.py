"""CLI of the foundation: init, db, policy, status — and one clear line for every user error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowaudit.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FLOWAUDIT_HOME", "FLOWAUDIT_DB_URL", "FLOWAUDIT_MASTER_KEY", "FLOWAUDIT_NOW"):
        monkeypatch.delenv(var, raising=False)


def _one_clean_error(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code != 0
    text = result.output
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith("flowaudit: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_init_status_and_db_current(tmp_path: Path) -> None:
    home = tmp_path / "h"
    result = runner.invoke(app, ["init", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert (home / "master.key").stat().st_mode & 0o777 == 0o600
    assert (home / "signing.key").stat().st_mode & 0o777 == 0o600
    result = runner.invoke(app, ["db", "current", "--home", str(home)])
    assert result.exit_code == 0 and "up to date" in result.output
    result = runner.invoke(app, ["status", "--home", str(home), "--format", "json"])
    assert result.exit_code == 0 and '"events": 0' in result.output
    _one_clean_error(runner.invoke(app, ["init", "--home", str(home)]), "already a flowaudit home")


def test_env_home_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "envhome"
    assert runner.invoke(app, ["init", "--home", str(home)]).exit_code == 0
    monkeypatch.setenv("FLOWAUDIT_HOME", str(home))
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0 and str(home) in result.output


def test_missing_home(tmp_path: Path) -> None:
    _one_clean_error(
        runner.invoke(app, ["status", "--home", str(tmp_path / "nope")]),
        "no flowaudit home", "flowaudit init",
    )


def test_world_readable_master_key(tmp_path: Path) -> None:
    home = tmp_path / "h"
    runner.invoke(app, ["init", "--home", str(home)])
    os.chmod(home / "master.key", 0o644)
    _one_clean_error(runner.invoke(app, ["status", "--home", str(home)]), "chmod 600")


def test_corrupt_key_store(tmp_path: Path) -> None:
    home = tmp_path / "h"
    runner.invoke(app, ["init", "--home", str(home)])
    (home / "keystore.bin").write_bytes(b"garbage" * 10)
    _one_clean_error(runner.invoke(app, ["status", "--home", str(home)]), "key store", "master key")


def test_database_behind_the_code(tmp_path: Path) -> None:
    home = tmp_path / "h"
    runner.invoke(app, ["init", "--home", str(home)])
    down = runner.invoke(app, ["db", "downgrade", "--home", str(home), "--revision", "base"])
    assert down.exit_code == 0, down.output
    _one_clean_error(runner.invoke(app, ["status", "--home", str(home)]), "flowaudit db upgrade")
    assert runner.invoke(app, ["db", "upgrade", "--home", str(home)]).exit_code == 0
    assert runner.invoke(app, ["status", "--home", str(home)]).exit_code == 0


def test_bad_now_and_bad_database_url(tmp_path: Path) -> None:
    home = tmp_path / "h"
    runner.invoke(app, ["init", "--home", str(home)])
    _one_clean_error(
        runner.invoke(app, ["status", "--home", str(home), "--now", "yesterday"]), "ISO 8601"
    )
    _one_clean_error(
        runner.invoke(app, ["status", "--home", str(home), "--db", "mysql+nodriver://x"]),
        "database URL",
    )


def test_policy_commands(tmp_path: Path) -> None:
    result = runner.invoke(app, ["policy", "list", "--format", "json"])
    assert result.exit_code == 0 and "spotify-2026" in result.output
    result = runner.invoke(app, ["policy", "show", "tiktok-2026"])
    assert result.exit_code == 0 and "retention.raw_audio = 0h" in result.output
    result = runner.invoke(app, ["policy", "diff", "spotify-2026", "privacy-by-default"])
    assert result.exit_code == 0 and "retention.raw_audio" in result.output
    assert runner.invoke(app, ["policy", "validate", "apple-music-2025"]).exit_code == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('[policy]\nname="x"\ncontroller="c"\npurposes=["p"]\n[retention]\nraw_audio="72"\n')
    _one_clean_error(runner.invoke(app, ["policy", "validate", str(bad)]), "retention.raw_audio", '"72h"')
    _one_clean_error(runner.invoke(app, ["policy", "show", "nope"]), "unknown policy")


@pytest.mark.parametrize(
    ("args", "names", "help_of"),
    [
        (["policy", "list", "--format", "xml"], "--format", "flowaudit policy list"),
        (["purge", "--batch", "many"], "'--batch'", "flowaudit purge"),
        (["purge", "--bogus"], "--bogus", "flowaudit purge"),
        (["--bogus"], "--bogus", "flowaudit"),
        (["keys", "rotate", "--zzz"], "--zzz", "flowaudit keys rotate"),
        (["keys"], "Missing command", "flowaudit keys"),
    ],
)
def test_a_usage_error_is_one_line_naming_the_help_to_read(
    args: list[str], names: str, help_of: str
) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flowaudit: error: "), result.output
    assert names in lines[0] and lines[0].endswith(f"see '{help_of} --help'")
    assert "Traceback" not in result.output and result.stdout == ""


@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_init_leaves_no_half_home(tmp_path: Path, existing: bool) -> None:
    """A database that does not answer: one line, and nothing of the home is left (a config
    naming an unmigrated database would refuse the next init); what was in the directory
    before stays; the next init with a database that answers makes the home."""
    home = tmp_path / "h"
    if existing:
        home.mkdir()
        (home / "notes.txt").write_text("kept\n", encoding="utf-8")
    dead = "postgresql+psycopg://postgres@127.0.0.1:9/none"  # port 9: nothing listens
    _one_clean_error(runner.invoke(app, ["init", "--home", str(home), "--db", dead]),
                     "database")
    if existing:
        assert [p.name for p in home.iterdir()] == ["notes.txt"]
        assert (home / "notes.txt").read_text(encoding="utf-8") == "kept\n"
    else:
        assert not home.exists()
    result = runner.invoke(app, ["init", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert (home / "master.key").exists() and (home / "flowaudit.toml").exists()
