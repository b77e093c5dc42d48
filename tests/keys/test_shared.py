"""The shared key store (OpenBao KV v2 + Transit) against a real `bao` dev server.

Homes in separate directories stand for separate machines: each holds a copy of one home's
flowaudit.toml and signing.key and no key file. Cross-process tests run real processes
(tests/keys/_shared_child.py), so what a process caches in memory is really its own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hvac
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowaudit.config import Settings, set_config_values
from flowaudit.runtime import open_runtime
from retention.errors import RecordShreddedError
from retention.ground.actions import Action
from retention.purge import purge
from retention.shared_keys import (
    KvLocation,
    SharedKeyStore,
    create_shared_store,
    entry_name,
    ident_of,
    open_shared_store,
)
from retention.shred_bound import shred_bound
from retention.subject_requests import erase_subject
from retention.transit import TransitConfig
from tests.retention_ops._data import seed_crowd

from ._helpers import cli, copy_raw_rows, entries, put_back
from ._shared import ask, child, joining_home, kv_entries, stop, to_shared
from .conftest import Bao, start_bao

NOW = datetime(2026, 6, 21, 20, tzinfo=UTC)


@pytest.fixture
def token(bao: Bao, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("FLOWAUDIT_TRANSIT_TOKEN", raising=False)
    monkeypatch.setenv("VAULT_TOKEN", bao.token)
    return bao.token


@pytest.fixture
def kv_path() -> str:
    return f"flowaudit/t{secrets.token_hex(4)}"


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        stop(process)


def test_use_shared_then_another_home_joins_and_both_read_and_write(
    home: Settings, now: datetime, bao: Bao, token: str, transit_key: str, kv_path: str,
    tmp_path: Path,
) -> None:
    rt = open_runtime(home, now)
    seeded = seed_crowd(rt.store, now, subjects=3, hours=2, seed=31)
    rt.close()
    a = to_shared(home, bao, transit_key, now, kv_path)
    assert a.key_provider == "shared"
    assert not any((a.home / n).exists() for n in ("keystore.bin", "master.key"))
    stored = kv_entries(bao, kv_path)
    assert {"meta", "pepper"} <= set(stored)
    assert all(str(v.get("wrapped", "vault:")).startswith("vault:v1:")
               for k, v in stored.items() if k != "meta")
    for path in a.home.iterdir():  # the token is never written into the home
        if path.is_file():
            assert token.encode() not in path.read_bytes()

    b = joining_home(a, tmp_path / "machine-b")
    joined = cli("keys", "join", "--home", str(b.home), "--now", now.isoformat())
    assert joined.exit_code == 0, joined.output
    assert "joined the shared key store" in joined.output and token not in joined.output

    rt_b = open_runtime(b, now)
    try:
        assert isinstance(rt_b.keys, SharedKeyStore)
        for rid, (pcm, _exp) in seeded.raw.items():
            assert rt_b.store.get_raw(rid, now=now).pcm == pcm
        assert all(rt_b.store.pseudonym(s) == p for s, p in seeded.pseudonyms.items())
        more = seed_crowd(rt_b.store, now, event_id="second", subjects=2, hours=1, seed=32)
    finally:
        rt_b.close()
    rt_a = open_runtime(a, now)  # what machine B made, machine A reads
    try:
        for rid, (pcm, _exp) in more.raw.items():
            assert rt_a.store.get_raw(rid, now=now).pcm == pcm
        live = {ident_of(k.split("/", 1)[1]) for k, v in kv_entries(bao, kv_path).items()
                if k.startswith("buckets/") and "wrapped" in v}
        assert rt_a.keys.bucket_ids() == sorted(live) and len(live) >= 3
        moves = entries(rt_a, Action.KEYS_PROVIDER)
        assert [e.details.get("joined", False) for e in moves] == [False, True]
        assert token not in json.dumps([e.details for e in moves])
    finally:
        rt_a.close()


def test_two_processes_racing_for_the_same_keys_end_with_one_each(
    sqlite_home: Settings, now: datetime, bao: Bao, token: str, transit_key: str, kv_path: str,
    tmp_path: Path, children: list[subprocess.Popen[str]],
) -> None:
    a = to_shared(sqlite_home, bao, transit_key, now, kv_path)
    b = joining_home(a, tmp_path / "machine-b")
    count = 40
    children += [child("race", str(h.home), str(count)) for h in (a, b)]
    assert [ask(c) for c in children] == ["ready", "ready"]
    for racer in children:  # both start at once: each create is a cas=0 write
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    first, second = (ask(c).split() for c in children)
    assert len(first) == count and first == second  # one key per id, whoever won
    rt = open_runtime(a, now)
    try:
        keys = rt.keys
        assert [hashlib.sha256(keys.bucket_key(f"race:{i}")).hexdigest()
                for i in range(count)] == first
    finally:
        rt.close()
    client = hvac.Client(url=bao.address, token=bao.token).secrets.kv.v2
    meta = client.read_secret_metadata(path=f"{kv_path}/buckets/{entry_name('race:0')}",
                                       mount_point="secret")
    assert meta["data"]["current_version"] == 1  # the loser wrote nothing


def test_a_destroy_on_one_machine_is_seen_by_a_process_that_cached_the_key(
    home: Settings, now: datetime, bao: Bao, token: str, transit_key: str, kv_path: str,
    tmp_path: Path, children: list[subprocess.Popen[str]],
) -> None:
    rt = open_runtime(home, now)
    seeded = seed_crowd(rt.store, now, subjects=3, hours=2, seed=33,
                        raw_retention=timedelta(hours=1), meta_retention=None)
    rt.close()
    a = to_shared(home, bao, transit_key, now, kv_path)
    b = joining_home(a, tmp_path / "machine-b")
    victim = seeded.pseudonyms[seeded.serials[0]]
    by_owner = {owner: rid for rid, owner in seeded.raw_owner.items()}
    victim_rid = next(r for r, o in seeded.raw_owner.items() if o == victim)
    other_rid = by_owner[seeded.pseudonyms[seeded.serials[1]]]
    reader = child("reader", str(b.home), now.isoformat())
    children.append(reader)
    assert ask(reader) == "ready"
    digest = hashlib.sha256(seeded.raw[victim_rid][0]).hexdigest()
    assert ask(reader, f"read {victim_rid}") == f"ok {digest}"  # cached in machine B now
    assert ask(reader, f"read {other_rid}").startswith("ok ")

    # the rows come back from a database backup after each shred: only the keys decide
    rt_a = open_runtime(a, now)
    try:
        old_rows = copy_raw_rows(rt_a)
        erase_subject(rt_a.store, seeded.serials[0], now=now + timedelta(minutes=1))
        put_back(rt_a, [r for r in old_rows if r["subject_pseudonym"] == victim])
    finally:
        rt_a.close()
    assert ask(reader, f"read {victim_rid}") == "refused RecordShreddedError"
    assert ask(reader, f"read {other_rid}").startswith("ok ")  # only that key is gone

    rt_a = open_runtime(a, now + timedelta(hours=5))  # the purge, on machine A
    try:
        shredded = purge(rt_a.store, now=now + timedelta(hours=5)).buckets_shredded
        assert shredded
        put_back(rt_a, [r for r in old_rows if r["id"] == other_rid])
    finally:
        rt_a.close()
    assert ask(reader, f"read {other_rid}") == "refused RecordShreddedError"
    ask(reader, "quit")
    stored = kv_entries(bao, kv_path)
    assert stored[f"subjects/{entry_name(victim)}"].keys() == {"destroyed_at"}
    assert all(stored[f"buckets/{entry_name(b)}"].keys() == {"destroyed_at"} for b in shredded)


def test_a_destroyed_key_is_never_made_again_and_a_restored_entry_is_refused(
    sqlite_home: Settings, now: datetime, bao: Bao, token: str, transit_key: str, kv_path: str,
) -> None:
    rt = open_runtime(sqlite_home, now)
    seeded = seed_crowd(rt.store, now, subjects=2, hours=1, seed=34)
    rt.close()
    a = to_shared(sqlite_home, bao, transit_key, now, kv_path)
    victim = seeded.pseudonyms[seeded.serials[0]]
    path = f"{kv_path}/subjects/{entry_name(victim)}"
    client = hvac.Client(url=bao.address, token=bao.token).secrets.kv.v2
    old = client.read_secret_version(path=path, mount_point="secret",
                                     raise_on_deleted_version=True)["data"]["data"]
    rt = open_runtime(a, now)
    try:
        old_rows = copy_raw_rows(rt, subject_pseudonym=victim)
        erase_subject(rt.store, seeded.serials[0], now=now)
        put_back(rt, old_rows)  # and the database's rows from a backup
        versions = client.read_secret_metadata(path=path, mount_point="secret")["data"]
        assert all(v["destroyed"] for n, v in versions["versions"].items()
                   if int(n) < versions["current_version"])  # the wrapped key's data is gone
        with pytest.raises(RecordShreddedError, match="destroyed"):
            rt.keys.subject_key(victim, create=True)  # cas=0 fails on the tombstone
    finally:
        rt.close()

    # an OpenBao storage snapshot from before the erasure, restored: the entry is live again
    current = client.read_secret_metadata(path=path, mount_point="secret")["data"]
    client.create_or_update_secret(path=path, secret=old, cas=current["current_version"],
                                   mount_point="secret")
    rt = open_runtime(a, now)
    try:
        assert ("subjects", victim) in rt.keys.quarantined
        rid = next(r for r, o in seeded.raw_owner.items() if o == victim)
        with pytest.raises(RecordShreddedError, match="keys replay"):
            rt.store.get_raw(rid, now=now)
    finally:
        rt.close()
    rules = ["audit", "check", "--only", "key-store-holds-destroyed-keys", "--only",
             "key-store-in-database", "--home", str(a.home), "--now", now.isoformat()]
    found = cli(*rules)
    assert found.exit_code == 1 and "keys replay" in found.output
    replay = cli("keys", "replay", "--home", str(a.home), "--now", now.isoformat())
    assert replay.exit_code == 0 and "1 subject keys destroyed again" in replay.output
    assert cli(*rules).exit_code == 0  # both rules pass on a shared home once replayed
    assert kv_entries(bao, kv_path)[f"subjects/{entry_name(victim)}"].keys() == {"destroyed_at"}


def test_backup_restore_and_rotate_on_the_shared_provider(
    sqlite_home: Settings, now: datetime, bao: Bao, token: str, transit_key: str, kv_path: str,
    tmp_path: Path,
) -> None:
    rt = open_runtime(sqlite_home, now)
    seeded = seed_crowd(rt.store, now, subjects=2, hours=1, seed=35)
    rt.close()
    a = to_shared(sqlite_home, bao, transit_key, now, kv_path)
    args = ["--home", str(a.home), "--now", now.isoformat()]
    backup = tmp_path / "shared.backup"
    assert cli("keys", "backup", "--out", str(backup), *args).exit_code == 0
    rt = open_runtime(a, now)
    erase_subject(rt.store, seeded.serials[0], now=now)
    rt.close()
    done = cli("keys", "restore", str(backup), *args)
    assert done.exit_code == 0, done.output
    assert "1 keys the audit log destroyed after the backup" in done.output
    victim = seeded.pseudonyms[seeded.serials[0]]
    assert kv_entries(bao, kv_path)[f"subjects/{entry_name(victim)}"].keys() == {"destroyed_at"}

    rotated = cli("keys", "rotate", "--trim", *args)
    assert rotated.exit_code == 0, rotated.output
    assert "v1 -> v2" in rotated.output and "trimmed" in rotated.output
    stored = kv_entries(bao, kv_path)
    assert {str(v["wrapped"])[:9] for v in stored.values() if "wrapped" in v} == {"vault:v2:"}
    rt = open_runtime(a, now)
    try:
        survivor = seeded.pseudonyms[seeded.serials[1]]
        for rid, (pcm, _exp) in seeded.raw.items():
            if seeded.raw_owner[rid] == survivor:
                assert rt.store.get_raw(rid, now=now).pcm == pcm
        with rt.store.session() as session:  # what the GDPR report prints for this provider
            bound = shred_bound(session, "shared", timedelta(days=30), now)
        assert bound["retirements"] == 1 and "storage snapshot of OpenBao" in bound["statement"]
    finally:
        rt.close()
    late = cli("keys", "restore", str(backup), *args)  # older than the trim: dead
    assert late.exit_code != 0 and "trimmed" in late.output
    report = cli("keys", "status", "--format", "json", *args)
    assert report.exit_code == 0
    status = json.loads(report.output)
    assert status["provider"] == "shared" and status["latest_version"] == 2


def _one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


def test_not_shared_missing_mount_refused_token_and_server_down_are_one_line(
    sqlite_home: Settings, now: datetime, monkeypatch: pytest.MonkeyPatch, transit_key: str,
    tmp_path: Path, kv_path: str,
) -> None:
    not_shared = cli("keys", "join", "--home", str(sqlite_home.home))
    line = _one_line(not_shared.output)
    assert not_shared.exit_code != 0 and "is not a shared home" in line
    server = start_bao()
    try:
        monkeypatch.delenv("FLOWAUDIT_TRANSIT_TOKEN", raising=False)
        monkeypatch.setenv("BAO_TOKEN", server.token)
        a = to_shared(sqlite_home, server, transit_key, now, kv_path)
        args = ["--home", str(a.home)]
        own_keys = joining_home(a, tmp_path / "with-keys")
        (own_keys.home / "keystore.bin").write_bytes(b"x")
        refused = cli("keys", "join", "--home", str(own_keys.home))
        assert refused.exit_code != 0 and "own key file" in _one_line(refused.output)

        monkeypatch.setenv("BAO_TOKEN", "s.not-the-token")
        wrong = cli("keys", "status", *args)
        line = _one_line(wrong.output)
        assert wrong.exit_code != 0 and "token was refused" in line and "not-the-token" not in line
        monkeypatch.setenv("BAO_TOKEN", server.token)

        set_config_values(a.home, {"shared_kv_mount": "no-kv"})
        missing = cli("keys", "status", *args)
        line = _one_line(missing.output)
        assert missing.exit_code != 0 and "no KV v2 engine at mount 'no-kv'" in line
        set_config_values(a.home, {"shared_kv_mount": "secret", "shared_kv_path": "elsewhere"})
        nowhere = cli("keys", "status", *args)
        assert "no shared key store at" in _one_line(nowhere.output)
        set_config_values(a.home, {"shared_kv_path": kv_path})
        assert cli("keys", "status", *args).exit_code == 0
    finally:
        server.stop()
    down = cli("keys", "status", *args)
    line = _one_line(down.output)
    assert down.exit_code != 0 and "unreachable" in line and server.token not in down.output


OPS = st.lists(
    st.tuples(st.integers(0, 1), st.sampled_from(["create", "read", "destroy"]),
              st.sampled_from([f"fete:raw_audio:2026062{i}" for i in range(4)])),
    min_size=1, max_size=14,
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_any_interleaving_of_two_machines_gives_one_key_per_id_and_never_a_destroyed_one(
    bao: Bao, ops: list[tuple[int, str, str]]
) -> None:
    """Two processes' stores on one KV path, any order of create / read / destroy: every key
    handed out for an id is the same, a destroyed id gives no key to a machine that did not
    already hold it, and a destroy reports whether a live key existed. (A machine that holds a
    key in memory keeps it until it follows the ledger: that is the other tests' business.)"""
    config = TransitConfig(address=bao.address, token=bao.token, key="prop")
    location = KvLocation(path=f"flowaudit/p{secrets.token_hex(6)}")
    empty = {"buckets": {}, "subjects": {}, "destroyed_buckets": {}, "destroyed_subjects": {},
             "ledger_seq": 0, "pepper": base64.b64encode(bytes(32)).decode()}
    create_shared_store(config, location, empty, wrapped=False)
    machines = [open_shared_store(config, location) for _ in range(2)]
    key: dict[str, bytes] = {}
    destroyed: set[str] = set()
    held: list[set[str]] = [set(), set()]
    for m, op, ident in ops:
        store = machines[m]
        if op == "destroy":
            assert store.destroy_bucket_keys([ident], NOW) == (
                [ident] if ident in key and ident not in destroyed else [])
            destroyed.add(ident)
            held[m].discard(ident)
            continue
        if ident in held[m]:
            assert store.bucket_key(ident, create=op == "create") == key[ident]
        elif ident in destroyed or (op == "read" and ident not in key):
            with pytest.raises(RecordShreddedError):
                store.bucket_key(ident, create=op == "create")
        else:
            got = store.bucket_key(ident, create=op == "create")
            assert key.setdefault(ident, got) == got
            held[m].add(ident)
