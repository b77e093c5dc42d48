"""Data-subject requests: export round trip, erasure and its receipt, deadlines, the CLI."""

from __future__ import annotations

import json
import stat
import wave
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from flowaudit.cli import app
from flowaudit.runtime import Runtime
from retention._deletion import delete_rows_batch, sealed_bytes
from retention.errors import InputError, NotFoundError, RecordShreddedError
from retention.ground.actions import Action
from retention.models import (
    AuditEntry,
    Consent,
    MetadataRecord,
    RawSegment,
    Subject,
    SubjectRequest,
)
from retention.policy import load_policy
from retention.subject_requests import (
    ERASED_MARK,
    EXPORT_FORMAT,
    add_months,
    erase_on_withdrawal,
    erase_subject,
    export_subject,
    extend_request,
    list_requests,
    receive_request,
)
from retention.subject_requests import _request_tally as _request_tally

from ._data import Seeded, seed_crowd


def _crowd(runtime: Runtime, now: datetime) -> Seeded:
    return seed_crowd(
        runtime.store,
        now,
        event_id="dsr",
        policy="spotify-2026",
        subjects=3,
        hours=2,
        raw_per_hour=2,
        meta_per_hour=2,
        seed=3,
    )


def _mine(seed: Seeded, serial: str) -> tuple[dict, dict]:
    pseud = seed.pseudonyms[serial]
    raw_ids = {r for r, owner in seed.raw_owner.items() if owner == pseud}
    meta = {m: v for m, v in seed.metadata.items() if v[2] == pseud}
    return {r: seed.raw[r][0] for r in raw_ids}, meta


@pytest.fixture
def crowd(runtime: Runtime, now: datetime) -> Seeded:
    return _crowd(runtime, now)


def _audit_count(runtime: Runtime) -> int:
    with runtime.store.session() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def test_export_round_trip_equals_what_was_stored(
    runtime: Runtime, now: datetime, crowd: Seeded, tmp_path: Path
) -> None:
    serial = crowd.serials[0]
    raw, meta = _mine(crowd, serial)
    at = now + timedelta(hours=4)
    result = export_subject(runtime.store, serial, tmp_path / "out", now=at)
    assert (result.raw_segments, result.metadata_records, result.consents) == (
        len(raw),
        len(meta),
        1,
    )
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["format"] == EXPORT_FORMAT
    assert manifest["subject"]["pseudonym"] == crowd.pseudonyms[serial]
    attrs = crowd.attributes[crowd.pseudonyms[serial]]
    assert manifest["subject"]["zone"] == attrs["zone"]
    assert manifest["subject"]["arrival_at"] == attrs["arrival_at"].isoformat()
    assert manifest["consents"][0]["status"] == "opted_in"
    policy = load_policy("spotify-2026")
    (event,) = manifest["events"]
    assert event["policy"]["purposes"] == policy.policy.purposes
    assert event["policy"]["recipients"] == policy.policy.recipients
    assert event["policy"]["retention"]["raw_audio"] == "72h"
    exported_pcm = {}
    for entry in manifest["raw_segments"]:
        path = tmp_path / "out" / entry["file"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with wave.open(str(path), "rb") as reader:
            assert (reader.getnchannels(), reader.getsampwidth()) == (1, 2)
            assert reader.getframerate() == entry["sample_rate"] == 16000
            exported_pcm[entry["id"]] = reader.readframes(reader.getnframes())
    assert exported_pcm == raw
    records = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert {r["id"]: r["payload"] for r in records} == {m: v[0] for m, v in meta.items()}
    serial_free = (tmp_path / "out" / "manifest.json").read_text()
    assert serial not in serial_free
    (request,) = list_requests(runtime.store, now=at)
    assert (request.kind, request.status, request.completed_at) == ("access", "done", at)


def test_export_refuses_a_non_empty_directory_and_changes_nothing(
    runtime: Runtime, now: datetime, crowd: Seeded, tmp_path: Path
) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "something").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        export_subject(runtime.store, crowd.serials[0], out, now=now)
    assert list_requests(runtime.store, now=now) == []


def test_erase_then_export_finds_nothing_and_others_are_untouched(
    runtime: Runtime, now: datetime, crowd: Seeded, tmp_path: Path
) -> None:
    victim, bystander = crowd.serials[0], crowd.serials[1]
    raw, meta = _mine(crowd, victim)
    other_raw, other_meta = _mine(crowd, bystander)
    at = now + timedelta(hours=3)
    result = erase_subject(runtime.store, victim, now=at)
    r = result.receipt
    assert (r["raw_segments_deleted"], r["metadata_records_deleted"], r["consents_deleted"]) == (
        len(raw),
        len(meta),
        1,
    )
    assert r["subject_key_destroyed"] is True and r["on_time"] is True
    with pytest.raises(NotFoundError):
        export_subject(runtime.store, victim, tmp_path / "again", now=at)
    assert not (tmp_path / "again").exists()
    for rid in raw:
        with pytest.raises(NotFoundError):
            runtime.store.get_raw(rid, now=at)
    pseud = crowd.pseudonyms[victim]
    with runtime.store.session() as session:
        subject = session.scalar(select(Subject).where(Subject.pseudonym == pseud))
        assert subject is not None and subject.erased_at == at
        assert (subject.zone, subject.age_band, subject.arrival_at) == (None, None, None)
        assert (
            session.scalar(
                select(func.count()).select_from(Consent).where(Consent.subject_id == subject.id)
            )
            == 0
        )
    assert runtime.keys.is_subject_destroyed(pseud)
    for rid, data in other_raw.items():
        assert runtime.store.get_raw(rid, now=at).pcm == data
    for mid, (payload, *_rest) in other_meta.items():
        assert runtime.store.get_metadata(mid, now=at).payload == payload
    # a second erasure (a retry after a crash, or the person again): the first one, confirmed
    before = _audit_count(runtime)
    again = erase_subject(runtime.store, victim, now=at + timedelta(days=1))
    assert again.confirmed and not result.confirmed
    assert (again.request_id, again.receipt) == (result.request_id, result.receipt)
    assert _audit_count(runtime) == before + 1  # the dsr.erase_confirm entry, nothing else
    with runtime.store.session() as session:
        actions = list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))
    assert actions[-1] == Action.DSR_ERASE_CONFIRM and actions.count(Action.DSR_ERASE) == 1
    assert len(list_requests(runtime.store, now=at)) == 1


def test_the_erasure_receipt_holds_no_serial_no_pseudonym_no_plaintext(
    runtime: Runtime, now: datetime, crowd: Seeded
) -> None:
    victim = crowd.serials[2]
    pseud = crowd.pseudonyms[victim]
    receive_request(runtime.store, victim, "access", now=now)  # an earlier request of theirs
    _, meta = _mine(crowd, victim)
    result = erase_subject(runtime.store, victim, now=now + timedelta(hours=1))
    with runtime.store.session() as session:
        rows = list(session.scalars(select(SubjectRequest)))
        (entry,) = session.scalars(select(AuditEntry).where(AuditEntry.action == "dsr.erase"))
    kept = json.dumps([result.receipt, entry.details, [r.receipt for r in rows]])
    forbidden = [victim, pseud, pseud[:12]] + [
        str(v) for payload, *_ in meta.values() for v in (payload["note"], payload["score"])
    ]
    for needle in forbidden:
        assert needle not in kept
    marks = {r.kind: r.subject_pseudonym for r in rows}
    assert marks["access"] == ERASED_MARK
    # the erasure request keeps a keyed tag, found again only through the serial
    assert marks["erasure"].startswith(ERASED_MARK + ":") and len(marks["erasure"]) == 64
    assert pseud[:12] not in marks["erasure"]
    with runtime.store.session() as session:
        assert session.scalar(select(Subject).where(Subject.pseudonym == marks["erasure"])) is None


def test_a_never_seen_serial_is_not_confirmed_as_erased(
    runtime: Runtime, now: datetime, crowd: Seeded
) -> None:
    """Confirming needs the erased wristband's own tag: a lookalike serial finds nothing."""
    erase_subject(runtime.store, crowd.serials[0], now=now)
    for serial in ("WB-NEVER-SEEN", crowd.serials[0] + "x", crowd.serials[1][:-1]):
        with pytest.raises(NotFoundError):
            erase_subject(runtime.store, serial, now=now, reason="objection")
        with pytest.raises(NotFoundError):  # the tag is no pseudonym: it exports nothing either
            export_subject(runtime.store, serial, Path("/nonexistent/never"), now=now)


def test_erasure_resumes_after_a_crash_between_key_and_rows(
    runtime: Runtime, now: datetime, crowd: Seeded
) -> None:
    victim = crowd.serials[0]
    raw, meta = _mine(crowd, victim)
    request_id = receive_request(runtime.store, victim, "erasure", now=now)
    runtime.store.destroy_subject_key(crowd.pseudonyms[victim], now=now)  # then "killed"
    result = erase_subject(runtime.store, victim, now=now + timedelta(minutes=5))
    assert result.request_id == request_id  # the open request is the one answered
    assert result.receipt["raw_segments_deleted"] == len(raw)
    with runtime.store.session() as session:  # the key was gone: no second key entry
        kills = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == Action.SUBJECT_KEY_DESTROYED)
        )
    assert kills == 1
    assert result.receipt["received_at"] == now.isoformat()
    (status,) = list_requests(runtime.store, now=now + timedelta(minutes=5))
    assert status.status == "done" and not status.overdue


def test_erasure_resumed_mid_delete_counts_the_rows_the_killed_run_deleted(
    runtime: Runtime, now: datetime, crowd: Seeded
) -> None:
    """Killed between delete batches: the receipt still counts every row, once."""
    victim = crowd.serials[0]
    pseud = crowd.pseudonyms[victim]
    raw, meta = _mine(crowd, victim)
    uninterrupted = erase_subject(runtime.store, crowd.serials[1], now=now)
    with runtime.store.session() as session:  # what the victim's rows occupy, counted by SQL
        held = sum(
            int(
                session.scalar(
                    select(func.sum(sealed_bytes(model))).where(model.subject_pseudonym == pseud)
                )
                or 0
            )
            for model in (RawSegment, MetadataRecord)
        )
    request_id = receive_request(runtime.store, victim, "erasure", now=now)
    runtime.store.destroy_subject_key(pseud, now=now)
    # what the killed run got through: one committed batch of raw rows, counted in its request
    rows, size = delete_rows_batch(
        runtime.store,
        RawSegment,
        RawSegment.subject_pseudonym == pseud,
        batch=1,
        now=now,
        actor="dsr",
        tally=_request_tally(request_id),
    )
    assert rows == 1 and size > 0
    result = erase_subject(runtime.store, victim, now=now)
    r = result.receipt
    assert (r["raw_segments_deleted"], r["metadata_records_deleted"]) == (len(raw), len(meta))
    assert r["bytes_freed"] == held
    assert set(r) == set(uninterrupted.receipt)


def test_consent_withdrawal_triggers_erasure_by_pseudonym(
    runtime: Runtime, now: datetime, crowd: Seeded
) -> None:
    pseud = crowd.pseudonyms[crowd.serials[1]]
    raw, _ = _mine(crowd, crowd.serials[1])
    result = erase_on_withdrawal(runtime.store, pseud, now=now + timedelta(minutes=1))
    assert result.receipt["reason"] == "withdrawal"
    for rid in raw:
        with pytest.raises((NotFoundError, RecordShreddedError)):
            runtime.store.get_raw(rid, now=now)


def test_deadlines_overdue_late_and_the_single_two_month_extension(
    runtime: Runtime, now: datetime, crowd: Seeded, tmp_path: Path
) -> None:
    a = receive_request(runtime.store, crowd.serials[0], "access", now=now)
    b = receive_request(runtime.store, crowd.serials[1], "erasure", now=now)
    c = receive_request(runtime.store, crowd.serials[2], "access", now=now)
    assert add_months(datetime(2026, 1, 31, tzinfo=now.tzinfo), 1).day == 28
    extended = extend_request(runtime.store, b, now=now + timedelta(days=10), reason="complexity")
    assert extended.deadline == add_months(now, 3)
    with pytest.raises(InputError, match="already extended"):
        extend_request(runtime.store, b, now=now + timedelta(days=11), reason="complexity")
    with pytest.raises(InputError, match="first month"):
        extend_request(runtime.store, c, now=now + timedelta(days=40), reason="complexity")
    late = now + timedelta(days=35)
    export_subject(runtime.store, crowd.serials[2], tmp_path / "late", now=late)
    status = {s.id: s for s in list_requests(runtime.store, now=late)}
    assert status[a].overdue and status[a].status == "received"
    assert not status[b].overdue  # extended
    assert status[c].late and status[c].status == "done" and not status[c].overdue
    assert [s.id for s in list_requests(runtime.store, now=late, open_only=True)] == [a, b]


def test_unknown_serials_and_bad_input_change_nothing(
    runtime: Runtime, now: datetime, crowd: Seeded, tmp_path: Path
) -> None:
    before = _audit_count(runtime)
    with pytest.raises(NotFoundError):
        erase_subject(runtime.store, "WB-NEVER-SEEN", now=now)
    with pytest.raises(NotFoundError):
        export_subject(runtime.store, "WB-NEVER-SEEN", tmp_path / "x", now=now)
    with pytest.raises(NotFoundError):
        receive_request(runtime.store, "WB-NEVER-SEEN", "access", now=now)
    with pytest.raises(InputError):
        erase_subject(runtime.store, crowd.serials[0], now=now, reason="because")
    with pytest.raises(InputError):
        receive_request(runtime.store, crowd.serials[0], "rectify", now=now)
    assert _audit_count(runtime) == before
    assert list_requests(runtime.store, now=now) == []
    assert not (tmp_path / "x").exists()


def _cli(args: list[str], home: Path, now: datetime, input: str | None = None):
    return CliRunner().invoke(
        app, [*args, "--home", str(home), "--now", now.isoformat()], input=input
    )


def test_cli_export_erase_list_and_one_line_errors(
    sqlite_runtime: Runtime, now: datetime, tmp_path: Path
) -> None:
    seed = seed_crowd(sqlite_runtime.store, now, event_id="cli", subjects=2, hours=1)
    home = sqlite_runtime.settings.home
    serial = seed.serials[0]
    result = _cli(
        ["dsr", "export", "-", "--out", str(tmp_path / "e"), "--format", "json"],
        home,
        now,
        input=serial + "\n",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["raw_segments"] == 2
    result = _cli(["dsr", "receive", seed.serials[1], "--kind", "erasure"], home, now)
    assert result.exit_code == 0 and "received" in result.output
    result = _cli(["dsr", "list"], home, now + timedelta(days=40))
    assert result.exit_code == 0 and "OVERDUE" in result.output
    result = _cli(["dsr", "erase", seed.serials[1], "--format", "json"], home, now)
    assert result.exit_code == 0, result.output
    receipt = json.loads(result.output)
    assert receipt["kind"] == "erasure" and seed.serials[1] not in result.output
    listing = _cli(["dsr", "list", "--format", "json"], home, now)
    assert [r["status"] for r in json.loads(listing.output)] == ["done", "done"]
    again = _cli(["dsr", "erase", seed.serials[1], "--format", "json"], home, now)
    assert again.exit_code == 0, again.output
    assert json.loads(again.output) == receipt  # a retry shows the same receipt
    text = _cli(["dsr", "erase", seed.serials[1]], home, now)
    assert text.exit_code == 0, text.output
    assert text.output.startswith(f"request #{receipt['request_id']} was already done at ")
    before = _audit_count(sqlite_runtime)
    for args in (
        ["dsr", "erase", "WB-UNKNOWN"],
        ["dsr", "export", "WB-UNKNOWN", "--out", str(tmp_path / "u")],
    ):
        result = _cli(args, home, now)
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert lines == ["flowaudit: error: " + lines[0].removeprefix("flowaudit: error: ")]
        assert "no data is held" in lines[0] and "WB-UNKNOWN" not in lines[0]
        assert "Traceback" not in result.output
    assert _audit_count(sqlite_runtime) == before
