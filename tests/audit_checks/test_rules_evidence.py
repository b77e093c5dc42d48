"""Rules that took over verdicts the reports used to make: each built through the real store,
once without the violation (no finding) and once with it (the finding and its evidence)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import delete, event, select, update

from audit.checks import CheckContext, run_checks
from audit.legal_dates import AI_ACT_TRANSPARENCY
from flowaudit.runtime import Runtime
from retention.keys import load_master_key
from retention.models import MetadataRecord, RetentionBucket
from retention.store import EncryptedStore
from retention.subject_requests import erase_subject
from tests.foundation.memory_keys import InMemoryKeyProvider

from .scene import ENDS, STARTS, by_rule, clean_scene

CHECK = ENDS + timedelta(hours=1)
AT = STARTS + timedelta(minutes=20)


# -- speech kept because the policy allows it -----------------------------------------------------
def test_speech_stored_under_a_policy_that_allows_it_is_a_warning(runtime: Runtime) -> None:
    scene = clean_scene(runtime, "spotify-2026")  # store_speech = true
    rules = ["speech-stored", "speech-stored-by-policy"]
    assert scene.findings(CHECK, only=rules) == []  # no speech stored yet: nothing to say
    pseudonym = scene.wristband()
    scene.raw(pseudonym, AT, speech_frames=7)
    (finding,) = scene.findings(CHECK, only=rules)
    assert (finding.rule_id, finding.severity) == ("speech-stored-by-policy", "warning")
    assert (
        finding.evidence["speech_frames"] == 7
        and finding.evidence["logged_writes_with_speech"] == 1
    )


def test_speech_under_store_speech_false_stays_the_error_rule(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    scene.raw(scene.wristband(), AT, speech_frames=2, retention=timedelta(hours=24))
    (finding,) = scene.findings(CHECK, only=["speech-stored", "speech-stored-by-policy"])
    assert (finding.rule_id, finding.severity) == ("speech-stored", "error")


# -- SQLite secure_delete -------------------------------------------------------------------------
SECURE = "sqlite-secure-delete-off"


def test_flowaudit_engine_has_secure_delete_on(runtime: Runtime) -> None:
    """On SQLite the engine turns it on; PostgreSQL has nothing to judge."""
    assert clean_scene(runtime).findings(CHECK, only=[SECURE]) == []


def test_a_connection_without_secure_delete_is_an_error(sqlite_runtime: Runtime) -> None:
    scene = clean_scene(sqlite_runtime)

    def off(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.execute("PRAGMA secure_delete=OFF")  # after flowaudit's own listener

    event.listen(sqlite_runtime.engine, "connect", off)
    sqlite_runtime.engine.dispose()  # new connections get both listeners
    (finding,) = scene.findings(CHECK, only=[SECURE])
    assert finding.severity == "error" and finding.evidence == {
        "dialect": "sqlite",
        "secure_delete": False,
    }


# -- key store outside the database ---------------------------------------------------------------
KEYSTORE = "key-store-in-database"


def test_the_file_key_store_is_outside_the_database(runtime: Runtime) -> None:
    assert clean_scene(runtime).findings(CHECK, only=[KEYSTORE]) == []


def test_a_key_provider_without_a_file_cannot_show_it(sqlite_runtime: Runtime) -> None:
    """A provider with no key-store file of its own (here keys held in memory, as a KMS holds
    them): its separation from the database cannot be shown from the system."""
    rt = sqlite_runtime
    master = load_master_key(rt.settings.master_key_file)
    keys = InMemoryKeyProvider()
    store = EncryptedStore(rt.engine, keys, master_key=master, recorder=rt.audit)
    other = Runtime(rt.settings, rt.engine, keys, rt.audit, store, CHECK)  # type: ignore[arg-type]
    ctx = CheckContext(runtime=other, policy=clean_scene(rt).policy, now=CHECK, as_of=CHECK.date())
    (finding,) = run_checks(ctx, [KEYSTORE])
    assert finding.severity == "error"
    assert finding.evidence == {"key_provider": "InMemoryKeyProvider"}


# -- destroyed buckets and their audit entries ----------------------------------------------------
DESTROYED = "bucket-destroyed-without-audit-entry"


def test_a_purged_bucket_has_its_audit_entry(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    scene.raw(scene.wristband(), AT, retention=timedelta(hours=1))
    later = AT + timedelta(hours=3)
    assert scene.purge(later)  # the purge job's receipt names the shredded bucket
    assert scene.findings(later, only=[DESTROYED]) == []


def test_a_bucket_destroyed_outside_the_audited_path_is_a_warning(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    with runtime.store.session() as session:
        bucket_id = session.scalars(select(RetentionBucket.id).order_by(RetentionBucket.id)).first()
    with runtime.engine.begin() as conn:  # a state change no audit entry records
        conn.execute(
            update(RetentionBucket).where(RetentionBucket.id == bucket_id).values(state="DELETED")
        )
    (finding,) = scene.findings(CHECK, only=[DESTROYED])
    assert finding.severity == "warning"
    assert finding.evidence["bucket_ids"] == [bucket_id]
    assert finding.evidence["by_state"] == {"DELETED": 1}


# -- data-subject request deadlines beyond Art 12(3) -----------------------------------------------
LIMIT = "subject-request-deadline-beyond-limit"
RECEIVED = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "due_days, extended_days, beyond",
    [
        (30, None, False),  # valid: within one month (31 days in July)
        (31, 92, False),  # valid: extended to exactly three months (1 Oct)
        (32, None, True),  # invalid: due after one month
        (30, 93, True),  # invalid: extension past three months
    ],
)
def test_deadline_limits(
    sqlite_runtime: Runtime, due_days: int, extended_days: int | None, beyond: bool
) -> None:
    scene = clean_scene(sqlite_runtime)
    extended = None if extended_days is None else RECEIVED + timedelta(days=extended_days)
    request = scene.subject_request(
        scene.wristband(),
        RECEIVED,
        due_at=RECEIVED + timedelta(days=due_days),
        extended_to=extended,
    )
    found = scene.findings(RECEIVED + timedelta(days=1), only=[LIMIT])
    assert bool(found) is beyond
    if beyond:
        assert found[0].severity == "error" and found[0].evidence["request_ids"] == [request]


# -- the audit log and the store account for the same records -------------------------------------
MISMATCH = "audit-log-store-mismatch"


def test_log_and_store_agree_on_a_clean_scene(runtime: Runtime) -> None:
    assert clean_scene(runtime).findings(CHECK, only=[MISMATCH]) == []


def test_erasure_on_request_is_explained_by_its_receipt(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    scene.wristband(serial="WB-ERASE-1")
    pseudonym = runtime.store.pseudonym("WB-ERASE-1")
    scene.score(pseudonym, AT)
    erase_subject(runtime.store, "WB-ERASE-1", now=CHECK)
    assert scene.findings(CHECK, only=[MISMATCH]) == []


def test_a_row_deleted_without_an_audit_entry_is_a_warning(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    with runtime.engine.begin() as conn:
        rid = conn.execute(select(MetadataRecord.id).order_by(MetadataRecord.id)).scalar()
        conn.execute(delete(MetadataRecord).where(MetadataRecord.id == rid))
    (finding,) = scene.findings(CHECK, only=[MISMATCH])
    assert finding.severity == "warning"
    evidence = finding.evidence
    assert evidence["category"] == "metadata"
    assert evidence["held_per_log"] - evidence["stored"] == 1
    assert evidence["erased_per_receipts"] == 0


# -- the emotion-recognition notice before first exposure -----------------------------------------
NOTICE = "emotion-recognition-notice"
BEFORE_ART50 = AI_ACT_TRANSPARENCY - timedelta(days=1)


def test_informed_wristbands_pass(runtime: Runtime) -> None:
    assert clean_scene(runtime).findings(CHECK, only=[NOTICE], as_of=AI_ACT_TRANSPARENCY) == []


@pytest.mark.parametrize(
    "as_of, severity", [(BEFORE_ART50, "warning"), (AI_ACT_TRANSPARENCY, "error")]
)
def test_capture_before_consent_is_capture_before_the_notice(
    sqlite_runtime: Runtime, as_of: date, severity: str
) -> None:
    scene = clean_scene(sqlite_runtime)
    late = scene.wristband(given_at=STARTS + timedelta(hours=2))  # consented two hours in
    scene.score(late, STARTS + timedelta(minutes=5))
    unknown = scene.wristband(consent=None)
    scene.score(unknown, STARTS + timedelta(minutes=6))
    (finding,) = scene.findings(CHECK, only=[NOTICE], as_of=as_of)
    assert finding.severity == severity
    assert finding.evidence["wristbands"] == 2
    assert (finding.evidence["before_consent"], finding.evidence["no_consent_record"]) == (1, 1)
    assert set(finding.evidence["pseudonyms"]) == {late, unknown}


def test_a_window_straddling_consent_is_not_early(sqlite_runtime: Runtime) -> None:
    """Window metadata may start up to 30 s before consent, as for the consent rule."""
    scene = clean_scene(sqlite_runtime)
    pseudonym = scene.wristband(given_at=STARTS + timedelta(minutes=10))
    scene.score(pseudonym, STARTS + timedelta(minutes=10) - timedelta(seconds=20))
    assert scene.findings(CHECK, only=[NOTICE], as_of=AI_ACT_TRANSPARENCY) == []


def test_no_notice_version_on_any_consent_is_a_warning(sqlite_runtime: Runtime) -> None:
    scene = clean_scene(sqlite_runtime, wristbands=0)
    scene.score(scene.wristband(notice_version=""), AT)
    (finding,) = scene.findings(CHECK, only=[NOTICE], as_of=AI_ACT_TRANSPARENCY)
    assert finding.severity == "warning" and "notice version" in finding.message


# -- decisions without an explanation -------------------------------------------------------------
EXPLANATION = "decision-without-explanation"


@pytest.mark.parametrize(
    "policy, severity", [("apple-music-2025", "error"), ("privacy-by-default", "warning")]
)
def test_decision_without_explanation(sqlite_runtime: Runtime, policy: str, severity: str) -> None:
    scene = clean_scene(sqlite_runtime, policy)
    assert by_rule(scene.findings(CHECK, only=[EXPLANATION]), EXPLANATION) == []
    bad = scene.decision(AT, explanation="  ")
    (finding,) = scene.findings(CHECK, only=[EXPLANATION])
    assert finding.severity == severity
    assert (
        finding.evidence["decision_ids"] == [bad] and finding.evidence["without_explanation"] == 1
    )
