"""`flowaudit audit verify|anchor|log|check|rules` through the real CLI."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from typer.testing import CliRunner

from audit.log.checkpoints import checkpoint_after_command
from flowaudit.cli import app
from flowaudit.cli._common import runtime_from
from flowaudit.config import Settings
from flowaudit.runtime import open_runtime
from retention.errors import InputError
from retention.models import AuditCheckpoint

from .logbuild import START, RawLog, fill_log, forged_tail

runner = CliRunner()
NOW = (START + timedelta(hours=8)).isoformat()


@pytest.fixture
def filled(sqlite_home: Settings) -> Settings:
    runtime = open_runtime(sqlite_home, START, environ={})
    fill_log(runtime, entries=20, checkpoint_every=1000)
    runtime.now = START + timedelta(hours=1)
    checkpoint_after_command(runtime)  # as the command that wrote them would
    runtime.close()
    return sqlite_home


def _run(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def _last_line_error(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    last = [line for line in result.output.splitlines() if line.strip()][-1]
    assert last.startswith("flowaudit: error: ")
    for fragment in fragments:
        assert fragment in last


def _one_line_error(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    _last_line_error(result, *fragments)


def _sql(home: Settings, statement: str) -> None:
    with sqlite3.connect(home.home / "flowaudit.db") as conn:
        conn.execute(statement)


def test_verify_a_clean_log(filled: Settings) -> None:
    result = _run("audit", "verify", "--home", str(filled.home))
    assert result.exit_code == 0, result.output
    assert "audit log verified" in result.output
    result = _run("audit", "verify", "--home", str(filled.home), "--format", "json")
    report = json.loads(result.output)
    assert report["ok"] and report["entries"] == report["head_seq"] >= 20


def test_verify_names_the_first_bad_entry(filled: Settings) -> None:
    _sql(filled, "UPDATE audit_log SET object_id = 'x' WHERE seq = 9")
    result = _run("audit", "verify", "--home", str(filled.home))
    _last_line_error(result, "seq 9")
    assert "seq 9: [edited]" in result.output
    result = _run("audit", "verify", "--home", str(filled.home), "--format", "json")
    assert result.exit_code == 1
    assert json.loads(result.output.split("\nflowaudit: error")[0])["first_bad_seq"] == 9


def test_anchor_then_truncate_then_verify(filled: Settings, tmp_path: Path) -> None:
    anchor = tmp_path / "anchor.json"
    result = _run("audit", "anchor", "--home", str(filled.home), "--out", str(anchor), "--now", NOW)
    assert result.exit_code == 0, result.output
    document = json.loads(anchor.read_text())
    head = document["seq"]
    _one_line_error(
        _run("audit", "anchor", "--home", str(filled.home), "--out", str(anchor)), "--force"
    )
    _sql(filled, f"DELETE FROM audit_log WHERE seq > {head - 2}")
    _sql(filled, "DELETE FROM audit_checkpoints")
    # without the anchor the cut is invisible, but so is any signature: nothing is proven
    _last_line_error(_run("audit", "verify", "--home", str(filled.home)), "seq 1", "signed")
    assert (
        _run("audit", "verify", "--home", str(filled.home), "--allow-unsigned-tail").exit_code == 0
    )
    result = _run("audit", "verify", "--home", str(filled.home), "--anchor", str(anchor))
    _last_line_error(result, f"seq {head - 1}", "truncated")
    # an auditor holding only the anchor and the database: no signing key needed
    (filled.home / "signing.key").unlink()
    result = _run("audit", "verify", "--home", str(filled.home), "--anchor", str(anchor))
    _last_line_error(result, f"seq {head - 1}")


def test_anchor_refuses_a_tampered_log(filled: Settings, tmp_path: Path) -> None:
    _sql(filled, "UPDATE audit_log SET actor = 'x' WHERE seq = 3")
    result = _run("audit", "anchor", "--home", str(filled.home), "--out", str(tmp_path / "a.json"))
    _one_line_error(result, "seq 3", "refusing")
    assert not (tmp_path / "a.json").exists()


def test_verify_with_a_foreign_public_key_fails(filled: Settings, tmp_path: Path) -> None:
    anchor = tmp_path / "anchor.json"
    assert _run("audit", "anchor", "--home", str(filled.home), "--out", str(anchor)).exit_code == 0
    pem = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    key_file = tmp_path / "other.pub"
    key_file.write_bytes(pem)
    result = _run("audit", "verify", "--home", str(filled.home), "--public-key", str(key_file))
    _last_line_error(result, "fails verification")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["audit", "verify", "--anchor", "/nonexistent/anchor.json"], "does not exist"),
        (["audit", "verify", "--public-key", "/nonexistent/key.pub"], "cannot read public key"),
        (["audit", "verify", "--format", "xml"], "--format"),
        (["audit", "log", "--since", "yesterday"], "--since"),
        (["audit", "check", "--only", "no-such-rule"], "unknown check"),
        (["audit", "check", "--as-of", "2026-13-40"], "--as-of"),
        (["audit", "check", "--event", "no-such-event"], "no event"),
        (["audit", "check", "--policy", "no-such-policy"], "unknown policy"),
    ],
)
def test_bad_input_gives_one_clear_line(filled: Settings, args: list[str], fragment: str) -> None:
    result = _run(*args, "--home", str(filled.home))
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert fragment in result.output


def test_bad_anchor_file_gives_one_line(filled: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\x00\xffnot json")
    result = _run("audit", "verify", "--home", str(filled.home), "--anchor", str(bad))
    _one_line_error(result, "not a JSON anchor file")


def test_log_filters_and_json(filled: Settings) -> None:
    result = _run(
        "audit", "log", "--home", str(filled.home), "--action", "gate.*", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    assert entries and {e["action"] for e in entries} == {"gate.drop"}
    assert [e["seq"] for e in entries] == sorted(e["seq"] for e in entries)
    result = _run("audit", "log", "--home", str(filled.home), "--limit", "2", "--format", "json")
    latest = json.loads(result.output)
    assert len(latest) == 2 and latest[1]["seq"] == latest[0]["seq"] + 1
    since = (START + timedelta(minutes=3)).isoformat()
    result = _run("audit", "log", "--home", str(filled.home), "--since", since, "--format", "json")
    assert all(e["at"] >= since for e in json.loads(result.output))
    result = _run("audit", "log", "--home", str(filled.home), "--action", "nothing")
    assert result.exit_code == 0 and "no audit entries match" in result.output
    result = _run("audit", "log", "--home", str(filled.home), "--limit", "3")
    assert result.exit_code == 0 and "gate.drop" in result.output


def test_check_exit_codes_and_json(filled: Settings) -> None:
    home = str(filled.home)
    result = _run("audit", "check", "--home", home, "--now", NOW)
    assert result.exit_code == 0, result.output  # the fill has no violation
    _sql(filled, "UPDATE subjects SET is_staff = 1")
    result = _run("audit", "check", "--home", home, "--now", NOW, "--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["summary"]["error"] == 1
    (finding,) = [f for f in report["findings"] if f["severity"] == "error"]
    assert finding["rule_id"] == "staff-wristbands-processed"
    assert finding["legal_ref"] == "AI Act Art 5(1)(f)" and finding["evidence"]["records"] > 0
    result = _run("audit", "check", "--home", home, "--now", NOW)
    assert result.exit_code == 1 and "ERROR (1)" in result.output and "FAIL" in result.output
    result = _run("audit", "check", "--home", home, "--now", NOW, "--as-of", "2025-01-01")
    assert result.exit_code == 0 and "WARNING" in result.output  # not yet prohibited
    only = ["--only", "speech-stored", "--only", "data-without-consent"]
    result = _run("audit", "check", "--home", home, "--now", NOW, *only)
    assert result.exit_code == 0 and "PASS" in result.output
    result = _run("audit", "check", "--home", home, "--now", NOW, "--event", "fete-2026")
    assert result.exit_code == 1


def test_rules_lists_every_check() -> None:
    result = _run("audit", "rules", "--format", "json")
    assert result.exit_code == 0
    ids = {r["id"] for r in json.loads(result.output)}
    assert {"raw-audio-past-retention", "speech-stored", "audit-log-verification"} <= ids
    assert all(r["legal_ref"] for r in json.loads(result.output))


def _checkpoint_seqs(home: Settings) -> list[int]:
    runtime = open_runtime(home, START, environ={})
    try:
        with runtime.store.session() as session:
            return list(session.scalars(select(AuditCheckpoint.seq).order_by(AuditCheckpoint.seq)))
    finally:
        runtime.close()


def test_every_command_that_appends_signs_its_head_even_when_it_fails(
    sqlite_home: Settings,
) -> None:
    with runtime_from(sqlite_home.home, None, NOW) as runtime:
        with runtime.store.transaction(runtime.now) as tx:
            tx.audit("test.write", "t", "o", {"n": 1})
    assert _checkpoint_seqs(sqlite_home) == [1]
    for failure in (InputError("refused"), KeyboardInterrupt(), RuntimeError("a bug")):
        with pytest.raises(type(failure)):  # e.g. an export refused after its entry committed
            with runtime_from(sqlite_home.home, None, NOW) as runtime:
                with runtime.store.transaction(runtime.now) as tx:
                    tx.audit("test.write", "t", "o", {"n": 2})
                raise failure
    assert _checkpoint_seqs(sqlite_home) == [1, 2, 3, 4]  # what a failed command committed
    with runtime_from(sqlite_home.home, None, NOW):
        pass
    assert _checkpoint_seqs(sqlite_home) == [1, 2, 3, 4]  # nothing twice


def test_a_read_only_command_does_not_sign_someone_elses_tail(sqlite_home: Settings) -> None:
    outsider = open_runtime(sqlite_home, START, environ={})  # no signer, no end-of-command
    with outsider.store.transaction(START) as tx:
        tx.audit("test.write", "t", "o", {"n": 1})
    outsider.close()
    for args in (["status"], ["audit", "log"], ["audit", "check", "--now", NOW]):
        _run(*args, "--home", str(sqlite_home.home))
    assert _checkpoint_seqs(sqlite_home) == []
    _last_line_error(_run("audit", "verify", "--home", str(sqlite_home.home)), "seq 1")


def _forge_tail(home: Settings, count: int) -> int:
    log = RawLog(home.home / "flowaudit.db")
    rows = log.rows()
    with sqlite3.connect(log.path) as conn:
        conn.executemany(
            "INSERT INTO audit_log (seq, at, actor, action, object_type, object_id, details, "
            "prev_hash, hash) VALUES (:seq, :at, :actor, :action, :object_type, :object_id, "
            ":details, :prev_hash, :hash)",
            forged_tail(rows, count),
        )
    return int(rows[-1]["seq"]) + 1


def test_a_forged_append_fails_verify_check_and_anchor_unless_accepted(
    filled: Settings, tmp_path: Path
) -> None:
    home = str(filled.home)
    first = _forge_tail(filled, 3)
    result = _run("audit", "verify", "--home", home)
    _last_line_error(result, f"seq {first}", "not covered by a signed checkpoint")
    assert f"seq {first}: [unsigned]" in result.output
    report = json.loads(
        _run("audit", "verify", "--home", home, "--format", "json").output.split(
            "\nflowaudit: error"
        )[0]
    )
    assert report["unsigned_tail"] == 3 and report["first_bad_seq"] == first
    result = _run("audit", "verify", "--home", home, "--allow-unsigned-tail")
    assert result.exit_code == 0 and "accepted unsigned" in result.output
    result = _run("audit", "check", "--home", home, "--now", NOW, "--format", "json")
    assert result.exit_code == 1
    (finding,) = [f for f in json.loads(result.output)["findings"] if f["severity"] == "error"]
    assert finding["rule_id"] == "audit-log-verification"
    assert finding["evidence"]["first_bad_seq"] == first
    anchor = tmp_path / "a.json"
    _one_line_error(_run("audit", "anchor", "--home", home, "--out", str(anchor)), "refusing")
    assert not anchor.exists()
    result = _run("audit", "anchor", "--home", home, "--out", str(anchor), "--allow-unsigned-tail")
    assert result.exit_code == 0, result.output  # the operator vouches for them, explicitly
    assert _run("audit", "verify", "--home", home, "--anchor", str(anchor)).exit_code == 0


def _loosen(home: Settings) -> None:
    """Recreate audit_log without types or constraints, as someone with the file can."""
    columns = "seq, at, actor, action, object_type, object_id, details, prev_hash, hash"
    with sqlite3.connect(home.home / "flowaudit.db") as conn:
        conn.execute(f"CREATE TABLE loose ({columns})")
        conn.execute(f"INSERT INTO loose SELECT {columns} FROM audit_log")
        conn.execute("DROP TABLE audit_log")
        conn.execute("ALTER TABLE loose RENAME TO audit_log")


@pytest.mark.parametrize(
    "column, value, loose",
    [
        ("at", "'not-a-time'", False),  # was: internal error (ValueError), exit 70
        ("at", "x'00ff10'", False),  # was: "audit_log.at holds an unreadable time", no seq
        ("at", "1750000000", False),
        ("at", "NULL", True),
        ("actor", "x'414243'", False),  # was: internal error (TypeError)
        ("action", "CAST(x'ff41' AS TEXT)", False),  # text that is not UTF-8
        ("object_type", "42", True),
        ("object_id", "NULL", True),
        ("details", "'{\"frames\": '", False),  # invalid JSON
        ("details", "x'7b7d'", False),
        ("details", "NULL", True),
        ("prev_hash", "zeroblob(32)", False),
        ("hash", "NULL", True),
        ("actor", "printf('%.200000c', 'x')", False),  # a very long string
        ("seq", "'nine'", True),
        ("seq", "NULL", True),
    ],
)
def test_verify_names_an_unreadable_entry_and_never_crashes(
    filled: Settings, column: str, value: str, loose: bool
) -> None:
    if loose:
        _loosen(filled)
    _sql(filled, f"UPDATE audit_log SET {column} = {value} WHERE rowid = 9")
    result = _run("audit", "verify", "--home", str(filled.home))
    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output
    _last_line_error(result, "first bad entry is seq 9")
    assert "seq 9: [unreadable]" in result.output or "seq 9: [edited]" in result.output
    assert "ABC" not in result.output and "xxxxxxxx" not in result.output  # no values echoed
