"""Governance rules: decision parameters (DSA Art 27), DSR deadlines, the log's own integrity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from audit.checks import run_checks
from audit.checks.dsr_overdue import add_months
from audit.log.checkpoints import (
    load_anchor,
    load_signer,
    make_anchor,
    write_anchor,
    write_checkpoint,
)
from flowaudit.runtime import Runtime
from retention.models import AuditCheckpoint, AuditEntry

from .scene import ENDS, STARTS, by_rule, clean_scene

DECISION = "decision-without-main-parameters"
DSR = "overdue-subject-request"
LOG = "audit-log-verification"
AT = STARTS + timedelta(minutes=20)
CHECK = ENDS + timedelta(hours=1)


# -- decisions ----------------------------------------------------------------------------------
@pytest.mark.parametrize("parameters", [{}, {"threshold": 40.0}, {"weights": {}}])
def test_decision_without_parameters_is_an_error_for_an_online_platform(
    runtime: Runtime, parameters: dict
) -> None:
    scene = clean_scene(runtime, "apple-music-2025")  # online platform, large enterprise
    bad = scene.decision(AT, parameters)
    (finding,) = by_rule(scene.findings(CHECK), DECISION)
    assert finding.severity == "error"
    assert finding.evidence["decision_ids"] == [bad]
    assert finding.evidence["decisions"] == 2 and finding.evidence["dsa_art27_applies"]
    assert scene.errors(CHECK) == {DECISION}


def test_decision_without_parameters_is_a_warning_outside_the_dsa(runtime: Runtime) -> None:
    scene = clean_scene(runtime)  # privacy-by-default: not an online platform
    scene.decision(AT, {})
    (finding,) = by_rule(scene.findings(CHECK), DECISION)
    assert finding.severity == "warning" and not finding.evidence["dsa_art27_applies"]


def test_decisions_with_weights_are_clean(runtime: Runtime) -> None:
    scene = clean_scene(runtime, "apple-music-2025")
    scene.decision(AT)
    assert by_rule(scene.findings(CHECK), DECISION) == []


# -- data-subject requests ----------------------------------------------------------------------
RECEIVED = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


def test_open_request_past_one_month_is_overdue(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    rid = scene.subject_request(scene.wristband(), RECEIVED)
    now = RECEIVED + timedelta(days=40)
    (finding,) = by_rule(scene.findings(now), DSR)
    assert finding.severity == "error"
    assert finding.evidence["request_ids"] == [rid] and finding.evidence["most_days_late"] == 10
    scene.purge(now)  # the event's metadata (30 d) has expired by now: purge it
    assert scene.errors(now) == {DSR}


def test_open_request_within_its_extension_is_clean(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    scene.subject_request(scene.wristband(), RECEIVED, extended_to=RECEIVED + timedelta(days=60))
    assert by_rule(scene.findings(RECEIVED + timedelta(days=40)), DSR) == []
    (finding,) = by_rule(scene.findings(RECEIVED + timedelta(days=61)), DSR)
    assert finding.evidence["most_days_late"] == 1


def test_an_extension_beyond_three_months_is_capped(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    scene.subject_request(scene.wristband(), RECEIVED, extended_to=RECEIVED + timedelta(days=200))
    assert by_rule(scene.findings(RECEIVED + timedelta(days=91)), DSR) == []
    (finding,) = by_rule(scene.findings(RECEIVED + timedelta(days=100)), DSR)
    assert finding.evidence["most_days_late"] == 8  # 1 Jul + 3 months = 1 Oct (92 days)


def test_requests_answered_in_time_are_clean_and_late_ones_warn(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    pseudonym = scene.wristband()
    scene.subject_request(pseudonym, RECEIVED, completed_at=RECEIVED + timedelta(days=3))
    now = RECEIVED + timedelta(days=100)
    assert by_rule(scene.findings(now), DSR) == []
    scene.subject_request(pseudonym, RECEIVED, completed_at=RECEIVED + timedelta(days=35))
    (finding,) = by_rule(scene.findings(now), DSR)
    assert finding.severity == "warning" and finding.evidence["requests"] == 1


@pytest.mark.parametrize(
    "start, months, expected",
    [
        (datetime(2026, 1, 31, tzinfo=UTC), 1, datetime(2026, 2, 28, tzinfo=UTC)),
        (datetime(2028, 1, 31, tzinfo=UTC), 1, datetime(2028, 2, 29, tzinfo=UTC)),
        (datetime(2026, 11, 15, tzinfo=UTC), 3, datetime(2027, 2, 15, tzinfo=UTC)),
        (datetime(2026, 7, 1, 9, tzinfo=UTC), 3, datetime(2026, 10, 1, 9, tzinfo=UTC)),
    ],
)
def test_add_months(start: datetime, months: int, expected: datetime) -> None:
    assert add_months(start, months) == expected


# -- the log itself -----------------------------------------------------------------------------
def test_a_sealed_untouched_log_passes(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    scene.seal(CHECK)
    assert by_rule(scene.findings(CHECK), LOG) == []


def test_an_unsealed_tail_is_an_error(runtime: Runtime) -> None:
    """Nothing proves who wrote entries after the last signed checkpoint (issue 14)."""
    scene = clean_scene(runtime)
    (finding,) = by_rule(scene.findings(CHECK, sealed=False), LOG)
    assert finding.severity == "error" and finding.evidence["unsigned_tail"] > 0
    assert "signed checkpoint" in finding.message


def test_an_edited_entry_fails_with_its_sequence_number(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    scene.seal(CHECK)
    with scene.store.transaction(CHECK, actor="attacker") as tx:
        tx.session.execute(update(AuditEntry).where(AuditEntry.seq == 7).values(actor="nobody"))
    (finding,) = by_rule(scene.findings(CHECK), LOG)
    assert finding.severity == "error" and finding.evidence["first_bad_seq"] == 7
    assert scene.errors(CHECK) == {LOG}


def test_a_truncated_log_fails_against_the_anchor(runtime: Runtime, tmp_path: Path) -> None:
    scene = clean_scene(runtime)
    signer = load_signer(runtime.settings.signing_key_file)
    assert signer is not None
    with scene.store.transaction(CHECK, actor="audit") as tx:
        checkpoint = write_checkpoint(tx.session, signer, CHECK)
        assert checkpoint is not None
        head = checkpoint.seq
        write_anchor(tmp_path / "anchor.json", make_anchor(checkpoint, signer.public_key))
    with scene.store.transaction(CHECK, actor="attacker") as tx:
        tx.session.execute(delete(AuditEntry).where(AuditEntry.seq >= head - 1))
        tx.session.execute(delete(AuditCheckpoint))
    # alone the cut is invisible, but with the checkpoints gone nothing is signed any more
    (alone,) = by_rule(scene.findings(CHECK, sealed=False), LOG)
    assert alone.severity == "error" and alone.evidence["first_bad_seq"] == 1
    ctx = scene.context(CHECK)
    ctx.anchor = load_anchor(tmp_path / "anchor.json")
    (finding,) = run_checks(ctx, [LOG])
    assert finding.severity == "error" and finding.evidence["first_bad_seq"] == head - 1
