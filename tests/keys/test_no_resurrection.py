"""No resurrection: a key store restored from before a purge or an erasure brings nothing back.

Each test keeps what a backup would keep — the sealed rows of the database and a copy of the
key store made *before* the shred — then shreds, brings the key store back (by `keys restore`
or by copying keystore.bin by hand), puts the old rows back, and asks whether anything
decrypts. The controls show the copies really do hold the keys: only the ledger stops them.
SQLite and PostgreSQL (the `runtime` fixture is parametrised).
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from flowaudit.runtime import Runtime, open_runtime
from retention.errors import IntegrityError, RecordShreddedError
from retention.ground.actions import Action
from retention.keybackup import read_backup
from retention.keys import FileKeyStore, ResurrectedKeyError, load_master_key, open_state
from retention.ledger import check_key_store, destroyed_since
from retention.purge import purge
from retention.subject_requests import erase_subject
from tests.retention_ops._data import seed_crowd

from ._helpers import cli, copy_raw_rows, entries, home_args, log_size, put_back


def _seed(rt: Runtime, now: datetime):  # type: ignore[no-untyped-def]
    return seed_crowd(rt.store, now, event_id="fete", subjects=3, hours=2,
                      raw_retention=timedelta(hours=1), meta_retention=None, seed=21)


def _live_bucket_ids(rt: Runtime) -> set[str]:
    kek = load_master_key(rt.settings.master_key_file, {})
    return set(open_state(kek, rt.settings.keystore_file.read_bytes())["buckets"])


def test_purge_then_keys_restore_of_a_pre_purge_backup(
    runtime: Runtime, now: datetime, tmp_path: Path
) -> None:
    seeded = _seed(runtime, now)
    old_rows = copy_raw_rows(runtime)
    backup = tmp_path / "keys.backup"
    made = cli("keys", "backup", "--out", str(backup), *home_args(runtime, now))
    assert made.exit_code == 0, made.output
    blob = backup.read_bytes()
    kek = load_master_key(runtime.settings.master_key_file, {})
    plain = open_state(kek, runtime.settings.keystore_file.read_bytes())
    assert plain["buckets"] and b"fete:raw_audio" not in blob  # never plaintext keys, nor ids
    assert all(k.encode() not in blob for k in plain["buckets"].values())

    later = now + timedelta(hours=5)
    report = purge(runtime.store, now=later)
    shredded = set(report.buckets_shredded)
    assert shredded and shredded.isdisjoint(_live_bucket_ids(runtime))
    # control: the backup really holds the keys the purge destroyed
    _info, state = read_backup(runtime.keys, backup)
    assert shredded <= set(state["buckets"])

    done = cli("keys", "restore", str(backup), *home_args(runtime, later))
    assert done.exit_code == 0, done.output
    assert f"{len(shredded)} keys the audit log destroyed after the backup" in done.output
    assert shredded.isdisjoint(_live_bucket_ids(runtime))
    (entry,) = entries(runtime, Action.KEYS_RESTORE)
    assert entry.details["buckets_reshredded"] == len(shredded)
    assert set(entry.details["bucket_ids"]) == shredded

    put_back(runtime, old_rows)  # and a database backup brings the ciphertext back too
    rt = open_runtime(runtime.settings, later)
    try:
        rid = next(r for r, (_p, exp) in seeded.raw.items() if exp and exp <= later)
        with pytest.raises(RecordShreddedError, match="destroyed; its data is gone for good"):
            rt.store.get_raw(rid, now=now)  # even asked as of a time it had not yet expired
    finally:
        rt.close()


def test_keystore_copied_back_by_hand_is_refused_then_replayed(
    runtime: Runtime, now: datetime, tmp_path: Path
) -> None:
    seeded = _seed(runtime, now)
    old_rows = copy_raw_rows(runtime)
    copy = tmp_path / "keystore.bin.copy"
    shutil.copy2(runtime.settings.keystore_file, copy)
    later = now + timedelta(hours=5)
    shredded = set(purge(runtime.store, now=later).buckets_shredded)
    shutil.copy2(copy, runtime.settings.keystore_file)  # the operator "restores" keystore.bin
    put_back(runtime, old_rows)
    assert shredded <= _live_bucket_ids(runtime)  # the keys are really back on disk

    rt = open_runtime(runtime.settings, later)
    try:
        file_before, log_before = runtime.settings.keystore_file.read_bytes(), log_size(rt)
        assert {i for kind, i in rt.keys.quarantined if kind == "buckets"} == shredded
        rid = next(r for r, (_p, exp) in seeded.raw.items() if exp and exp <= later)
        with pytest.raises(ResurrectedKeyError, match=r"audit entry #\d+ says it was destroyed"
                           r".*flowaudit keys replay"):
            rt.store.get_raw(rid, now=now)
        status = cli("keys", "status", *home_args(rt, later))
        assert "refused_keys" in status.output and "keys replay" in status.output
        # reading wrote nothing: not the key store, not the log
        assert runtime.settings.keystore_file.read_bytes() == file_before
        assert log_size(rt) == log_before
    finally:
        rt.close()

    replay = cli("keys", "replay", *home_args(runtime, later))
    assert replay.exit_code == 0, replay.output
    assert f"{len(shredded)} bucket keys and 0 subject keys destroyed again" in replay.output
    (entry,) = entries(runtime, Action.KEYS_RESHRED)
    assert set(entry.details["bucket_ids"]) == shredded
    assert shredded.isdisjoint(_live_bucket_ids(runtime))
    rt = open_runtime(runtime.settings, later)
    try:
        assert rt.keys.quarantined == {}
        with pytest.raises(RecordShreddedError, match="gone for good"):
            rt.store.get_raw(rid, now=now)
    finally:
        rt.close()


def test_purge_itself_reshreds_a_resurrected_key(
    runtime: Runtime, now: datetime, tmp_path: Path
) -> None:
    _seed(runtime, now)
    copy = tmp_path / "keystore.bin.copy"
    shutil.copy2(runtime.settings.keystore_file, copy)
    later = now + timedelta(hours=5)
    shredded = set(purge(runtime.store, now=later).buckets_shredded)
    shutil.copy2(copy, runtime.settings.keystore_file)
    rt = open_runtime(runtime.settings, later)
    try:
        purge(rt.store, now=later + timedelta(minutes=1))
        (entry,) = entries(rt, Action.KEYS_RESHRED)
        assert set(entry.details["bucket_ids"]) == shredded
        assert entry.actor.startswith("purge/")
    finally:
        rt.close()
    assert shredded.isdisjoint(_live_bucket_ids(runtime))


def test_dsr_erase_then_restore_keeps_the_subject_erased(
    runtime: Runtime, now: datetime, tmp_path: Path
) -> None:
    seeded = seed_crowd(runtime.store, now, event_id="fete", subjects=3, hours=1, seed=33)
    victim, other = seeded.serials[0], seeded.serials[1]
    pseudonym = seeded.pseudonyms[victim]
    old_rows = copy_raw_rows(runtime, subject_pseudonym=pseudonym)
    backup, copy = tmp_path / "keys.backup", tmp_path / "keystore.bin.copy"
    assert cli("keys", "backup", "--out", str(backup), *home_args(runtime, now)).exit_code == 0
    shutil.copy2(runtime.settings.keystore_file, copy)
    erase_subject(runtime.store, victim, now=now + timedelta(minutes=5))

    # by hand: refused at once, and the next erasure (of someone else) re-shreds it
    shutil.copy2(copy, runtime.settings.keystore_file)
    put_back(runtime, old_rows)
    rt = open_runtime(runtime.settings, now)
    try:
        assert ("subjects", pseudonym) in rt.keys.quarantined
        with pytest.raises(ResurrectedKeyError, match="keys replay"):
            rt.store.get_raw(old_rows[0]["id"], now=now)
        erase_subject(rt.store, other, now=now + timedelta(minutes=10))
        (entry,) = entries(rt, Action.KEYS_RESHRED)
        assert entry.details["pseudonyms"] == [pseudonym]
    finally:
        rt.close()

    # by `keys restore`: the erased subject's key stays destroyed, the other one too
    done = cli("keys", "restore", str(backup), *home_args(runtime, now + timedelta(minutes=15)))
    assert done.exit_code == 0, done.output
    restored = entries(runtime, Action.KEYS_RESTORE)[0].details
    assert restored["subjects_reshredded"] == 2  # both erased after the backup: stay erased
    assert pseudonym in restored["pseudonyms"]
    rt = open_runtime(runtime.settings, now)
    try:
        assert rt.keys.quarantined == {}
        assert rt.keys.is_subject_destroyed(pseudonym)
        with pytest.raises(RecordShreddedError, match="gone for good"):
            rt.store.get_raw(old_rows[0]["id"], now=now)
    finally:
        rt.close()


def test_restore_into_a_lost_key_store_replays_the_ledger(
    runtime: Runtime, now: datetime, tmp_path: Path
) -> None:
    """keystore.bin lost after an erasure: the backup comes back minus what the log erased."""
    seeded = seed_crowd(runtime.store, now, event_id="fete", subjects=2, hours=1, seed=5)
    backup = tmp_path / "keys.backup"
    assert cli("keys", "backup", "--out", str(backup), *home_args(runtime, now)).exit_code == 0
    erase_subject(runtime.store, seeded.serials[0], now=now)
    runtime.settings.keystore_file.unlink()
    done = cli("keys", "restore", str(backup), *home_args(runtime, now))
    assert done.exit_code == 0, done.output
    assert entries(runtime, Action.KEYS_RESTORE)[0].details["subjects_reshredded"] == 1
    rt = open_runtime(runtime.settings, now)
    try:
        survivor = seeded.pseudonyms[seeded.serials[1]]
        rid = next(r for r, p in seeded.raw_owner.items() if p == survivor)
        assert rt.store.get_raw(rid, now=now).pcm == seeded.raw[rid][0]  # no key lost
        assert rt.keys.is_subject_destroyed(seeded.pseudonyms[seeded.serials[0]])
    finally:
        rt.close()


def test_a_backup_does_not_survive_a_rotation(
    runtime: Runtime, now: datetime, tmp_path: Path
) -> None:
    backup = tmp_path / "keys.backup"
    assert cli("keys", "backup", "--out", str(backup), *home_args(runtime, now)).exit_code == 0
    assert cli("keys", "rotate", *home_args(runtime, now)).exit_code == 0
    result = cli("keys", "restore", str(backup), *home_args(runtime, now))
    assert result.exit_code != 0
    assert "cannot be opened" in result.output and "irreversible" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_ledger_position_makes_the_open_check_incremental(
    runtime: Runtime, now: datetime
) -> None:
    """A process that checked the ledger at open records its position with its next write."""
    _seed(runtime, now)
    later = now + timedelta(hours=5)
    purge(runtime.store, now=later)
    with runtime.store.session() as session:
        everything, _head = destroyed_since(session, 0)
    assert everything  # the purge's entries are in the ledger
    rt = open_runtime(runtime.settings, later)  # checks the ledger up to the head
    try:
        seed_crowd(rt.store, later, event_id="next", subjects=1, hours=1, seed=2)  # a write
    finally:
        rt.close()
    keys = FileKeyStore(runtime.settings.keystore_file,
                        load_master_key(runtime.settings.master_key_file, {}))
    assert keys.ledger_seq >= max(everything.values())
    with runtime.store.session() as session:
        newer, _ = destroyed_since(session, keys.ledger_seq)
    assert not (set(newer) & set(everything))  # the next open reads none of them again
    assert check_key_store(runtime.engine, keys) == {}


def test_a_tampered_backup_is_refused(runtime: Runtime, now: datetime, tmp_path: Path) -> None:
    backup = tmp_path / "keys.backup"
    assert cli("keys", "backup", "--out", str(backup), *home_args(runtime, now)).exit_code == 0
    header, body = backup.read_bytes().split(b"\n", 1)
    backup.write_bytes(header.replace(b'"ledger_seq":', b'"ledger_seq":9') + b"\n" + body)
    with pytest.raises(IntegrityError, match="cannot be opened"):
        read_backup(runtime.keys, backup)
