"""The chain format, checkpoints and anchors, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select, text, update

from audit.log.chain import (
    GENESIS_HASH,
    AuditLog,
    canonical_details,
    canonical_entry,
    entry_hash,
    iter_entries,
)
from audit.log.checkpoints import (
    TREE_ORIGIN,
    CheckpointSigner,
    checkpoint_after_command,
    load_anchor,
    load_signer,
    make_anchor,
    note_body,
    signed_note,
    verify_signature,
    write_anchor,
    write_checkpoint,
)
from audit.log.merkle import MemoryTree
from audit.log.verify import verify_log
from flowaudit.runtime import Runtime
from retention.errors import InputError
from retention.models import AuditCheckpoint, AuditEntry

from .logbuild import START, export_anchor, fill_log
from .treeref import canonical_rows


def _raw_details(runtime: Runtime) -> list[tuple[int, str]]:
    cast = "details::text" if runtime.engine.dialect.name == "postgresql" else "details"
    with runtime.engine.connect() as conn:
        rows = conn.execute(text(f"SELECT seq, {cast} FROM audit_log ORDER BY seq")).all()
    return [(int(seq), str(body)) for seq, body in rows]


def test_stored_details_are_the_canonical_text(runtime: Runtime) -> None:
    """The fast verifier hashes stored text as-is; that is sound only if writes store <D>."""
    fill_log(runtime, entries=12)
    stored = _raw_details(runtime)
    assert len(stored) >= 12
    for _, body in stored:
        assert body == canonical_details(json.loads(body))


def test_fast_verifier_agrees_with_a_slow_reference(runtime: Runtime) -> None:
    signer = fill_log(runtime, entries=20, checkpoint_every=6)
    prev = GENESIS_HASH
    with runtime.store.session() as session:
        for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.seq)):
            canonical = canonical_entry(
                entry.seq,
                entry.at,
                entry.actor,
                entry.action,
                entry.object_type,
                entry.object_id,
                entry.details,
            )
            assert entry.prev_hash == prev
            assert entry_hash(prev, canonical) == entry.hash
            prev = entry.hash
    report = verify_log(runtime.engine, signer.public_key, allow_unsigned_tail=True)
    assert report.ok and report.head_hash == prev
    assert report.checkpoints == report.checkpoints_verified == report.head_seq // 6
    assert report.unsigned_tail == report.head_seq % 6


def test_canonical_entry_is_sorted_compact_json() -> None:
    at = datetime(2026, 6, 21, 20, 0, 0, 5, tzinfo=UTC)
    body = canonical_entry(3, at, "pipeline", "raw.put", "raw_segment", "ab", {"b": 1, "a": "é"})
    parsed = json.loads(body)
    assert list(parsed) == sorted(parsed)
    assert parsed["at"] == "2026-06-21T20:00:00.000005+00:00"
    assert body.startswith(b'{"action":"raw.put","actor":"pipeline","at":')
    assert b'"details":{"a": "\\u00e9", "b": 1}' in body


@pytest.mark.parametrize(
    "details, problem",
    [
        ({"x": float("nan")}, "JSON"),  # invalid: NaN is not JSON
        ({"x": b"\x00\x01"}, "bytes"),  # invalid: raw bytes (PCM) never go in the log
        ({"x": object()}, "object"),  # invalid: arbitrary objects
    ],
)
def test_details_that_are_not_plain_json_are_refused(
    sqlite_runtime: Runtime, details: dict, problem: str
) -> None:
    with pytest.raises(InputError, match=problem):
        with sqlite_runtime.store.transaction(START) as tx:
            tx.audit("x", "y", "z", details)
    with sqlite_runtime.store.session() as session:
        assert session.scalar(select(AuditEntry.seq)) is None  # nothing half-written


def test_times_and_sets_in_details_are_normalised(sqlite_runtime: Runtime) -> None:
    with sqlite_runtime.store.transaction(START) as tx:
        tx.audit("x", "y", "z", {"when": START, "ids": {"b", "a"}, "z": {"d": 1, "c": 2}})
    with sqlite_runtime.store.session() as session:
        (entry,) = iter_entries(session)
    assert entry.details == {"ids": ["a", "b"], "when": START.isoformat(), "z": {"c": 2, "d": 1}}
    assert list(entry.details["z"]) == ["c", "d"]


def test_naive_time_is_refused(sqlite_runtime: Runtime) -> None:
    with pytest.raises(InputError, match="naive"):
        with sqlite_runtime.store.session() as session:
            AuditLog().record(
                session, at=datetime(2026, 1, 1), action="a", object_type="b", object_id="c"
            )


def test_checkpoints_every_n_entries_and_after_a_command(runtime: Runtime) -> None:
    signer = fill_log(runtime, entries=10, checkpoint_every=4)
    with runtime.store.session() as session:
        seqs = list(session.scalars(select(AuditCheckpoint.seq).order_by(AuditCheckpoint.seq)))
        head = session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()))
    assert seqs == list(range(4, head + 1, 4))
    runtime.now = START + timedelta(hours=1)
    first = checkpoint_after_command(runtime)
    assert first is not None and first.seq == head
    assert checkpoint_after_command(runtime) is None  # nothing new: no second checkpoint
    runtime.audit.attach_signer(None)  # so only the end-of-command checkpoint can cover it
    with runtime.store.transaction(START, actor="x") as tx:
        tx.audit("later", "t", "o", {})
    second = checkpoint_after_command(runtime)
    assert second is not None and second.seq == head + 1
    assert verify_log(runtime.engine, signer.public_key).unsigned_tail == 0


def test_a_forged_checkpoint_fails(runtime: Runtime) -> None:
    signer = fill_log(runtime, entries=10, checkpoint_every=5)
    with runtime.store.transaction(START, actor="attacker") as tx:
        tx.session.execute(
            update(AuditCheckpoint).where(AuditCheckpoint.seq == 5).values(signature=b"\x00" * 64)
        )
    report = verify_log(runtime.engine, signer.public_key)
    assert not report.ok and report.first_bad_seq == 5
    assert (
        report.problems[0].kind == "checkpoint"
        and "invalid signature" in report.problems[0].message
    )


def test_checkpoints_from_another_key_fail(runtime: Runtime) -> None:
    fill_log(runtime, entries=6, checkpoint_every=3)
    stranger = Ed25519PrivateKey.generate().public_key()
    report = verify_log(runtime.engine, stranger)
    assert not report.ok and report.first_bad_seq == 1  # under that key nothing is signed
    assert {p.kind for p in report.problems} == {"checkpoint", "unsigned"}
    report = verify_log(runtime.engine, stranger, allow_unsigned_tail=True)
    assert report.first_bad_seq == 3 and {p.kind for p in report.problems} == {"checkpoint"}


def test_a_rewritten_and_rehashed_tail_is_caught_by_the_checkpoint(runtime: Runtime) -> None:
    signer = fill_log(runtime, entries=21, checkpoint_every=7)
    with runtime.store.session() as session:
        entries = list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
    prev = entries[16].prev_hash  # rewrite from seq 17 on, chaining every hash correctly
    with runtime.store.transaction(START, actor="attacker") as tx:
        for entry in entries[16:]:
            details = dict(entry.details, rewritten=True)
            canonical = canonical_entry(
                entry.seq,
                entry.at,
                entry.actor,
                entry.action,
                entry.object_type,
                entry.object_id,
                details,
            )
            digest = entry_hash(prev, canonical)
            tx.session.execute(
                update(AuditEntry)
                .where(AuditEntry.seq == entry.seq)
                .values(details=json.loads(canonical_details(details)), prev_hash=prev, hash=digest)
            )
            prev = digest
    report = verify_log(runtime.engine, signer.public_key)
    assert not report.ok
    assert report.first_bad_seq == 15  # the first entry after the last intact checkpoint (14)
    assert report.problems[0].kind == "rewritten"


def test_a_single_rehashed_edit_is_located_by_its_successor(runtime: Runtime) -> None:
    signer = fill_log(runtime, entries=10, checkpoint_every=100)
    with runtime.store.session() as session:
        entry = session.get(AuditEntry, 4)
        assert entry is not None
        canonical = canonical_entry(
            4, entry.at, "evil", entry.action, entry.object_type, entry.object_id, entry.details
        )
        digest = entry_hash(entry.prev_hash, canonical)
    with runtime.store.transaction(START, actor="attacker") as tx:
        tx.session.execute(
            update(AuditEntry).where(AuditEntry.seq == 4).values(actor="evil", hash=digest)
        )
    report = verify_log(runtime.engine, signer.public_key)
    assert report.first_bad_seq == 4 and report.problems[0].kind == "rewritten"


def test_truncation_is_caught_by_a_stored_checkpoint_or_the_anchor(
    runtime: Runtime, tmp_path: Path
) -> None:
    signer = fill_log(runtime, entries=12, checkpoint_every=100)
    anchor = export_anchor(runtime, signer, tmp_path / "a.json", START + timedelta(hours=8))
    head = anchor.seq
    with runtime.store.transaction(START, actor="attacker") as tx:
        tx.session.execute(delete(AuditEntry).where(AuditEntry.seq > head - 3))
    report = verify_log(runtime.engine, signer.public_key)
    assert report.first_bad_seq == head - 2 and report.problems[0].kind == "truncated"
    with runtime.store.transaction(START, actor="attacker") as tx:
        tx.session.execute(delete(AuditCheckpoint))
    report = verify_log(runtime.engine, signer.public_key)  # nothing left to compare with,
    assert [(p.seq, p.kind) for p in report.problems] == [(1, "unsigned")]  # but nothing signed
    assert verify_log(runtime.engine, signer.public_key, allow_unsigned_tail=True).ok
    report = verify_log(runtime.engine, signer.public_key, anchor)
    assert report.first_bad_seq == head - 2 and report.anchor_seq == head


def test_anchor_roundtrip_and_c2sp_note(sqlite_runtime: Runtime, tmp_path: Path) -> None:
    signer = fill_log(sqlite_runtime, entries=5)
    anchor = export_anchor(sqlite_runtime, signer, tmp_path / "a.json", START)
    document = json.loads((tmp_path / "a.json").read_text())
    assert anchor.verifies() and anchor.key_id == signer.key_id
    body, _, signature_line = document["note"].partition("\n\n")
    lines = body.split("\n")
    # a C2SP tlog checkpoint: origin, size, base64 Merkle root of the entries, time extension
    assert lines[0] == TREE_ORIGIN and lines[1] == str(anchor.seq)
    with sqlite_runtime.engine.connect() as conn:
        root = MemoryTree(canonical_rows(conn)[: anchor.seq]).root()
    assert base64.b64decode(lines[2]) == root and anchor.root_hash == root.hex()
    assert lines[3] == f"at {anchor.at}"
    name, blob = signature_line.strip().removeprefix("\u2014 ").split(" ")
    raw = base64.b64decode(blob)
    public = base64.b64decode(document["public_key"])
    assert name == TREE_ORIGIN
    assert raw[:4] == hashlib.sha256(TREE_ORIGIN.encode() + b"\n\x01" + public).digest()[:4]
    signer.public_key.verify(raw[4:], (body + "\n").encode())  # raises if wrong


def test_tampered_or_foreign_anchors_fail(sqlite_runtime: Runtime, tmp_path: Path) -> None:
    signer = fill_log(sqlite_runtime, entries=5)
    export_anchor(sqlite_runtime, signer, tmp_path / "a.json", START)
    document = json.loads((tmp_path / "a.json").read_text())
    document["head_hash"] = "ab" * 32
    write_anchor(tmp_path / "edited.json", document)
    report = verify_log(
        sqlite_runtime.engine, signer.public_key, load_anchor(tmp_path / "edited.json")
    )
    assert not report.ok and report.problems[0].kind == "anchor"

    other = CheckpointSigner(Ed25519PrivateKey.generate())
    with sqlite_runtime.store.session() as session:
        checkpoint = write_checkpoint(session, other, START, force=True)
        assert checkpoint is not None
        write_anchor(tmp_path / "foreign.json", make_anchor(checkpoint, other.public_key))
        session.rollback()
    foreign = load_anchor(tmp_path / "foreign.json")
    assert foreign.verifies()
    report = verify_log(sqlite_runtime.engine, signer.public_key, foreign)
    assert not report.ok and "not the log's key" in report.problems[0].message


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("not json", "not a JSON anchor"),
        ('{"format": "x"}', "format"),
        ('{"format": "flowaudit-audit-anchor/v1", "seq": 0}', "seq"),
        ('{"format": "flowaudit-audit-anchor/v1", "seq": 3, "head_hash": "zz"}', "head_hash"),
        (
            '{"format": "flowaudit-audit-anchor/v1", "seq": 3, "head_hash": "'
            + "a" * 64
            + '", "at": "x", "public_key": "!!", "signature": ""}',
            "public_key",
        ),
    ],
)
def test_malformed_anchor_files_are_refused(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "anchor.json"
    path.write_text(content)
    with pytest.raises(InputError, match=fragment):
        load_anchor(path)


def test_signature_covers_every_field() -> None:
    signer = CheckpointSigner(Ed25519PrivateKey.generate())
    head = "cd" * 32
    signature = signer.sign(7, head, "2026-06-21T20:00:00+00:00")
    assert verify_signature(signer.public_key, 7, head, "2026-06-21T20:00:00+00:00", signature)
    assert not verify_signature(signer.public_key, 8, head, "2026-06-21T20:00:00+00:00", signature)
    assert not verify_signature(
        signer.public_key, 7, "ce" * 32, "2026-06-21T20:00:00+00:00", signature
    )
    assert not verify_signature(signer.public_key, 7, head, "2026-06-21T20:00:01+00:00", signature)
    note = signed_note(7, head, "2026-06-21T20:00:00+00:00", signature, signer.public_key)
    assert note.startswith(note_body(7, head, "2026-06-21T20:00:00+00:00").decode() + "\n\u2014 ")


def test_iter_entries_filters(sqlite_runtime: Runtime) -> None:
    fill_log(sqlite_runtime, entries=15)
    with sqlite_runtime.store.session() as session:
        drops = list(iter_entries(session, action="gate.drop"))
        prefixed = list(iter_entries(session, action="gate.*"))
        later = list(iter_entries(session, since=START + timedelta(minutes=2)))
        latest = list(iter_entries(session, limit=3, newest_first=True))
    assert drops and [e.seq for e in drops] == [e.seq for e in prefixed]
    assert all(e.action == "gate.drop" for e in drops)
    assert later and all(e.at >= START + timedelta(minutes=2) for e in later)
    assert [e.seq for e in latest] == sorted((e.seq for e in latest), reverse=True)


def test_load_signer_of_a_home_without_key(sqlite_runtime: Runtime, tmp_path: Path) -> None:
    assert load_signer(tmp_path / "missing.key") is None
    assert load_signer(sqlite_runtime.settings.signing_key_file) is not None
