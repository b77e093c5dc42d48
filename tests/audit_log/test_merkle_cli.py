"""`flowaudit audit prove|verify --proof|public-key|checkpoint` through the real CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from audit.log.checkpoints import TREE_ORIGIN, CheckpointSigner, checkpoint_after_command
from audit.log.notes import verifier_key
from flowaudit.cli import app
from flowaudit.config import Settings
from flowaudit.runtime import open_runtime

from .logbuild import START, fill_log

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> Any:
    return runner.invoke(app, list(args))


def _one_line_error(result: Any, *fragments: str) -> None:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("flowaudit: error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def filled(home: Settings) -> Settings:
    """A home on either backend with 40-odd entries under one Merkle checkpoint at the head."""
    runtime = open_runtime(home, START, environ={})
    fill_log(runtime, entries=40, checkpoint_every=13)
    runtime.now = START + timedelta(hours=1)
    checkpoint_after_command(runtime)
    runtime.close()
    return home


def _vkey(home: Settings, tmp_path: Path) -> str:
    result = _run("audit", "public-key", "--note", "--home", str(home.home), "--out",
                  str(tmp_path / "vkey.txt"))
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_public_key_note_is_a_c2sp_verifier_key(filled: Settings, tmp_path: Path) -> None:
    vkey = _vkey(filled, tmp_path)
    name, key_hash, blob = vkey.split("+", 2)
    assert name == TREE_ORIGIN and len(key_hash) == 8 and blob.startswith("A")  # 0x01 ‖ key
    assert (tmp_path / "vkey.txt").read_text().strip() == vkey
    pem = _run("audit", "public-key", "--home", str(filled.home))
    assert pem.exit_code == 0 and "BEGIN PUBLIC KEY" in pem.output


def test_prove_an_entry_and_verify_it_with_the_key_alone(filled: Settings, tmp_path: Path) -> None:
    vkey = _vkey(filled, tmp_path)
    out = tmp_path / "entry.json"
    result = _run("audit", "prove", "--entry", "17", "--out", str(out), "--home", str(filled.home))
    assert result.exit_code == 0, result.output
    bundle = json.loads(out.read_text())
    assert bundle["leaf_index"] == 16 and json.loads(bundle["entry"])["seq"] == 17
    checked = _run("audit", "verify", "--proof", str(out), "--key", vkey)
    assert checked.exit_code == 0, checked.output
    assert "inclusion proof verified: entry 17" in checked.output
    as_json = _run("audit", "verify", "--proof", str(out), "--key", str(tmp_path / "vkey.txt"),
                   "--format", "json")
    assert json.loads(as_json.output)["seq"] == 17


def test_offline_verification_needs_no_home_and_no_environment(
    filled: Settings, tmp_path: Path
) -> None:
    """A fresh process in an empty directory, without any FLOWAUDIT variable."""
    vkey = _vkey(filled, tmp_path)
    assert _run("audit", "prove", "--entry", "3", "--out", str(tmp_path / "p.json"),
                "--home", str(filled.home)).exit_code == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "p.json").write_bytes((tmp_path / "p.json").read_bytes())
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(empty), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "flowaudit", "audit", "verify", "--proof", "p.json",
               "--key", vkey]
    done = subprocess.run(command, cwd=empty, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "inclusion proof verified: entry 3" in done.stdout
    assert sorted(p.name for p in empty.iterdir()) == ["p.json"]  # nothing created


def test_consistency_between_two_signed_checkpoints(filled: Settings, tmp_path: Path) -> None:
    vkey = _vkey(filled, tmp_path)
    out = tmp_path / "grow.json"
    result = _run("audit", "prove", "--from", "13", "--out", str(out), "--home", str(filled.home))
    assert result.exit_code == 0, result.output
    checked = _run("audit", "verify", "--proof", str(out), "--key", vkey)
    assert checked.exit_code == 0, checked.output
    assert "extends the log of size 13" in checked.output
    missing = _run("audit", "prove", "--from", "14", "--home", str(filled.home))
    _one_line_error(missing, "no signed checkpoint of tree size 14")


def _tampered(source: Path, target: Path, change: Any) -> Path:
    bundle = json.loads(source.read_text())
    change(bundle)
    target.write_text(json.dumps(bundle))
    return target


def test_bad_bundles_fail_in_one_line_naming_the_part(filled: Settings, tmp_path: Path) -> None:
    vkey = _vkey(filled, tmp_path)
    good = tmp_path / "good.json"
    assert _run("audit", "prove", "--entry", "5", "--out", str(good),
                "--home", str(filled.home)).exit_code == 0

    def entry_edit(b: dict[str, Any]) -> None:
        b["entry"] = b["entry"].replace('"seq":5', '"seq":5 ')

    def path_edit(b: dict[str, Any]) -> None:
        b["audit_path"][0] = "00" * 32

    def root_edit(b: dict[str, Any]) -> None:
        lines = b["checkpoint"].split("\n")
        lines[2] = "A" + lines[2][1:] if lines[2][0] != "A" else "B" + lines[2][1:]
        b["checkpoint"] = "\n".join(lines)

    def size_edit(b: dict[str, Any]) -> None:
        b["tree_size"] += 1

    def format_edit(b: dict[str, Any]) -> None:
        b["format"] = "something-else/v9"

    cases = [
        (entry_edit, "fails: proof:"),
        (path_edit, "fails: proof:"),
        (root_edit, "fails: signature:"),
        (size_edit, "fails: checkpoint:"),
        (format_edit, "fails: format:"),
    ]
    for change, fragment in cases:
        bad = _tampered(good, tmp_path / "bad.json", change)
        _one_line_error(_run("audit", "verify", "--proof", str(bad), "--key", vkey), fragment)
    other = CheckpointSigner(Ed25519PrivateKey.generate()).public_key
    _one_line_error(
        _run("audit", "verify", "--proof", str(good), "--key", verifier_key(TREE_ORIGIN, other)),
        "fails: key:",
    )
    (tmp_path / "junk.json").write_text("{not json")
    _one_line_error(_run("audit", "verify", "--proof", str(tmp_path / "junk.json"), "--key", vkey),
                    "not a JSON proof bundle")
    _one_line_error(_run("audit", "verify", "--proof", str(good)), "--proof needs --key")
    _one_line_error(_run("audit", "verify", "--proof", str(good), "--key", "nonsense"),
                    "neither a verifier key")


def test_prove_refuses_an_entry_after_the_checkpoint(filled: Settings) -> None:
    result = _run("audit", "prove", "--entry", "100000", "--home", str(filled.home))
    _one_line_error(result, "not covered by checkpoint")
    _one_line_error(_run("audit", "prove", "--home", str(filled.home)), "exactly one of")


def test_a_chain_only_log_gets_its_first_tree_checkpoint(
    sqlite_home: Settings, tmp_path: Path
) -> None:
    """A log migrated from the chain has no Merkle checkpoint until one is signed."""
    runtime = open_runtime(sqlite_home, START, environ={})
    fill_log(runtime, entries=20, checkpoint_every=1000)
    runtime.close()
    with sqlite3.connect(sqlite_home.home / "flowaudit.db") as conn:  # as before migration 0003
        conn.execute("DELETE FROM audit_checkpoints")
    _one_line_error(_run("audit", "prove", "--entry", "2", "--home", str(sqlite_home.home)),
                    "no signed Merkle checkpoint yet")
    signed = _run("audit", "checkpoint", "--allow-unsigned-tail", "--home",
                  str(sqlite_home.home), "--now", (START + timedelta(hours=2)).isoformat())
    assert signed.exit_code == 0, signed.output
    assert "checkpoint signed: tree size" in signed.output
    assert _run("audit", "prove", "--entry", "2", "--home", str(sqlite_home.home)).exit_code == 0


def test_help_texts_explain(filled: Settings) -> None:
    for command, fragment in (("prove", "--entry"), ("verify", "--proof"),
                              ("public-key", "--note"), ("checkpoint", "Merkle")):
        result = _run("audit", command, "--help")
        assert result.exit_code == 0 and fragment in result.output
