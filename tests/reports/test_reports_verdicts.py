"""Reports state the check registry's verdicts, nothing else.

* on the same data and options, every verdict a report's JSON states is a finding (or the
  pass) that ``flowaudit audit check --format json`` gives for that rule id;
* a violation a check catches shows up in the report, in the section about it, under its
  rule id — and the same section says the rule passed when the violation is absent.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from audit.checks import rules
from audit.reports import ReportContext, build_report, render
from flowaudit.cli import app
from flowaudit.runtime import Runtime
from tests.audit_checks.scene import ENDS, STARTS, Scene, clean_scene

from .conftest import SCENE_EVENT, Built, build_scene

STORE_KINDS = ("gdpr", "retention", "dpia", "dsa", "ai-act")
runner = CliRunner()


def _cli_json(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


@pytest.fixture
def scene_home(sqlite_runtime: Runtime, tmp_path: Path) -> Built:
    return build_scene(sqlite_runtime, tmp_path)


def test_report_verdicts_equal_audit_check_findings(scene_home: Built, tmp_path: Path) -> None:
    """The same home, event and instant through both commands: same rule ids, severities and
    messages; every rule a report says passed has no finding in `audit check`."""
    base = ["--home", str(scene_home.runtime.settings.home), "--now", scene_home.now.isoformat()]
    checked = _cli_json("audit", "check", "--event", SCENE_EVENT, "--format", "json", *base)
    found = Counter((f["rule_id"], f["severity"], f["message"]) for f in checked["findings"])
    assert found, "the scene should break some rules (spotify-2026, requests overdue)"
    for kind in STORE_KINDS:
        out = tmp_path / kind
        result = runner.invoke(app, ["report", kind, "--format", "json", "--out", str(out), *base])
        assert result.exit_code == 0, result.output
        document = json.loads((out / f"{kind}.json").read_text(encoding="utf-8"))
        assert document["meta"]["as_of"] == checked["as_of"]
        assert document["meta"]["policy"]["name"] == checked["policy"]
        verdicts = document["data"]["verdicts"]
        assert verdicts, kind
        named = {v["rule_id"] for v in verdicts}
        stated = Counter(
            (v["rule_id"], v["severity"], v["message"])
            for v in verdicts
            if v["severity"] is not None
        )
        # per section, a rule's findings appear once each; a section may repeat another's rule
        for section in {v["section"] for v in verdicts}:
            mine = [v for v in verdicts if v["section"] == section and v["severity"] is not None]
            assert Counter((v["rule_id"], v["severity"], v["message"]) for v in mine) <= found
        assert set(stated) <= set(found), kind
        passed = {v["rule_id"] for v in verdicts if v["status"] == "pass"}
        assert not passed & {rule_id for rule_id, _, _ in found}, kind
        for rule_id, severity, message in found:
            if rule_id in named and not _category_scoped(verdicts, rule_id):
                assert (rule_id, severity, message) in stated, (kind, rule_id)
        if "findings" in document["data"] and kind in ("gdpr", "dpia"):
            listed = document["data"]["findings"]["findings"]
            assert Counter((f["rule_id"], f["severity"], f["message"]) for f in listed) == found


def _category_scoped(verdicts: list[dict[str, Any]], rule_id: str) -> bool:
    """A rule shown only per data category (retention report) lists that category's findings."""
    return all(v["section"].startswith("cat-") for v in verdicts if v["rule_id"] == rule_id)


def test_every_verdict_names_a_registered_rule(pipeline_stores: dict[str, Built]) -> None:
    known = {r.id: r for r in rules()}
    for b in pipeline_stores.values():
        ctx = ReportContext.open(b.runtime, now=b.now, event_id=b.event_id)
        for kind in STORE_KINDS:
            for v in build_report(kind, ctx).data["verdicts"]:
                rule = known[v["rule_id"]]
                assert (v["title"], v["legal_ref"]) == (rule.title, rule.legal_ref)
                assert (v["severity"] is None) is (v["status"] == "pass")


def test_checks_run_once_per_report_context(pipeline_stores: dict[str, Built]) -> None:
    b = pipeline_stores["privacy-by-default"]
    ctx = ReportContext.open(b.runtime, now=b.now, event_id=b.event_id)
    first = ctx.findings()
    for kind in STORE_KINDS:
        build_report(kind, ctx)
    assert ctx.findings() is first


# -- a violation caught by a check is in the report, under its rule id ---------------------------
AT = STARTS + timedelta(minutes=20)
CHECK = ENDS + timedelta(hours=1)


def _speech(scene: Scene) -> None:
    scene.raw(scene.wristband(), AT, speech_frames=3, retention=timedelta(hours=24))


def _staff(scene: Scene) -> None:
    scene.score(scene.wristband(is_staff=True), AT)


def _no_explanation(scene: Scene) -> None:
    scene.decision(AT, explanation="")


def _row_deleted(scene: Scene) -> None:
    from sqlalchemy import delete, select

    from retention.models import MetadataRecord

    with scene.runtime.engine.begin() as conn:
        rid = conn.execute(select(MetadataRecord.id).order_by(MetadataRecord.id)).scalar()
        conn.execute(delete(MetadataRecord).where(MetadataRecord.id == rid))


def _overdue(scene: Scene) -> None:
    scene.subject_request(scene.wristband(), CHECK - timedelta(days=45))


def _early_capture(scene: Scene) -> None:
    scene.score(
        scene.wristband(given_at=STARTS + timedelta(hours=2)), STARTS + timedelta(minutes=5)
    )


VIOLATIONS: list[tuple[str, Callable[[Scene], None], str, str, str, str]] = [
    # (policy, violation, kind, section, rule id, level)
    ("privacy-by-default", _speech, "dpia", "b-necessity", "speech-stored", "fail"),
    ("privacy-by-default", _staff, "ai-act", "staff", "staff-wristbands-processed", "fail"),
    (
        "apple-music-2025",
        _no_explanation,
        "dsa",
        "statistics",
        "decision-without-explanation",
        "fail",
    ),
    (
        "privacy-by-default",
        _row_deleted,
        "retention",
        "cat-metadata",
        "audit-log-store-mismatch",
        "warn",
    ),
    ("privacy-by-default", _overdue, "gdpr", "dsr", "overdue-subject-request", "fail"),
    ("privacy-by-default", _early_capture, "gdpr", "lawful-basis", "data-without-consent", "fail"),
    (
        "privacy-by-default",
        _early_capture,
        "ai-act",
        "notice",
        "emotion-recognition-notice",
        "warn",
    ),
]


@pytest.mark.parametrize(
    "policy, violate, kind, section, rule_id, level",
    VIOLATIONS,
    ids=[v[4] for v in VIOLATIONS],
)
def test_a_violation_caught_by_a_check_is_in_the_report(
    sqlite_runtime: Runtime,
    policy: str,
    violate: Callable[[Scene], None],
    kind: str,
    section: str,
    rule_id: str,
    level: str,
) -> None:
    scene = clean_scene(sqlite_runtime, policy)

    def verdicts() -> list[dict[str, Any]]:
        ctx = ReportContext.open(sqlite_runtime, now=CHECK, event_id=scene.event_id)
        report = build_report(kind, ctx)
        mine = [v for v in report.data["verdicts"] if v["rule_id"] == rule_id]
        assert mine and {v["section"] for v in mine} >= {section}
        expected = {(f.rule_id, f.message) for f in ctx.findings() if f.rule_id == rule_id}
        shown = {(v["rule_id"], v["message"]) for v in mine if v["severity"] is not None}
        assert shown == expected
        return [v for v in mine if v["section"] == section]

    before = verdicts()
    assert [v["status"] for v in before] == ["pass"]
    violate(scene)
    after = verdicts()
    assert [v["status"] for v in after] == [level]
    md = render(build_report(kind, ReportContext.open(sqlite_runtime, now=CHECK)), "md")
    assert f"**{level.upper()}** — `{rule_id}`" in md
