"""The demo event run by the real pipeline (`flowaudit run-event`), checked under two policies.

The bundled event file, shrunk to a dozen wristbands, is run twice into one home: once under
privacy-by-default and once under spotify-2026 (the article's 72 h raw PCM and indefinite
metadata). The checks must find nothing wrong with the first once retention has run, and must
find exactly what the article describes in the second. The real purge job then shows that
deletion evidence clears the retention findings — and only those.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from flowaudit.cli import app
from flowaudit.config import Settings
from flowaudit.runtime import initialise_home, open_runtime
from pipeline.event import default_event_file
from retention.ground.times import parse_time

from .scene import OWN_RULES

DEMO_EVENT_DIR = default_event_file().parent  # the demo event shipped in the package
AFTER_SET = "2026-06-21T21:00:00Z"  # an hour after the set
AFTER_72H = "2026-06-25T21:00:00Z"  # past spotify's 72 h raw retention and the 72 h anonymisation
runner = CliRunner()


def _small_event(target: Path) -> Path:
    """The demo event file with 12 wristbands (one of them staff) and absolute paths."""
    source = (DEMO_EVENT_DIR / "fete-2026.toml").read_text(encoding="utf-8")
    source = re.sub(r"(?m)^count = \d+", "count = 12", source)
    source = re.sub(r"(?m)^staff = \d+", "staff = 1", source)
    source = source.replace('"catalogue.csv"', f'"{DEMO_EVENT_DIR / "catalogue.csv"}"')
    source = source.replace('"artist/', f'"{DEMO_EVENT_DIR}/artist/')
    target.write_text(source, encoding="utf-8")
    return target


def _cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code in (0, 1), result.output
    return result.output


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as env:
        for var in ("FLOWAUDIT_HOME", "FLOWAUDIT_DB_URL", "FLOWAUDIT_MASTER_KEY", "FLOWAUDIT_NOW"):
            env.delenv(var, raising=False)
        settings = initialise_home(root / "home", environ={})
        event = _small_event(root / "event.toml")
        for policy, event_id in (("privacy-by-default", "pbd"), ("spotify-2026", "spot")):
            result = runner.invoke(
                app,
                [
                    "run-event",
                    "--home",
                    str(settings.home),
                    "--event",
                    str(event),
                    "--policy",
                    policy,
                    "--event-id",
                    event_id,
                    "--format",
                    "json",
                ],
            )
            assert result.exit_code == 0, result.output
        yield settings


def _check(home: Settings, event_id: str, now: str) -> dict:
    output = _cli(
        "audit",
        "check",
        "--home",
        str(home.home),
        "--event",
        event_id,
        "--now",
        now,
        "--format",
        "json",
    )
    return json.loads(output)


def _errors(report: dict) -> set[str]:
    return {f["rule_id"] for f in report["findings"] if f["severity"] == "error"}


def test_privacy_by_default_run_breaks_none_of_the_rules(demo_home: Settings) -> None:
    report = _check(demo_home, "pbd", AFTER_SET)
    own = [f for f in report["findings"] if f["rule_id"] in OWN_RULES]
    assert own == [], own
    # Until anonymise_metadata_after (72 h) the per-wristband scores are pseudonymous personal
    # data held under consent, not "kept" metadata: no rule may report an error now.
    assert _errors(report) == set(), report["findings"]


def test_spotify_violations_and_what_the_purge_job_clears(demo_home: Settings) -> None:
    """One test, because the purge changes the shared home: before, then after."""
    report = _check(demo_home, "spot", AFTER_72H)
    errors = _errors(report)
    assert {
        "indefinite-linkable-metadata",  # metadata kept "indefinitely", still linkable
        "raw-audio-past-retention",  # 72 h raw PCM still decryptable on day 4
        "expired-bucket-without-purge-receipt",  # and no evidence that it was ever deleted
        "capture-outside-event-window",  # event_window_only = false: "always listening"
    } <= errors
    assert "speech-stored" not in errors  # spotify-2026 allows storing speech: not this rule
    by_rule = {f["rule_id"]: f for f in report["findings"]}
    raw = by_rule["raw-audio-past-retention"]["evidence"]
    assert raw["records_remaining"] > 0 and raw["category"] == "raw_audio"
    assert by_rule["indefinite-linkable-metadata"]["evidence"]["wristbands"] > 0

    output = _cli("purge", "--home", str(demo_home.home), "--now", AFTER_72H, "--format", "json")
    assert json.loads(output)
    after = _errors(_check(demo_home, "spot", AFTER_72H))
    assert "raw-audio-past-retention" not in after
    assert "expired-bucket-without-purge-receipt" not in after
    assert "indefinite-linkable-metadata" in after  # nothing to purge: the policy never ends it
    pbd = _check(demo_home, "pbd", AFTER_72H)
    assert pbd["findings"] == [], pbd["findings"]  # privacy-by-default: fully clean
    result = runner.invoke(app, ["audit", "verify", "--home", str(demo_home.home)])
    assert result.exit_code == 0, result.output


def test_the_demo_log_holds_no_serial_or_request_text(demo_home: Settings) -> None:
    runtime = open_runtime(demo_home, parse_time(AFTER_72H), environ={})
    try:
        with runtime.engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM audit_log")).all()
    finally:
        runtime.close()
    dump = json.dumps([[str(v) for v in row] for row in rows])
    assert len(rows) > 100
    assert re.search(r"WB-\d{6}|WB-ARTIST", dump) is None  # serials never enter the log
    for fragment in ("Camille", "lea.martin", "06 12 34 56 78", "anniversaire"):
        assert fragment not in dump
