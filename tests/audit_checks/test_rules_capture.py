"""Capture rules: speech, event window, consent, staff, biometrics."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import delete

from audit.checks.consent import consent_problem
from flowaudit.runtime import Runtime
from retention.models import RawSegment

from .scene import ENDS, STARTS, by_rule, clean_scene

SPEECH = "speech-stored"
WINDOW = "capture-outside-event-window"
CONSENT = "data-without-consent"
STAFF = "staff-wristbands-processed"
BIO = "biometrics-without-explicit-consent"
AT = STARTS + timedelta(minutes=20)
CHECK = ENDS + timedelta(hours=1)  # before any retention ends


# -- speech -------------------------------------------------------------------------------------
def test_speech_stored_against_policy_fires(runtime: Runtime) -> None:
    scene = clean_scene(runtime, "apple-music-2025")  # store_speech = false, raw 24 h
    pseudonym = scene.wristband()
    rid = scene.raw(pseudonym, AT, speech_frames=3)
    scene.raw(pseudonym, AT + timedelta(seconds=1), speech_frames=0)
    (finding,) = by_rule(scene.findings(CHECK), SPEECH)
    assert finding.evidence["records"] == 1 and finding.evidence["record_ids"] == [rid]
    assert finding.evidence["speech_frames"] == 3
    assert finding.evidence["logged_writes_with_speech"] == 1
    assert scene.errors(CHECK) == {SPEECH}


def test_no_speech_frames_is_clean(runtime: Runtime) -> None:
    scene = clean_scene(runtime, "apple-music-2025")
    scene.raw(scene.wristband(), AT, speech_frames=0)
    assert scene.errors(CHECK) == set()


def test_speech_is_proven_from_the_log_after_the_audio_is_gone(runtime: Runtime) -> None:
    scene = clean_scene(runtime, "apple-music-2025")
    scene.raw(scene.wristband(), AT, speech_frames=5)
    with scene.store.transaction(CHECK, actor="test") as tx:
        tx.session.execute(delete(RawSegment))
    (finding,) = by_rule(scene.findings(CHECK), SPEECH)
    assert finding.evidence["records"] == 0
    assert finding.evidence["logged_writes_with_speech"] == 1


def test_speech_allowed_by_policy_is_not_this_finding(runtime: Runtime) -> None:
    scene = clean_scene(runtime, "spotify-2026")  # store_speech = true
    scene.raw(scene.wristband(), AT, speech_frames=5)
    assert by_rule(scene.findings(CHECK), SPEECH) == []


# -- event window -------------------------------------------------------------------------------
def test_capture_after_the_event_fires(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    pseudonym = scene.wristband()
    late = scene.score(pseudonym, ENDS + timedelta(minutes=30))
    (finding,) = by_rule(scene.findings(CHECK), WINDOW)
    assert finding.evidence["after_end"] == 1 and finding.evidence["before_start"] == 0
    assert finding.evidence["record_ids"] == [late]
    assert scene.errors(CHECK) == {WINDOW}


def test_raw_capture_before_the_event_fires(runtime: Runtime) -> None:
    scene = clean_scene(runtime, "apple-music-2025")
    scene.raw(scene.wristband(), STARTS - timedelta(minutes=10))
    (finding,) = by_rule(scene.findings(CHECK), WINDOW)
    assert finding.evidence["raw_segments"] == 1 and finding.evidence["before_start"] == 1


def test_a_window_straddling_the_event_start_is_not_outside(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    pseudonym = scene.wristband(given_at=STARTS - timedelta(hours=1))
    scene.score(pseudonym, STARTS - timedelta(seconds=6))
    assert by_rule(scene.findings(CHECK), WINDOW) == []
    early = scene.score(pseudonym, STARTS - timedelta(seconds=40))
    (finding,) = by_rule(scene.findings(CHECK), WINDOW)
    assert finding.evidence["record_ids"] == [early]


def test_capture_inside_the_window_and_crowd_aggregates_are_clean(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    scene.score(scene.wristband(), ENDS - timedelta(seconds=1))
    scene.score(None, ENDS + timedelta(minutes=5), kind="crowd_summary")  # no wristband
    assert scene.errors(CHECK) == set()


# -- consent ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "wristband, reason",
    [
        ({"consent": "opted_out"}, "opted_out"),
        ({"consent": None}, "no_consent"),
        ({"consent": "withdrawn", "withdrawn_at": AT - timedelta(minutes=1)}, "after_withdrawal"),
        ({"consent": "opted_in", "given_at": AT + timedelta(minutes=1)}, "before_consent"),
    ],
)
def test_data_without_consent_fires(runtime: Runtime, wristband: dict, reason: str) -> None:
    scene = clean_scene(runtime)
    pseudonym = scene.wristband(**wristband)
    scene.score(pseudonym, AT)
    (finding,) = by_rule(scene.findings(CHECK), CONSENT)
    assert finding.evidence["records_by_reason"] == {reason: 1}
    assert finding.evidence["pseudonyms"] == [pseudonym]
    assert scene.errors(CHECK) == {CONSENT}


def test_records_before_withdrawal_are_covered(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    pseudonym = scene.wristband(consent="withdrawn", withdrawn_at=AT + timedelta(minutes=1))
    scene.score(pseudonym, AT)
    assert scene.errors(CHECK) == set()
    scene.score(pseudonym, AT + timedelta(minutes=2))
    (finding,) = by_rule(scene.findings(CHECK), CONSENT)
    assert finding.evidence["records"] == 1


@pytest.mark.parametrize(
    "status, given, withdrawn, required, expected",
    [
        ("opted_in", None, None, True, None),  # valid
        (None, None, None, True, "no_consent"),  # invalid: nothing recorded
        (None, None, None, False, None),  # valid: another lawful basis
        ("opted_out", None, None, False, "opted_out"),  # invalid even without the requirement
        ("withdrawn", None, None, True, "after_withdrawal"),  # invalid: time unknown
        ("withdrawn", None, AT, True, "after_withdrawal"),  # invalid: at the withdrawal instant
        ("withdrawn", None, AT + timedelta(seconds=1), True, None),  # valid: before it
        ("opted_in", AT + timedelta(seconds=1), None, True, "before_consent"),  # invalid
    ],
)
def test_consent_problem_table(status, given, withdrawn, required, expected) -> None:
    assert consent_problem(AT, status, given, withdrawn, required) == expected


@pytest.mark.parametrize(
    "given_after, slack, expected",
    [
        (10, 30, None),  # valid: a window straddling the moment of consent
        (30, 30, None),  # valid: at the slack's edge
        (31, 30, "before_consent"),  # invalid: the whole window predates consent
        (1, 0, "before_consent"),  # invalid: raw audio gets no slack
    ],
)
def test_consent_slack_for_window_records(given_after: int, slack: int, expected) -> None:
    given = AT + timedelta(seconds=given_after)
    assert consent_problem(AT, "opted_in", given, None, True, timedelta(seconds=slack)) == expected


def test_window_scores_straddling_consent_are_covered_but_raw_is_not(runtime: Runtime) -> None:
    scene = clean_scene(runtime, "apple-music-2025")
    pseudonym = scene.wristband(given_at=AT + timedelta(seconds=10))
    scene.score(pseudonym, AT)  # window start, 10 s before consent: covered
    assert by_rule(scene.findings(CHECK), CONSENT) == []
    rid = scene.raw(pseudonym, AT)  # raw audio stamped with its first frame: not covered
    (finding,) = by_rule(scene.findings(CHECK), CONSENT)
    assert finding.evidence["record_ids"] == [rid]


# -- staff --------------------------------------------------------------------------------------
def test_staff_wristband_processed_fires(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    staff = scene.wristband(is_staff=True)
    scene.score(staff, AT)
    (finding,) = by_rule(scene.findings(CHECK), STAFF)
    assert finding.severity == "error" and finding.legal_ref == "AI Act Art 5(1)(f)"
    assert finding.evidence["wristbands"] == 1 and finding.evidence["pseudonyms"] == [staff]
    assert scene.errors(CHECK) == {STAFF}


def test_staff_before_the_prohibition_applies_is_a_warning(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    scene.score(scene.wristband(is_staff=True), AT)
    (finding,) = by_rule(scene.findings(CHECK, as_of=date(2025, 2, 1)), STAFF)
    assert finding.severity == "warning"


def test_registered_staff_without_records_is_clean(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    scene.wristband(is_staff=True)
    assert scene.errors(CHECK) == set()


# -- biometrics ---------------------------------------------------------------------------------
def test_biometrics_without_explicit_consent_fires(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    pseudonym = scene.wristband(biometrics_explicit=False)
    rid = scene.score(pseudonym, AT, kind="biometric_hr", payload={"bpm": 112})
    (finding,) = by_rule(scene.findings(CHECK), BIO)
    assert finding.evidence["record_ids"] == [rid]
    assert finding.evidence["by_kind"] == {"biometric_hr": 1}
    assert scene.errors(CHECK) == {BIO}


def test_biometrics_with_explicit_consent_is_clean(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    pseudonym = scene.wristband(biometrics_explicit=True)
    scene.score(pseudonym, AT, kind="biometric", payload={"eda": 0.4})
    assert scene.errors(CHECK) == set()
