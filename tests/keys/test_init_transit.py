"""`flowaudit init --transit`: one command makes a Transit home, against a real OpenBao dev server.

A refusal (no token, a token the server refuses, no server, an existing home) is one line and a
non-zero exit, and writes nothing: the token and the server are checked before the home is made.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import hvac
import pytest
from typer.testing import Result

from flowaudit.config import resolve_settings
from flowaudit.runtime import open_runtime
from retention.transit import TransitKeyStore
from tests.retention_ops._data import seed_crowd
from tests.servers import free_port

from ._helpers import cli
from .conftest import Bao

TOKEN_ENVS = ("FLOWAUDIT_TRANSIT_TOKEN", "VAULT_TOKEN", "BAO_TOKEN")
OTHER_ENVS = ("FLOWAUDIT_HOME", "FLOWAUDIT_DB_URL", "FLOWAUDIT_MASTER_KEY", "FLOWAUDIT_NOW",
              "FLOWAUDIT_TRANSIT_ADDR", "VAULT_ADDR", "BAO_ADDR")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (*TOKEN_ENVS, *OTHER_ENVS):
        monkeypatch.delenv(var, raising=False)


def _init(home: Path, address: str, key: str, *more: str) -> Result:
    return cli("init", "--home", str(home), "--transit", address, "--transit-key", key, *more)


def _one_error_line(result: Result) -> str:
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("flowaudit: error: "), lines[0]
    return lines[0]


def test_init_transit_makes_a_working_home(
    tmp_path: Path, bao: Bao, transit_key: str, now: datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOWAUDIT_TRANSIT_TOKEN", bao.token)
    home = tmp_path / "home"
    result = _init(home, bao.address, transit_key)
    assert result.exit_code == 0, result.output
    assert f"Transit key '{transit_key}' at {bao.address}" in result.output
    assert not (home / "keystore.bin").exists() and not (home / "master.key").exists()
    assert (home / "keystore.transit.json").stat().st_mode & 0o777 == 0o600
    assert (home / "signing.key").exists()
    # the key was created on the server
    info = hvac.Client(url=bao.address, token=bao.token).secrets.transit.read_key(transit_key)
    assert int(info["data"]["latest_version"]) == 1

    status = cli("keys", "status", "--home", str(home), "--format", "json")
    assert status.exit_code == 0, status.output
    shown = json.loads(status.stdout)
    assert shown["provider"] == "transit" and shown["transit_key"] == transit_key
    assert shown["bucket_keys"] == 0 and shown["wrapped_versions"] == {"1": 1}  # the pepper

    run = cli("run-event", "--home", str(home), "--source", "synth:4", "--duration", "2m",
              "--format", "json")
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["window_scores"] > 0
    verify = cli("audit", "verify", "--home", str(home))
    assert verify.exit_code == 0, verify.output

    settings = resolve_settings(home)
    rt = open_runtime(settings, now)
    try:
        assert isinstance(rt.keys, TransitKeyStore)
        seeded = seed_crowd(rt.store, now, event_id="second", subjects=2, hours=1, seed=3)
        for rid, (pcm, _exp) in seeded.raw.items():
            assert rt.store.get_raw(rid, now=now).pcm == pcm
    finally:
        rt.close()
    assert json.loads(cli("keys", "status", "--home", str(home), "--format", "json").stdout)[
        "bucket_keys"] > 0

    for path in home.rglob("*"):  # the token is in no file of the home, database included
        if path.is_file():
            assert bao.token.encode() not in path.read_bytes(), path.name
    assert bao.token not in result.output + status.output + run.output


def test_init_transit_takes_mount_and_default_key(
    tmp_path: Path, bao: Bao, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = hvac.Client(url=bao.address, token=bao.token)
    client.sys.enable_secrets_engine("transit", path="other-transit")
    monkeypatch.setenv("BAO_TOKEN", bao.token)
    home = tmp_path / "home"
    result = cli("init", "--home", str(home), "--transit", bao.address,
                 "--transit-mount", "other-transit")
    assert result.exit_code == 0, result.output
    settings = resolve_settings(home)
    assert (settings.key_provider, settings.transit_mount, settings.transit_key) == (
        "transit", "other-transit", "flowaudit")
    assert client.secrets.transit.read_key("flowaudit", mount_point="other-transit")


def test_no_token_is_refused_before_anything_is_written(
    tmp_path: Path, bao: Bao, transit_key: str
) -> None:
    home = tmp_path / "home"
    line = _one_error_line(_init(home, bao.address, transit_key))
    assert "FLOWAUDIT_TRANSIT_TOKEN" in line
    assert not home.exists()
    with pytest.raises(hvac.exceptions.InvalidPath):  # nor on the server
        hvac.Client(url=bao.address, token=bao.token).secrets.transit.read_key(transit_key)


def test_a_refused_token_is_refused_before_anything_is_written(
    tmp_path: Path, bao: Bao, transit_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWAUDIT_TRANSIT_TOKEN", "not-" + bao.token)
    home = tmp_path / "home"
    result = _init(home, bao.address, transit_key)
    line = _one_error_line(result)
    assert "token was refused" in line and "FLOWAUDIT_TRANSIT_TOKEN" in line
    assert bao.token not in result.output
    assert not home.exists()


def test_an_unreachable_server_is_refused_before_anything_is_written(
    tmp_path: Path, transit_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWAUDIT_TRANSIT_TOKEN", "s.some-token-value")
    home = tmp_path / "home"
    address = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = _init(home, address, transit_key)
    line = _one_error_line(result)
    assert "unreachable" in line and address in line and "start the server" in line
    assert "some-token-value" not in result.output
    assert not home.exists()


def test_an_existing_empty_directory_stays_empty_when_refused(
    tmp_path: Path, transit_key: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    _one_error_line(_init(home, f"http://127.0.0.1:{free_port()}", transit_key))
    assert list(home.iterdir()) == []


def test_an_address_variable_that_would_override_the_home_is_refused(
    tmp_path: Path, bao: Bao, transit_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWAUDIT_TRANSIT_TOKEN", bao.token)
    monkeypatch.setenv("FLOWAUDIT_TRANSIT_ADDR", "http://127.0.0.1:1")
    home = tmp_path / "home"
    line = _one_error_line(_init(home, bao.address, transit_key))
    assert "FLOWAUDIT_TRANSIT_ADDR" in line and "unset it" in line
    assert not home.exists()


@pytest.mark.parametrize("first", ["file", "transit"])
def test_an_existing_home_is_refused_as_plain_init_refuses_it(
    tmp_path: Path, bao: Bao, transit_key: str, monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    monkeypatch.setenv("FLOWAUDIT_TRANSIT_TOKEN", bao.token)
    home = tmp_path / "home"
    made = (cli("init", "--home", str(home)) if first == "file"
            else _init(home, bao.address, transit_key))
    assert made.exit_code == 0, made.output
    before = {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()}
    plain = _one_error_line(cli("init", "--home", str(home)))
    again = _one_error_line(_init(home, bao.address, transit_key))
    assert again == plain and "already a flowaudit home" in again
    assert {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()} == before


def test_help_explains_the_transit_options() -> None:
    result = cli("init", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for option in ("--transit", "--transit-mount", "--transit-key", "FLOWAUDIT_TRANSIT_TOKEN"):
        assert option in text


def test_a_missing_transit_engine_is_refused_before_anything_is_written(
    tmp_path: Path, bao: Bao, transit_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWAUDIT_TRANSIT_TOKEN", bao.token)
    home = tmp_path / "home"
    line = _one_error_line(_init(home, bao.address, transit_key, "--transit-mount", "nowhere"))
    assert "no Transit engine at mount 'nowhere'" in line and "secrets enable" in line
    assert not home.exists()


@pytest.mark.parametrize("option", ["--transit-mount", "--transit-key"])
def test_a_transit_option_without_transit_is_refused(tmp_path: Path, option: str) -> None:
    home = tmp_path / "home"
    line = _one_error_line(cli("init", "--home", str(home), option, "x"))
    assert "need --transit URL" in line
    assert not home.exists()
