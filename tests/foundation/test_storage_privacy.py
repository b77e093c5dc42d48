"""No plaintext PCM, serial or data key ever lands in a file under the data home."""

from __future__ import annotations

import base64
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from flowaudit.runtime import Runtime
from retention import _crypto

from .helpers import EVENT_ID, register_event

MARKER = b"FLOWAUDIT-PCM-MARKER-7f3a9c!" * 3  # an even number of bytes, easy to grep
SERIAL = "WB-SECRET-SERIAL-000987"


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _needles(runtime: Runtime, record_keys: list[bytes]) -> dict[str, bytes]:
    keys = runtime.keys
    state = keys._state  # white-box: the test must know the real key bytes to look for them
    found: dict[str, bytes] = {"marker": MARKER, "serial": SERIAL.encode()}
    for name in ("buckets", "subjects"):
        for ident, encoded in state[name].items():
            raw = base64.b64decode(encoded)
            found[f"{name}:{ident}"] = raw
            found[f"{name}:{ident}:b64"] = encoded.encode()
    for i, key in enumerate(record_keys):
        found[f"record-key-{i}"] = key
        found[f"record-key-{i}:b64"] = base64.b64encode(key)
    found["pepper"] = runtime.store._pepper
    return found


def test_no_plaintext_or_key_on_disk(
    sqlite_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    runtime = sqlite_runtime
    store, now = runtime.store, runtime.now
    register_event(store, now)
    with store.transaction(now) as tx:
        pseudonym = tx.register_subject(SERIAL, zone="A1")
        for i in range(20):
            tx.put_raw(
                event_id=EVENT_ID,
                pseudonym=pseudonym,
                start_at=now + timedelta(seconds=i),
                pcm=MARKER * 40,
                sample_rate=16000,
                retention=timedelta(hours=72),
            )
        tx.put_metadata(
            event_id=EVENT_ID,
            pseudonym=pseudonym,
            kind="track_request",
            start_at=now,
            payload={"text": MARKER.decode()},
            retention=None,
        )
    # read everything back (exercises the read path, which must not spill either)
    assert all(s.pcm == MARKER * 40 for s in store.iter_raw(now=now))
    bucket_id = next(iter(runtime.keys._state["buckets"]))
    record_key = store._record_key(bucket_id, pseudonym, create=False)

    files = _all_files(runtime.settings.home)
    names = {p.name for p in files}
    assert "flowaudit.db" in names and "keystore.bin" in names
    assert any(n.endswith("-wal") for n in names), "WAL should exist while the engine is open"
    needles = _needles(runtime, [record_key])
    for path in files:
        blob = path.read_bytes()
        for label, needle in needles.items():
            assert needle not in blob, f"{label} found in {path.name}"
    logged = caplog.text.encode()
    for label, needle in needles.items():
        assert needle not in logged, f"{label} found in logs"


def test_database_holds_no_key_material(sqlite_runtime: Runtime) -> None:
    """Even after a shred, the database itself never held a key (keys live in keystore.bin)."""
    runtime = sqlite_runtime
    store, now = runtime.store, runtime.now
    register_event(store, now)
    with store.transaction(now) as tx:
        who = tx.register_subject(SERIAL)
        tx.put_raw(
            event_id=EVENT_ID,
            pseudonym=who,
            start_at=now,
            pcm=MARKER,
            sample_rate=16000,
            retention=timedelta(hours=1),
        )
    key_bytes = [base64.b64decode(v) for v in runtime.keys._state["buckets"].values()]
    runtime.engine.dispose()  # checkpoint the WAL into the main file
    db_bytes = (runtime.settings.home / "flowaudit.db").read_bytes()
    assert key_bytes and not any(k in db_bytes for k in key_bytes)
    # and the key store on disk is ciphertext: no JSON field names in the clear
    assert b"buckets" not in runtime.settings.keystore_file.read_bytes()
    assert len(_crypto.random_key()) == 32
