"""Source tables from the real store, the reid-threshold check, and the gated export."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from audit.checks import CheckContext, run_checks
from audit.reid.export_gate import export_metadata
from audit.reid.risk import assess
from audit.reid.source import metadata_frame, sentiment_band, subjects_frame
from flowaudit.cli import app
from flowaudit.config import Settings
from flowaudit.runtime import Runtime, open_runtime
from retention.errors import GateRefusedError
from retention.models import AuditEntry, Subject
from retention.policy import load_policy

from .reid_store import EVENT_ID, STARTS, populate

runner = CliRunner()
NOW = "2026-06-21T22:00:00Z"


def test_source_frames(runtime: Runtime, now: datetime) -> None:
    pseudonyms = populate(runtime, wristbands=12, with_scores=8, seed=3)
    subjects = subjects_frame(runtime.store)
    assert len(subjects) == 12 and "pseudonym" not in subjects.columns
    assert list(subjects.columns) == [
        "zone",
        "arrival_bucket",
        "age_band",
        "ticket_type",
        "device_model",
    ]
    minutes = {int(b[-3:-1]) for b in subjects["arrival_bucket"]}
    assert minutes <= {0, 15, 30, 45}  # floored to 15 minutes
    frame = metadata_frame(runtime.store, now=now)
    assert len(frame) == 8 and set(frame["mean_sentiment_band"]) <= {0, 20, 40, 60, 80}
    # the band is that of each wristband's mean score, read back through the decrypting store
    scores: dict[str, list[float]] = {}
    for record in runtime.store.iter_metadata(now=now, kind="window_score"):
        scores.setdefault(record.pseudonym, []).append(record.payload["score"])
    expected = sorted(int(sentiment_band([sum(v) / len(v)])[0]) for v in scores.values())
    assert sorted(frame["mean_sentiment_band"]) == expected
    # an erased wristband leaves both tables
    with runtime.store.transaction(now, actor="dsr") as tx:
        subject = tx.session.scalar(select(Subject).where(Subject.pseudonym == pseudonyms[0]))
        subject.erased_at = now
    assert len(subjects_frame(runtime.store)) == 11
    assert len(metadata_frame(runtime.store, now=now)) == 7
    # expired metadata is not readable, so it is not measured
    assert metadata_frame(runtime.store, now=now + timedelta(days=40)).empty
    assert len(subjects_frame(runtime.store, event_id=EVENT_ID)) == 11
    assert subjects_frame(runtime.store, event_id="other").empty


def test_sentiment_band_edges() -> None:
    assert list(sentiment_band([0, 19.99, 20, 59.5, 79.9, 80, 100, 130, -4])) == [
        0,
        0,
        20,
        40,
        60,
        80,
        80,
        80,
        0,
    ]


def _check(runtime: Runtime, now: datetime) -> list:
    ctx = CheckContext(
        runtime=runtime, policy=load_policy("privacy-by-default"), now=now, as_of=now.date()
    )
    return run_checks(ctx, only=["reid-threshold"])


def test_reid_threshold_check_waits_for_the_anonymisation_point(
    sqlite_runtime: Runtime, now: datetime
) -> None:
    """Inside its 72 h window, pseudonymous metadata is personal data, not a reid failure."""
    populate(sqlite_runtime, wristbands=15, seed=5)
    assert _check(sqlite_runtime, now) == []
    assert len(_check(sqlite_runtime, now + timedelta(hours=73))) == 1


def test_reid_threshold_check_fires_on_identifying_metadata(
    sqlite_runtime: Runtime, now: datetime
) -> None:
    populate(sqlite_runtime, wristbands=15, seed=5)
    (finding,) = _check(sqlite_runtime, now + timedelta(hours=73))
    assert finding.severity == "error"
    assert finding.legal_ref == "GDPR Recital 26; Art 5(1)(e)"
    assert f"event {EVENT_ID}" in finding.message and "< k_min 10" in finding.message
    assert finding.evidence["records"] == 15 and finding.evidence["k"] < 10
    assert "k_min" in {m["threshold"] for m in finding.evidence["missed"]}
    assert not any("WB-" in str(v) for v in finding.evidence.values())  # no serials


def test_reid_threshold_check_is_quiet_without_or_with_safe_metadata(
    sqlite_runtime: Runtime, now: datetime
) -> None:
    populate(sqlite_runtime, wristbands=30, with_scores=0, seed=1)
    assert _check(sqlite_runtime, now) == []  # no metadata kept: nothing to single out


def test_reid_threshold_check_passes_a_crowd_that_meets_the_policy(
    sqlite_runtime: Runtime, now: datetime
) -> None:
    store = sqlite_runtime.store
    policy = load_policy("privacy-by-default")
    with store.transaction(STARTS - timedelta(hours=1), actor="test") as tx:
        tx.register_event(
            EVENT_ID,
            name="x",
            starts_at=STARTS,
            ends_at=STARTS + timedelta(hours=6),
            policy_name=policy.name,
            policy_sha256=policy.sha256,
        )
        people = [
            tx.register_subject(
                f"WB-{i}",
                zone="A1",
                age_band="25-34",
                ticket_type="day",
                device_model="XW-2",
                arrival_at=STARTS,
            )
            for i in range(20)
        ]
    with store.transaction(STARTS + timedelta(hours=1), actor="pipeline") as tx:
        for i, pseudonym in enumerate(people):
            tx.put_metadata(
                event_id=EVENT_ID,
                pseudonym=pseudonym,
                kind="window_score",
                start_at=STARTS + timedelta(minutes=5),
                payload={"score": 30 + 20 * (i % 3)},
                retention=timedelta(days=30),
            )
    assert _check(sqlite_runtime, now + timedelta(hours=73)) == []


def test_export_metadata_refuses_then_generalises(
    sqlite_runtime: Runtime, tmp_path: Path, now: datetime
) -> None:
    populate(sqlite_runtime, wristbands=160, seed=2)
    policy = load_policy("privacy-by-default")
    out = tmp_path / "export.csv"
    with pytest.raises(GateRefusedError, match="export refused: k = "):
        export_metadata(sqlite_runtime.store, policy, out, now=now)
    assert not out.exists()  # nothing written on refusal
    result = export_metadata(sqlite_runtime.store, policy, out, now=now, generalise=True)
    written = pd.read_csv(out)
    assert len(written) == len(result.frame) > 0
    assert list(written.columns) == [*policy.reid.quasi_identifiers, "mean_sentiment_band"]
    check = assess(written, policy.reid.quasi_identifiers, ["mean_sentiment_band"])
    assert check.meets() and check.k >= 10
    with sqlite_runtime.store.session() as session:
        actions = [
            (e.action, e.details)
            for e in session.scalars(
                select(AuditEntry)
                .where(AuditEntry.action.like("export.%"))
                .order_by(AuditEntry.seq)
            )
        ]
    assert [a for a, _ in actions] == ["export.refused", "export.metadata"]
    refused, done = actions[0][1], actions[1][1]
    assert "k_min" in refused["missed"] and refused["records"] == 160
    assert done["k"] >= 10 and len(done["sha256"]) == 64 and done["levels"]


def _one_clean_error(result, *fragments: str, code: int | None = None) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code != 0 and (code is None or result.exit_code == code)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("flowaudit: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def filled_home(sqlite_home: Settings, now: datetime) -> Settings:
    rt = open_runtime(sqlite_home, now)
    try:
        populate(rt, wristbands=160, seed=2)
    finally:
        rt.close()
    return sqlite_home


def test_cli_export_refuses_with_exit_2_then_generalises(
    filled_home: Settings, tmp_path: Path
) -> None:
    home = ["--home", str(filled_home.home), "--now", NOW]
    out = tmp_path / "meta.json"
    refused = runner.invoke(app, ["export", "metadata", "--out", str(out), *home])
    _one_clean_error(refused, "export refused", "k_min 10", "--generalise", code=2)
    assert not out.exists()
    done = runner.invoke(
        app, ["export", "metadata", "--out", str(out), "--generalise", "--format", "json", *home]
    )
    assert done.exit_code == 0, done.output
    assert "generalised:" in done.output and "information loss" in done.output
    document = json.loads(out.read_text())
    assert document["figures"]["meets"] is True and document["figures"]["k"] >= 10
    assert document["generalisation"]["suppressed_share"] <= 0.05
    assert len(document["rows"]) == document["records"]
    assert "pseudonym" not in document["rows"][0]
    bad = runner.invoke(app, ["export", "metadata", "--out", str(out), "--format", "xml", *home])
    _one_clean_error(bad, "--format 'xml'")
    missing_dir = runner.invoke(
        app, ["export", "metadata", "--out", str(tmp_path / "no" / "x.csv"), "--generalise", *home]
    )
    _one_clean_error(missing_dir, "does not exist")


def test_cli_reid_on_store_tables(filled_home: Settings) -> None:
    home = ["--home", str(filled_home.home), "--now", NOW]
    result = runner.invoke(app, ["reid", "--table", "metadata", "--format", "json", *home])
    assert result.exit_code == 1  # misses the policy
    figures = json.loads(result.stdout)
    assert figures["records"] == 160 and figures["meets"] is False
    assert figures["sensitive"][0]["name"] == "mean_sentiment_band"
    subjects = runner.invoke(
        app, ["reid", "--table", "subjects", "--k-min", "1", "--max-risk", "1", *home]
    )
    assert subjects.exit_code == 0, subjects.output
    assert "verdict: meets every threshold" in subjects.output
    journalist = runner.invoke(app, ["reid", "--population", "subjects", "--format", "json", *home])
    assert json.loads(journalist.stdout)["population"] == 160
    suggested = runner.invoke(app, ["reid", "--suggest", *home])
    assert "suggestion:" in suggested.output
    _one_clean_error(runner.invoke(app, ["reid", "--table", "raw", *home]), "unknown --table")
