"""The master key and the key store: permissions, env override, atomic replacement."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from retention.errors import ConfigError, RecordShreddedError
from retention.keys import FileKeyStore, create_master_key_file, load_master_key

NOW = datetime(2026, 6, 21, tzinfo=UTC)


def test_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    create_master_key_file(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert len(load_master_key(path, environ={})) == 32
    with pytest.raises(ConfigError, match="already exists"):
        create_master_key_file(path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_readable_key_file_is_refused_with_the_chmod(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master.key"
    create_master_key_file(path)
    os.chmod(path, mode)
    with pytest.raises(ConfigError, match=f"chmod 600 '{path}'"):
        load_master_key(path, environ={})


def test_env_key_wins_and_is_validated(tmp_path: Path) -> None:
    key = os.urandom(32)
    env = {"FLOWAUDIT_MASTER_KEY": base64.b64encode(key).decode()}
    assert load_master_key(tmp_path / "absent", environ=env) == key
    with pytest.raises(ConfigError, match="32-byte"):
        load_master_key(None, environ={"FLOWAUDIT_MASTER_KEY": "bm90IGEga2V5"})
    with pytest.raises(ConfigError, match="flowaudit init"):
        load_master_key(tmp_path / "absent", environ={})


def test_keystore_persists_only_on_flush_and_survives_reopen(tmp_path: Path) -> None:
    kek = os.urandom(32)
    path = tmp_path / "keystore.bin"
    store = FileKeyStore.create(path, kek)
    key = store.bucket_key("e:raw_audio:20260621T20", create=True)
    assert FileKeyStore(path, kek).bucket_ids() == []  # not yet durable
    store.flush()
    assert FileKeyStore(path, kek).bucket_key("e:raw_audio:20260621T20") == key
    assert not list(tmp_path.glob("*.tmp"))  # atomic replace leaves no temp file


def test_destroyed_keys_are_tombstoned_across_instances(tmp_path: Path) -> None:
    kek = os.urandom(32)
    path = tmp_path / "keystore.bin"
    first = FileKeyStore.create(path, kek)
    first.subject_key("p1", create=True)
    first.bucket_key("b1", create=True)
    first.flush()
    second = FileKeyStore(path, kek)
    assert second.destroy_bucket_keys(["b1", "never-existed"], NOW) == ["b1"]
    assert second.destroy_subject_key("p1", NOW) is True
    with pytest.raises(RecordShreddedError, match="destroyed"):
        first.bucket_key("b1")  # first notices the file changed
    with pytest.raises(RecordShreddedError):
        first.subject_key("p1", create=True)  # a destroyed subject key is never re-created
    assert first.is_bucket_destroyed("b1") and first.is_subject_destroyed("p1")
