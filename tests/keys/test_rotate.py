"""`flowaudit keys rotate` (file provider): new KEK, keys re-wrapped, old KEK destroyed, audited,
pseudonyms unchanged; killed at every step it leaves a store that opens with exactly one KEK."""

from __future__ import annotations

import base64
import json
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowaudit.config import Settings
from flowaudit.runtime import open_runtime
from retention import _crypto
from retention.errors import ConfigError, IntegrityError
from retention.ground.actions import Action
from retention.keys import (
    FileKeyStore,
    derive_pepper,
    kek_fingerprint,
    load_master_key,
    open_state,
    seal_state,
)
from retention.rotation import STEPS, finish_interrupted, next_key_path, rotate_file_kek
from tests.retention_ops._data import seed_crowd

from ._helpers import cli, entries


def _all_keys(settings: Settings) -> dict[str, dict[str, str]]:
    state = open_state(load_master_key(settings.master_key_file, {}),
                       settings.keystore_file.read_bytes())
    return {k: state[k] for k in ("buckets", "subjects", "destroyed_buckets",
                                  "destroyed_subjects")}


def test_rotation_keeps_keys_pseudonyms_and_data(sqlite_home: Settings, now: datetime) -> None:
    rt = open_runtime(sqlite_home, now)
    seeded = seed_crowd(rt.store, now, subjects=3, hours=2, seed=3)
    rid, (pcm, _exp) = next(iter(seeded.raw.items()))
    old_kek = load_master_key(sqlite_home.master_key_file, {})
    before = _all_keys(sqlite_home)
    old_copy = sqlite_home.keystore_file.read_bytes()
    rt.close()

    result = cli("keys", "rotate", "--home", str(sqlite_home.home), "--now", now.isoformat())
    assert result.exit_code == 0, result.output
    assert "old KEK is destroyed" in result.output

    new_kek = load_master_key(sqlite_home.master_key_file, {})
    assert new_kek != old_kek
    assert _all_keys(sqlite_home) == before  # exactly the same keys, under the new KEK
    with pytest.raises(IntegrityError):
        open_state(new_kek, old_copy)  # an old copy of keystore.bin does not open any more
    assert old_kek not in b"".join(p.read_bytes() for p in sqlite_home.home.iterdir()
                                   if p.is_file())
    assert base64.b64encode(old_kek) not in sqlite_home.master_key_file.read_bytes()

    rt = open_runtime(sqlite_home, now)
    try:
        for serial, pseudonym in seeded.pseudonyms.items():
            assert rt.store.pseudonym(serial) == pseudonym
        assert rt.store.get_raw(rid, now=now).pcm == pcm
        # the pepper is no longer whatever the current KEK derives
        assert rt.keys.pepper() == derive_pepper(old_kek) != derive_pepper(new_kek)
        (entry,) = entries(rt, Action.KEYS_ROTATE)
        assert entry.details == {"provider": "file", "old_kek": kek_fingerprint(old_kek),
                                 "new_kek": kek_fingerprint(new_kek), "retired": "destroyed"}
        text = json.dumps(entry.details)
        for secret in (old_kek, new_kek):
            assert base64.b64encode(secret).decode() not in text and secret.hex() not in text
    finally:
        rt.close()


def test_a_home_made_before_the_pepper_was_stored_keeps_its_pseudonyms(
    sqlite_home: Settings, now: datetime
) -> None:
    """Older homes have no pepper in keystore.bin: it is seeded from the KEK derivation."""
    kek = load_master_key(sqlite_home.master_key_file, {})
    state = open_state(kek, sqlite_home.keystore_file.read_bytes())
    state.pop("pepper", None)
    state.pop("ledger_seq", None)
    sqlite_home.keystore_file.write_bytes(seal_state(kek, state))  # the old file format
    legacy = _crypto.pseudonym(derive_pepper(kek), "WB-LEGACY-1")

    rt = open_runtime(sqlite_home, now)
    assert rt.store.pseudonym("WB-LEGACY-1") == legacy
    with rt.store.transaction(now) as tx:
        assert tx.register_subject("WB-LEGACY-1") == legacy
    rt.close()
    for _ in range(2):  # two rotations: still the same pseudonym
        assert cli("keys", "rotate", "--home", str(sqlite_home.home)).exit_code == 0
    rt = open_runtime(sqlite_home, now)
    assert rt.store.pseudonym("WB-LEGACY-1") == legacy
    rt.close()


def test_rotation_refuses_a_master_key_from_the_environment(
    sqlite_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = base64.b64encode(load_master_key(sqlite_home.master_key_file, {})).decode()
    monkeypatch.setenv("FLOWAUDIT_MASTER_KEY", key)
    before = sqlite_home.keystore_file.read_bytes()
    result = cli("keys", "rotate", "--home", str(sqlite_home.home))
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "FLOWAUDIT_MASTER_KEY" in lines[0] and "master.key" in lines[0]
    assert key not in result.output
    assert sqlite_home.keystore_file.read_bytes() == before


def _kill_rotation_at(settings: Settings, step: str, at: datetime) -> None:
    """Rotate in a child process that SIGKILLs itself right after ``step`` is durable."""

    def die(reached: str) -> None:
        if reached == step:
            os.kill(os.getpid(), signal.SIGKILL)

    pid = os.fork()
    if pid == 0:  # the child: a real process killed -9 mid-rotation
        try:
            keys = FileKeyStore(settings.keystore_file, load_master_key(settings.master_key_file))
            rotate_file_kek(settings.master_key_file, keys, at, on_step=die)
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


@pytest.mark.parametrize("step", STEPS)
def test_rotation_killed_at_each_step_loses_no_key(
    sqlite_home: Settings, now: datetime, step: str
) -> None:
    rt = open_runtime(sqlite_home, now)
    seeded = seed_crowd(rt.store, now, subjects=2, hours=1, seed=11)
    rt.close()
    old_kek = load_master_key(sqlite_home.master_key_file, {})
    before = _all_keys(sqlite_home)

    _kill_rotation_at(sqlite_home, step, now)

    pending = next_key_path(sqlite_home.master_key_file)
    if step == "keystore-rewrapped":  # the store opens only with the new KEK: said plainly
        with pytest.raises(ConfigError, match="interrupted.*master.key.next.*keys rotate"):
            open_runtime(sqlite_home, now)
    result = cli("keys", "rotate", "--home", str(sqlite_home.home))
    assert result.exit_code == 0, result.output
    if step == "new-key-written":
        assert "opens with master.key" in result.output and not pending.exists()
        assert load_master_key(sqlite_home.master_key_file, {}) == old_kek
    elif step == "keystore-rewrapped":
        assert "re-wrapped keystore.bin under the new KEK" in result.output
        assert load_master_key(sqlite_home.master_key_file, {}) != old_kek
    else:  # killed after the last step: the rotation was complete; this is a second one
        assert "master key rotated" in result.output
    assert not pending.exists()
    assert _all_keys(sqlite_home) == before
    rt = open_runtime(sqlite_home, now)
    try:
        for rid, (pcm, _exp) in seeded.raw.items():
            assert rt.store.get_raw(rid, now=now).pcm == pcm
        assert all(rt.store.pseudonym(s) == p for s, p in seeded.pseudonyms.items())
    finally:
        rt.close()


def test_finish_interrupted_refuses_a_store_neither_key_opens(
    sqlite_home: Settings, now: datetime
) -> None:
    next_key_path(sqlite_home.master_key_file).write_bytes(
        base64.b64encode(os.urandom(32)) + b"\n"
    )
    os.chmod(next_key_path(sqlite_home.master_key_file), 0o600)
    sqlite_home.keystore_file.write_bytes(seal_state(os.urandom(32), {"buckets": {}}))
    with pytest.raises(IntegrityError, match="neither master.key nor master.key.next"):
        finish_interrupted(sqlite_home.master_key_file, sqlite_home.keystore_file)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ids=st.lists(st.text("abcdef0123456789:", min_size=1, max_size=12), max_size=8, unique=True),
    rotations=st.integers(1, 3),
)
def test_property_rotations_preserve_every_key_and_tombstone(
    tmp_path: Path, ids: list[str], rotations: int
) -> None:
    home = tmp_path / f"p{os.urandom(4).hex()}"
    home.mkdir()
    master = home / "master.key"
    master.write_bytes(base64.b64encode(os.urandom(32)) + b"\n")
    os.chmod(master, 0o600)
    store = FileKeyStore.create(home / "keystore.bin", load_master_key(master, {}))
    made = {i: store.bucket_key(i, create=True) for i in ids}
    store.flush()
    store.destroy_bucket_keys(ids[::2], datetime(2026, 6, 21, tzinfo=UTC) + timedelta(hours=1))
    pepper = store.pepper()
    for n in range(rotations):
        rotate_file_kek(master, store, datetime(2026, 7, 1 + n, tzinfo=UTC))
    reopened = FileKeyStore(home / "keystore.bin", load_master_key(master, {}))
    assert reopened.pepper() == pepper
    assert {i: reopened.bucket_key(i) for i in ids[1::2]} == {i: made[i] for i in ids[1::2]}
    assert all(reopened.is_bucket_destroyed(i) for i in ids[::2])
