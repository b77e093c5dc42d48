"""`flowaudit purge`: summaries, JSON, dry run, bad options, and the --every job's SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from flowaudit.cli import app
from flowaudit.runtime import Runtime
from retention.ground.actions import Action
from retention.ground.times import parse_utc
from retention.models import AuditCheckpoint

from ._data import audit_entries, bucket_states, seed_crowd

ROOT = Path(__file__).resolve().parents[2]


def _seed(runtime: Runtime, now: datetime) -> None:
    seed_crowd(
        runtime.store,
        now,
        event_id="cli",
        subjects=3,
        hours=2,
        raw_retention=timedelta(hours=1),
        meta_retention=None,
        seed=51,
    )


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_purge_text_json_and_dry_run(sqlite_runtime: Runtime, now: datetime) -> None:
    _seed(sqlite_runtime, now)
    home = str(sqlite_runtime.settings.home)
    at = (now + timedelta(hours=5)).isoformat()
    dry = _invoke("purge", "--dry-run", "--home", home, "--now", at)
    assert dry.exit_code == 0, dry.output
    assert "dry run: nothing changed" in dry.output
    assert re.search(r"would shred\s+2 expired", dry.output)
    assert set(bucket_states(sqlite_runtime.store).values()) == {"ACTIVE"}

    text = _invoke("purge", "--home", home, "--now", at, "--batch", "2")
    assert text.exit_code == 0, text.output
    assert re.search(r"buckets shredded\s+2 ", text.output)
    assert re.search(r"rows deleted\s+12\n", text.output) and "bytes freed" in text.output

    again = _invoke("purge", "--home", home, "--now", at, "--format", "json")
    assert again.exit_code == 0, again.output
    data = json.loads(again.output)
    assert data["buckets_shredded"] == [] and data["status"] == "done"
    assert data["dry_run"] is False and data["wal_truncated"] is True
    assert [e.details["dry_run"] for e in audit_entries(sqlite_runtime.store, Action.PURGE_RECEIPT)] == [
        True,
        False,
        False,
    ]


def test_bad_options_give_one_line_and_change_nothing(
    sqlite_runtime: Runtime, now: datetime
) -> None:
    _seed(sqlite_runtime, now)
    home = str(sqlite_runtime.settings.home)
    for args, code, needle in [
        (["--every", "15"], 1, 'has no unit; write "15h"'),
        (["--every", "0m"], 1, "positive duration"),
        (["--now", "yesterday"], 1, "not an ISO 8601 time"),
    ]:
        result = _invoke("purge", "--home", home, *args)
        assert result.exit_code == code, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("flowaudit: error:") and needle in lines[0]
    assert _invoke("purge", "--home", home, "--batch", "0").exit_code == 2  # usage error
    assert not audit_entries(sqlite_runtime.store, Action.PURGE_RECEIPT)


def _purge_job(runtime: Runtime, every: str, at: datetime) -> subprocess.Popen[str]:
    """``flowaudit purge --every`` as its own process (JSON lines), so SIGTERM is real."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWAUDIT_")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flowaudit",
            "purge",
            "--every",
            every,
            "--format",
            "json",
            "--home",
            str(runtime.settings.home),
            "--now",
            at.isoformat(),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_every_runs_until_sigterm_then_exits_cleanly(
    sqlite_runtime: Runtime, now: datetime
) -> None:
    _seed(sqlite_runtime, now)
    proc = _purge_job(sqlite_runtime, "1h", now + timedelta(hours=5))
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())  # one JSON line per run; then it sleeps 1 h
    assert len(first["buckets_shredded"]) == 2 and first["status"] == "done"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err == "" and out == ""
    assert len(audit_entries(sqlite_runtime.store, Action.PURGE_RECEIPT)) == 1


def test_every_stamps_each_run_and_the_closing_checkpoint_when_they_happen(
    sqlite_runtime: Runtime, now: datetime
) -> None:
    """With --now, the job's clock starts there and advances by the real time elapsed."""
    _seed(sqlite_runtime, now)
    start = now + timedelta(hours=5)
    proc = _purge_job(sqlite_runtime, "1s", start)
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())
    second = json.loads(proc.stdout.readline())  # a second later, in real time
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err

    first_at, second_at = parse_utc(first["as_of"]), parse_utc(second["as_of"])
    assert first_at == start  # the first run is at --now exactly
    assert second_at >= first_at + timedelta(seconds=1)
    receipts = audit_entries(sqlite_runtime.store, Action.PURGE_RECEIPT)
    assert [e.at for e in receipts][:2] == [first_at, second_at]
    with sqlite_runtime.store.session() as session:
        closing = session.scalars(
            select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1)
        ).one()
    assert closing.at > first_at and closing.at >= receipts[-1].at  # not the job's start time
    verified = _invoke("audit", "verify", "--home", str(sqlite_runtime.settings.home))
    assert verified.exit_code == 0, verified.output  # the moved time is the one signed
