"""The Transit key provider against a real OpenBao dev server: round trip, destroy, rotate +
rewrap, trim, the shred ledger, and one clear line when the server, token or key is wrong."""

from __future__ import annotations

import base64
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from audit.reports import ReportContext, build_report, render, schema_for
from flowaudit.config import Settings, resolve_settings
from flowaudit.runtime import Runtime, open_runtime
from retention.errors import ConfigError, RecordShreddedError
from retention.ground.actions import Action
from retention.keys import load_master_key, open_state
from retention.purge import purge
from retention.subject_requests import erase_subject
from retention.transit import TransitKeyStore, TransitTrimmedError, wrapped_versions
from tests.retention_ops._data import seed_crowd

from ._helpers import cli, copy_raw_rows, entries, put_back
from .conftest import Bao, start_bao

TOKEN_ENV = "FLOWAUDIT_TRANSIT_TOKEN"


def _to_transit(settings: Settings, bao: Bao, key: str, now: datetime) -> Settings:
    result = cli("keys", "use-transit", "--address", bao.address, "--key", key,
                 "--home", str(settings.home), "--now", now.isoformat())
    assert result.exit_code == 0, result.output
    return resolve_settings(settings.home, settings.db_url if "postgresql" in settings.db_url
                            else None)


def _wrapped(settings: Settings) -> dict[str, object]:
    state = json.loads(settings.transit_keystore_file.read_text())["state"]
    assert isinstance(state, dict)
    return state


@pytest.fixture
def token(bao: Bao, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(TOKEN_ENV, bao.token)
    return bao.token


def test_round_trip_through_the_store_with_transit(
    home: Settings, now: datetime, bao: Bao, token: str, transit_key: str
) -> None:
    rt = open_runtime(home, now)
    seeded = seed_crowd(rt.store, now, subjects=3, hours=2, seed=8)
    file_state = open_state(load_master_key(home.master_key_file, {}),
                            home.keystore_file.read_bytes())
    rt.close()

    settings = _to_transit(home, bao, transit_key, now)
    assert settings.key_provider == "transit" and not home.keystore_file.exists()
    assert not home.master_key_file.exists()  # the local KEK is retired with it
    text = settings.transit_keystore_file.read_text()
    assert all(k not in text for k in file_state["buckets"].values())  # only wrapped forms
    assert set(wrapped_versions(_wrapped(settings))) == {1}
    for path in settings.home.iterdir():  # the token is never written into the home
        if path.is_file():
            assert token.encode() not in path.read_bytes()

    rt = open_runtime(settings, now)
    try:
        assert isinstance(rt.keys, TransitKeyStore)
        for rid, (pcm, _exp) in seeded.raw.items():
            assert rt.store.get_raw(rid, now=now).pcm == pcm
        assert all(rt.store.pseudonym(s) == p for s, p in seeded.pseudonyms.items())
        more = seed_crowd(rt.store, now, event_id="second", subjects=2, hours=1, seed=9)
    finally:
        rt.close()
    rt = open_runtime(settings, now)  # a new process unwraps the new keys too
    try:
        for rid, (pcm, _exp) in more.raw.items():
            assert rt.store.get_raw(rid, now=now).pcm == pcm
        (entry,) = entries(rt, Action.KEYS_PROVIDER)
        assert entry.details["to"] == "transit" and token not in json.dumps(entry.details)
    finally:
        rt.close()


def test_the_gdpr_report_says_transit_wraps_the_keys(
    sqlite_home: Settings, now: datetime, bao: Bao, token: str, transit_key: str
) -> None:
    """Art 32 measures name the provider in use, not the master key a Transit home retired."""

    def measures(settings: Settings) -> dict[str, str]:
        rt = open_runtime(settings, now)
        try:
            report = build_report("gdpr", ReportContext.open(rt, now=now, event_id="fete"))
            document = json.loads(render(report, "json"))
            Draft202012Validator(schema_for("gdpr")).validate(document)
            rows = document["data"]["security"]["measures"]
        finally:
            rt.close()
        return {row["measure"]: row["configured"] for row in rows}

    rt = open_runtime(sqlite_home, now)
    seed_crowd(rt.store, now, event_id="fete", subjects=2, hours=1, seed=5)
    rt.close()
    local = measures(sqlite_home)
    assert "master key (KEK) kept on this machine" in local["Key store outside the database"]
    assert "Master key" in local and "Wrapping key" not in local
    transit = measures(_to_transit(sqlite_home, bao, transit_key, now))
    assert "master key" not in transit["Key store outside the database"].replace(
        "no master key", ""
    )
    assert "Transit key" in transit["Key store outside the database"]
    assert "Master key" not in transit and "Transit" in transit["Wrapping key"]


def test_destroy_rotate_rewrap_trim(
    sqlite_home: Settings, now: datetime, bao: Bao, token: str, transit_key: str, tmp_path: Path
) -> None:
    rt = open_runtime(sqlite_home, now)
    seeded = seed_crowd(rt.store, now, subjects=3, hours=2, seed=4,
                        raw_retention=timedelta(hours=1), meta_retention=None)
    rt.close()
    settings = _to_transit(sqlite_home, bao, transit_key, now)
    victim = seeded.serials[0]
    victim_rows = copy_raw_rows_of(settings, now, seeded.pseudonyms[victim])
    pre_rotation_copy = tmp_path / "keystore.transit.json.copy"
    shutil.copy2(settings.transit_keystore_file, pre_rotation_copy)

    # destroy: erasure and purge remove the wrapped forms; the data is unreadable
    later = now + timedelta(hours=5)
    rt = open_runtime(settings, now)
    try:
        erase_subject(rt.store, victim, now=now + timedelta(minutes=1))
        shredded = set(purge(rt.store, now=later).buckets_shredded)
        assert shredded
        state = _wrapped(settings)
        assert seeded.pseudonyms[victim] not in state["subjects"]  # type: ignore[operator]
        assert shredded.isdisjoint(state["buckets"])  # type: ignore[arg-type]
        put_back(rt, victim_rows)
        with pytest.raises(RecordShreddedError, match="destroyed"):
            rt.store.get_raw(victim_rows[0]["id"], now=now)
    finally:
        rt.close()

    # an old copy of the wrapped keys is refused by the ledger (and still unwrappable: no trim)
    current = settings.transit_keystore_file.read_bytes()
    shutil.copy2(pre_rotation_copy, settings.transit_keystore_file)
    rt = open_runtime(settings, later)
    try:
        assert ("subjects", seeded.pseudonyms[victim]) in rt.keys.quarantined
        with pytest.raises(RecordShreddedError, match="keys replay"):
            rt.store.get_raw(victim_rows[0]["id"], now=now)
        old_wrapped = json.loads(pre_rotation_copy.read_text())["state"]["subjects"]
        old_victim_key = old_wrapped[seeded.pseudonyms[victim]]
        assert len(_transit(rt).client.decrypt(old_victim_key)) == 32  # the control: still alive
    finally:
        rt.close()
    settings.transit_keystore_file.write_bytes(current)

    # rotate + rewrap: everything at v2, data still readable
    result = cli("keys", "rotate", "--home", str(settings.home), "--now", later.isoformat())
    assert result.exit_code == 0, result.output
    assert "v1 -> v2" in result.output and "use --trim" in result.output
    assert set(wrapped_versions(_wrapped(settings))) == {2}
    survivor = seeded.pseudonyms[seeded.serials[1]]
    rt = open_runtime(settings, now)
    try:
        for rid, (pcm, exp) in seeded.raw.items():
            if seeded.raw_owner[rid] == survivor and exp and exp > later:
                assert rt.store.get_raw(rid, now=now).pcm == pcm
        assert len(_transit(rt).client.decrypt(old_victim_key)) == 32  # v1 still decrypts
    finally:
        rt.close()

    # trim: a pre-rotation copy of the wrapped keys is dead for good
    result = cli("keys", "rotate", "--trim", "--home", str(settings.home),
                 "--now", later.isoformat())
    assert result.exit_code == 0, result.output
    assert "v2 -> v3" in result.output and "trimmed" in result.output
    rt = open_runtime(settings, now)
    try:
        with pytest.raises(TransitTrimmedError, match="gone for good"):
            _transit(rt).client.decrypt(old_victim_key)
        info = _transit(rt).client.key_info()
        assert int(info["min_decryption_version"]) == 3
        for rid, (pcm, exp) in seeded.raw.items():  # today's keys, rewrapped, still work
            if seeded.raw_owner[rid] == survivor and exp and exp > later:
                assert rt.store.get_raw(rid, now=now).pcm == pcm
        assert [e.details["trim"] for e in entries(rt, Action.KEYS_ROTATE)] == [False, True]
    finally:
        rt.close()
    shutil.copy2(pre_rotation_copy, settings.transit_keystore_file)  # the old copy, by hand
    with pytest.raises(ConfigError, match="trimmed Transit key version"):
        open_runtime(settings, now)


def copy_raw_rows_of(settings: Settings, now: datetime, pseudonym: str) -> list[dict[str, Any]]:
    rt: Runtime = open_runtime(settings, now)
    try:
        return copy_raw_rows(rt, subject_pseudonym=pseudonym)
    finally:
        rt.close()


def test_backup_and_restore_with_transit(
    sqlite_home: Settings, now: datetime, bao: Bao, token: str, transit_key: str, tmp_path: Path
) -> None:
    rt = open_runtime(sqlite_home, now)
    seeded = seed_crowd(rt.store, now, subjects=2, hours=1, seed=6)
    rt.close()
    settings = _to_transit(sqlite_home, bao, transit_key, now)
    backup = tmp_path / "transit.backup"
    args = ["--home", str(settings.home), "--now", now.isoformat()]
    assert cli("keys", "backup", "--out", str(backup), *args).exit_code == 0
    rt = open_runtime(settings, now)
    erase_subject(rt.store, seeded.serials[0], now=now)
    rt.close()
    done = cli("keys", "restore", str(backup), *args)
    assert done.exit_code == 0, done.output
    assert "1 keys the audit log destroyed after the backup" in done.output
    rt = open_runtime(settings, now)
    try:
        assert rt.keys.is_subject_destroyed(seeded.pseudonyms[seeded.serials[0]])
        assert rt.keys.quarantined == {}
    finally:
        rt.close()
    assert cli("keys", "rotate", "--trim", *args).exit_code == 0
    late = cli("keys", "restore", str(backup), *args)  # a backup older than the trim is dead
    assert late.exit_code != 0 and "trimmed" in late.output


def _transit(rt: Runtime) -> TransitKeyStore:
    assert isinstance(rt.keys, TransitKeyStore)
    return rt.keys


def _one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


def test_server_down_wrong_token_missing_key_are_one_clear_line(
    sqlite_home: Settings, now: datetime, monkeypatch: pytest.MonkeyPatch, transit_key: str
) -> None:
    server = start_bao()
    try:
        monkeypatch.setenv(TOKEN_ENV, server.token)
        settings = _to_transit(sqlite_home, server, transit_key, now)
        args = ["--home", str(settings.home)]
        assert cli("keys", "status", *args).exit_code == 0

        monkeypatch.setenv(TOKEN_ENV, "s.not-the-token-" + base64.b16encode(b"x").decode())
        wrong = cli("keys", "status", *args)
        line = _one_line(wrong.output)
        assert wrong.exit_code != 0 and "token was refused" in line and TOKEN_ENV in line
        assert "not-the-token" not in line

        monkeypatch.setenv(TOKEN_ENV, server.token)
        config = settings.config_file.read_text().replace(transit_key, "no-such-key")
        settings.config_file.write_text(config)
        missing = cli("keys", "status", *args)
        line = _one_line(missing.output)
        assert "does not exist" in line and "bao write -f transit/keys/no-such-key" in line
        settings.config_file.write_text(config.replace("no-such-key", transit_key))
    finally:
        server.stop()
    down = cli("keys", "status", *args)
    line = _one_line(down.output)
    assert down.exit_code != 0 and "unreachable" in line and "FLOWAUDIT_TRANSIT_ADDR" in line
    assert server.token not in down.output
    dsr = cli("dsr", "export", "WB-1", "--out", str(sqlite_home.home / "x"), *args)
    assert dsr.exit_code != 0 and "unreachable" in _one_line(dsr.output)
