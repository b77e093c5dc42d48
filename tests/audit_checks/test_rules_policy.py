"""Rules judged from the policy an event ran under: each fires under a policy that has the gap
and stays silent under one that does not, with the severity its legal date gives it."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from audit.checks import CheckContext, run_checks
from audit.legal_dates import AI_ACT_ANNEX_III
from flowaudit.runtime import Runtime
from retention.policy import Policy, load_policy

from .scene import ENDS, by_rule, clean_scene

CHECK = ENDS + timedelta(hours=1)
POLICY_RULES = (
    "capture-outside-event-window",
    "speech-stored-by-policy",
    "no-dpo-contact",
    "legitimate-interests-without-balancing-test",
    "artists-without-options",
    "no-human-oversight",
    "audit-log-retention-too-short",
    "policy-changed-since-event",
)


def _variant(tmp_path: Path, old: str, new: str, base: str = "privacy-by-default") -> Policy:
    text = Path(load_policy(base).source).read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "variant.toml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return load_policy(path)


@pytest.mark.parametrize(
    "rule_id, message",
    [
        ("no-dpo-contact", "names no DPO"),
        ("legitimate-interests-without-balancing-test", "balancing test"),
        ("artists-without-options", 'artist_control = "none"'),
    ],
)
def test_spotify_gaps_are_warnings(sqlite_runtime: Runtime, rule_id: str, message: str) -> None:
    scene = clean_scene(sqlite_runtime, "spotify-2026")
    (finding,) = by_rule(scene.findings(CHECK, only=[rule_id]), rule_id)
    assert finding.severity == "warning"
    assert message in finding.message
    assert finding.evidence == {
        **finding.evidence,
        "event": scene.event_id,
        "policy": "spotify-2026",
    }


def test_privacy_by_default_has_none_of_the_policy_gaps(sqlite_runtime: Runtime) -> None:
    scene = clean_scene(sqlite_runtime)
    assert scene.findings(CHECK, only=POLICY_RULES) == []


@pytest.mark.parametrize(
    "as_of, severity",
    [
        (date(2026, 6, 21), "info"),  # the demo event: Annex III duties not yet binding
        (AI_ACT_ANNEX_III - timedelta(days=1), "info"),
        (AI_ACT_ANNEX_III, "warning"),  # from the (deferred) Annex III date
        (date(2030, 1, 1), "warning"),
    ],
)
def test_human_oversight_binds_from_the_annex_iii_date(
    sqlite_runtime: Runtime, as_of: date, severity: str
) -> None:
    spotify = clean_scene(sqlite_runtime, "spotify-2026")
    (finding,) = spotify.findings(CHECK, only=["no-human-oversight"], as_of=as_of)
    assert finding.severity == severity
    assert finding.evidence["applies_from"] == AI_ACT_ANNEX_III.isoformat()


@pytest.mark.parametrize(
    "as_of, severity",
    [
        (AI_ACT_ANNEX_III - timedelta(days=1), "warning"),  # before the Annex III date
        (AI_ACT_ANNEX_III, "error"),  # from it
    ],
)
def test_short_audit_log_retention(
    sqlite_runtime: Runtime, tmp_path: Path, as_of: date, severity: str
) -> None:
    short = _variant(tmp_path, 'audit_log = "183d"', 'audit_log = "90d"')
    scene = clean_scene(sqlite_runtime)
    (finding,) = scene.findings(
        CHECK, only=["audit-log-retention-too-short"], policy=short, as_of=as_of
    )
    assert finding.severity == severity
    assert finding.evidence["audit_log"] == "90d" and finding.evidence["minimum"] == "183d"


def test_six_months_of_audit_log_is_enough(sqlite_runtime: Runtime, tmp_path: Path) -> None:
    indefinite = _variant(tmp_path, 'audit_log = "183d"', 'audit_log = "indefinite"')
    scene = clean_scene(sqlite_runtime)
    for policy in (None, indefinite):  # 183d as shipped, and indefinite
        assert (
            scene.findings(
                CHECK, only=["audit-log-retention-too-short"], policy=policy, as_of=AI_ACT_ANNEX_III
            )
            == []
        )


def test_a_policy_other_than_the_one_the_event_ran_under_is_flagged(
    sqlite_runtime: Runtime,
) -> None:
    scene = clean_scene(sqlite_runtime)  # ran under privacy-by-default
    other = load_policy("tiktok-2026")
    (finding,) = scene.findings(CHECK, only=["policy-changed-since-event"], policy=other)
    assert finding.severity == "warning"
    assert finding.evidence["ran_under"] == "privacy-by-default"
    assert finding.evidence["evaluated_sha256"] == other.sha256
    assert scene.findings(CHECK, only=["policy-changed-since-event"]) == []


def test_an_edited_policy_file_is_flagged(sqlite_runtime: Runtime, tmp_path: Path) -> None:
    """Same name, different contents: the hash recorded with the event tells them apart."""
    edited = _variant(tmp_path, 'audit_log = "183d"', 'audit_log = "200d"')
    assert edited.name == "privacy-by-default"
    scene = clean_scene(sqlite_runtime)
    ctx = CheckContext(
        runtime=sqlite_runtime, policy=edited, now=CHECK, as_of=CHECK.date(), policy_explicit=True
    )
    (finding,) = run_checks(ctx, ["policy-changed-since-event"])
    assert finding.evidence["ran_under"] == finding.evidence["evaluated_against"]
    assert finding.evidence["ran_under_sha256"] == scene.policy.sha256 != edited.sha256


def test_capture_outside_the_window_allowed_by_policy_is_a_warning(
    sqlite_runtime: Runtime,
) -> None:
    """spotify-2026 lets wristbands keep listening: a warning before any such record exists."""
    scene = clean_scene(sqlite_runtime, "spotify-2026")
    rule_id = "capture-outside-event-window"
    (finding,) = by_rule(scene.findings(CHECK, only=[rule_id]), rule_id)
    assert finding.severity == "warning" and finding.evidence["records"] == 0
    pseudonym = scene.wristband()
    scene.score(pseudonym, ENDS + timedelta(minutes=5))  # then one record after the end
    (finding,) = by_rule(scene.findings(CHECK, only=[rule_id]), rule_id)
    assert finding.severity == "error" and finding.evidence["after_end"] == 1
