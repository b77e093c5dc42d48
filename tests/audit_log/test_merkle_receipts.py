"""Purge and erasure receipts carry an inclusion proof an auditor checks with the key alone."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from flowaudit.cli import app
from flowaudit.runtime import Runtime
from tests.retention_ops._data import seed_crowd

runner = CliRunner()


def _run(*args: str) -> Any:
    return runner.invoke(app, list(args))


def _seed(runtime: Runtime, now: datetime) -> list[str]:
    seeded = seed_crowd(
        runtime.store, now, event_id="rcpt", subjects=3, hours=2,
        raw_retention=timedelta(hours=1), meta_retention=None, seed=61,
    )
    return list(seeded.serials)


def _vkey(home: str) -> str:
    result = _run("audit", "public-key", "--note", "--home", home)
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_purge_receipt_proof(runtime: Runtime, now: datetime, tmp_path: Path) -> None:
    _seed(runtime, now)
    home = str(runtime.settings.home)
    at = (now + timedelta(hours=5)).isoformat()
    proof = tmp_path / "purge-receipt.json"
    result = _run("purge", "--home", home, "--now", at, "--receipt", str(proof),
                  "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    summary = out["receipt_proof"]
    bundle = json.loads(proof.read_text())
    entry = json.loads(bundle["entry"])
    assert entry["action"] == "purge.receipt" and entry["object_id"] == str(out["run_id"])
    assert summary["entry"] == entry["seq"] and summary["tree_size"] == bundle["tree_size"]
    checked = _run("audit", "verify", "--proof", str(proof), "--key", _vkey(home))
    assert checked.exit_code == 0, checked.output
    assert f"entry {entry['seq']} (purge.receipt" in checked.output
    text = _run("purge", "--home", home, "--now", at, "--receipt", str(tmp_path / "2.json"))
    assert text.exit_code == 0 and "receipt proof: entry" in text.output
    refused = _run("purge", "--home", home, "--every", "1m", "--receipt", str(proof))
    assert refused.exit_code == 1 and "not --every" in refused.output


def test_erasure_receipt_proof(runtime: Runtime, now: datetime, tmp_path: Path) -> None:
    serials = _seed(runtime, now)
    home = str(runtime.settings.home)
    at = (now + timedelta(hours=1)).isoformat()
    proof = tmp_path / "erasure.json"
    result = _run("dsr", "erase", serials[0], "--home", home, "--now", at, "--receipt",
                  str(proof))
    assert result.exit_code == 0, result.output
    assert "receipt proof: entry" in result.output and serials[0] not in proof.read_text()
    bundle = json.loads(proof.read_text())
    assert json.loads(bundle["entry"])["action"] == "dsr.erase"
    checked = _run("audit", "verify", "--proof", str(proof), "--key", _vkey(home),
                   "--format", "json")
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.output)["entry"]["action"] == "dsr.erase"
    # a rerun confirms the erasure and proves the same receipt entry against a newer checkpoint
    again = _run("dsr", "erase", serials[0], "--home", home, "--now", at, "--receipt",
                 str(tmp_path / "again.json"), "--format", "json")
    assert again.exit_code == 0, again.output
    second = json.loads((tmp_path / "again.json").read_text())
    assert second["entry"] == bundle["entry"] and second["tree_size"] > bundle["tree_size"]
    assert json.loads(again.output)["receipt_proof"]["entry"] == json.loads(bundle["entry"])["seq"]
