"""The platform comparison: the same event through the real pipeline under each profile."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from audit.reports import ReportContext, build_report, render, schema_for
from audit.reports.kinds.compare import HORIZONS, PROFILES
from flowaudit.cli import app
from flowaudit.reporting import compare_context
from retention.errors import InputError

from .chromium_helpers import Trap, chromium, headings
from .reports_sql import q, rows

SOURCE, DURATION = "synth:6", timedelta(minutes=2)


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ReportContext, Any]]:
    work = tmp_path_factory.mktemp("compare")
    with compare_context(source=SOURCE, duration=DURATION, workdir=work) as ctx:
        report = build_report("compare", ctx)
        yield ctx, report


def test_every_profile_ran_the_same_event(compared: tuple[ReportContext, Any]) -> None:
    ctx, report = compared
    profiles = report.data["profiles"]
    assert [p["profile"] for p in profiles] == list(PROFILES)
    assert len({p["event_id"] for p in profiles}) == 1
    captured = {p["minimisation"]["captured_frames"] for p in profiles}
    assert len(captured) == 1 and captured.pop() > 0  # same crowd, same frames in


def test_profile_numbers_equal_sql_on_each_store(compared: tuple[ReportContext, Any]) -> None:
    ctx, report = compared
    for item in report.data["profiles"]:
        peer = ctx.peers[item["profile"]]
        with peer.runtime.engine.connect() as conn:
            e = peer.event_id
            assert item["stored"]["raw_records"] == q(
                conn, "SELECT count(*) FROM raw_segments WHERE event_id = :e", e=e
            )
            assert item["stored"]["metadata_records"] == q(
                conn, "SELECT count(*) FROM metadata_records WHERE event_id = :e", e=e
            )
            assert item["stored"]["metadata_linked"] == q(
                conn,
                "SELECT count(*) FROM metadata_records WHERE event_id = :e AND "
                "subject_pseudonym IS NOT NULL",
                e=e,
            )
            assert item["stored"]["raw_seconds"] == pytest.approx(
                q(
                    conn,
                    "SELECT coalesce(sum(duration_ms), 0) FROM raw_segments WHERE event_id = :e",
                    e=e,
                )
                / 1000
            )
            ends = q(conn, "SELECT ends_at FROM events WHERE id = :e", e=e)
            assert ends is not None
            for (label, _), horizon in zip(HORIZONS, item["readable"], strict=True):
                assert horizon["label"] == label
                for table, key in (("raw_segments", "raw_audio"), ("metadata_records", "metadata")):
                    at = peer.now.__class__.fromisoformat(horizon["at"])
                    assert horizon[key] == q(
                        conn,
                        f"SELECT count(*) FROM {table} r JOIN retention_buckets b ON "
                        "b.id = r.bucket_id WHERE r.event_id = :e AND b.state = 'ACTIVE' AND "
                        "(r.expires_at IS NULL OR r.expires_at > :at)",
                        e=e,
                        at=at,
                    ), (item["profile"], label, key)
            latencies = [
                float(x)
                for (x,) in rows(conn, "SELECT latency_ms FROM decisions WHERE event_id = :e", e=e)
            ]
            decisions = item["decisions"]
            assert decisions["decisions"] == len(latencies) > 0
            assert decisions["latency_ms_p50"] == pytest.approx(np.percentile(latencies, 50))


def test_the_article_claims_measured(compared: tuple[ReportContext, Any]) -> None:
    _, report = compared
    by = {p["profile"]: p for p in report.data["profiles"]}
    spotify, tiktok, ours = by["spotify-2026"], by["tiktok-2026"], by["privacy-by-default"]
    # "72 hours (raw PCM) + indefinite metadata"
    assert spotify["stored"]["raw_records"] > 0
    readable = {h["label"]: h for h in spotify["readable"]}
    assert readable["+24 h"]["raw_audio"] == spotify["stored"]["raw_records"]
    assert readable["+30 days"]["raw_audio"] == 0
    assert readable["+1 year"]["metadata"] == spotify["stored"]["metadata_records"] > 0
    assert "indefinite-linkable-metadata" in spotify["findings"]["errors"]
    # "0 hours (real-time processing only)": no raw audio at all
    assert tiktok["stored"]["raw_records"] == 0
    assert tiktok["policy"]["third_party_scorers"] is True
    # privacy-by-default: nothing raw, nothing readable a year later, no speech stored
    assert ours["stored"]["raw_records"] == 0 and ours["stored"]["speech_seconds"] == 0
    assert {h["label"]: h for h in ours["readable"]}["+1 year"]["metadata"] == 0
    # artist control as configured
    assert spotify["policy"]["artist_control"] == "none"
    assert spotify["decisions"]["artist_overrides"] == 0


def test_compare_json_validates_and_html_renders_offline(
    compared: tuple[ReportContext, Any], tmp_path: Path, trap: Trap, background: set[str]
) -> None:
    _, report = compared
    Draft202012Validator(schema_for("compare")).validate(json.loads(render(report, "json")))
    page = tmp_path / "compare.html"
    page.write_text(render(report, "html"), encoding="utf-8")
    dom = chromium(page, tmp_path, trap, "--dump-dom").stdout
    found = [h for h in headings(dom) if h[0] == "h2"]
    assert found == [("h2", f"{i}. {s.title}") for i, s in enumerate(report.sections, 1)]
    assert not trap.take() - background
    header = next(
        line for line in render(report, "md").splitlines() if line.startswith("| Feature |")
    )
    assert header == "| Feature | " + " | ".join(PROFILES) + " |"


def test_compare_without_runs_is_refused(compared: tuple[ReportContext, Any]) -> None:
    ctx, _ = compared
    lonely = ReportContext.open(ctx.runtime, now=ctx.now, event_id=ctx.event_id)
    with pytest.raises(InputError, match="needs the event run under each profile"):
        build_report("compare", lonely)


def test_compare_cli_writes_the_report_at_the_pinned_time(tmp_path: Path) -> None:
    """FLOWAUDIT_NOW pins the comparison's "now" just as --now does (it was once ignored)."""
    out = tmp_path / "out"
    pinned = "2026-07-01T23:00:00+00:00"
    result = CliRunner().invoke(
        app,
        [
            "report",
            "compare",
            "--profiles",
            "spotify-2026,tiktok-2026",
            "--source",
            "synth:3",
            "--duration",
            "1m",
            "--format",
            "json",
            "--out",
            str(out),
        ],
        env={"FLOWAUDIT_NOW": pinned},
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert [p["profile"] for p in report["data"]["profiles"]] == ["spotify-2026", "tiktok-2026"]
    assert datetime.fromisoformat(report["meta"]["generated_at"]) == datetime.fromisoformat(pinned)
