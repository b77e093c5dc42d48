"""Forensics: after a purge no file under the data home holds a destroyed key or its data.

Modelled on SQLite's securedel tests: capture the secret bytes first, check the check would
find them, purge, then grep every file (database, -wal, -journal, key store, everything).
"""

from __future__ import annotations

import base64
import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from flowaudit.runtime import Runtime
from retention import _crypto
from retention.errors import NotFoundError, RecordShreddedError
from retention.keys import FileKeyStore, load_master_key
from retention.models import RawSegment
from retention.purge import purge

from ._data import pcm, register_event


def _encodings(secret: bytes) -> list[bytes]:
    return [
        secret,
        base64.b64encode(secret),
        base64.urlsafe_b64encode(secret),
        base64.b64encode(secret).rstrip(b"="),
        secret.hex().encode(),
    ]


def _files(home: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


def _holders(files: dict[Path, bytes], secrets: dict[str, bytes]) -> list[str]:
    found = []
    for name, secret in secrets.items():
        for encoded in _encodings(secret):
            for path, content in files.items():
                if encoded in content:
                    found.append(f"{name} in {path.name}")
    return found


def _keystore_plaintext(runtime: Runtime) -> bytes:
    """What anyone holding the master key reads from the key store file."""
    master = load_master_key(runtime.settings.master_key_file)
    file_key = _crypto.derive(master, b"flowaudit/v1/keystore")
    return _crypto.open_blob(
        file_key, runtime.settings.keystore_file.read_bytes(), b"flowaudit/v1/keystore"
    )


def test_no_file_under_the_home_keeps_a_destroyed_key_or_its_data(
    runtime: Runtime, now: datetime
) -> None:
    store, rng = runtime.store, random.Random(5)
    register_event(store, now, "forensic")
    secrets_pcm: dict[str, bytes] = {}
    with store.transaction(now, actor="test") as tx:
        pseud = tx.register_subject("WB-FORENSIC-1", zone="A1")
        doomed = []
        for minute in (1, 2, 3):
            data = pcm(rng, 800)
            rid = tx.put_raw(
                event_id="forensic",
                pseudonym=pseud,
                start_at=now + timedelta(minutes=minute),
                pcm=data,
                sample_rate=16000,
                retention=timedelta(hours=1),
            )
            doomed.append(rid)
            secrets_pcm[rid] = data
        kept = tx.put_raw(
            event_id="forensic",
            pseudonym=pseud,
            start_at=now + timedelta(hours=2),
            pcm=pcm(rng, 800),
            sample_rate=16000,
            retention=timedelta(hours=72),
        )
    last_pcm = secrets_pcm[doomed[-1]]
    with store.session() as session:
        row = session.get(RawSegment, doomed[0])
        assert row is not None
        bucket_id, ciphertext = row.bucket_id, bytes(row.ciphertext)
        nonce, commitment = bytes(row.nonce), bytes(row.commitment)
        aad_row = row
    # the key store internals (what the file holds once decrypted) and a derived record key
    bucket_key = base64.b64decode(runtime.keys._state["buckets"][bucket_id])
    record_key = store._record_key(bucket_id, pseud, create=False)
    secrets = {
        "bucket key": bucket_key,
        "record key": record_key,
        "ciphertext": ciphertext,
        "plaintext pcm": last_pcm[:256],
        "serial": b"WB-FORENSIC-1",
    }
    # the search works: before the purge the key is in the (decrypted) key store, the
    # ciphertext is in the database files (SQLite), and neither key is there in the clear
    assert base64.b64encode(bucket_key) in _keystore_plaintext(runtime)
    before = _holders(_files(runtime.settings.home), secrets)
    if runtime.engine.dialect.name == "sqlite":
        assert any(h.startswith("ciphertext") for h in before)
    assert not [h for h in before if "key" in h or "serial" in h]  # never on disk in clear

    report = purge(store, now=now + timedelta(hours=3))
    assert bucket_id in report.buckets_deleted
    assert report.wal_truncated is True

    after = _files(runtime.settings.home)
    assert _holders(after, secrets) == []
    for path, content in after.items():
        if path.name.endswith("-wal"):
            assert content == b""  # checkpointed and truncated
    # with the master key: the key store no longer has the key, only a tombstone
    state = json.loads(_keystore_plaintext(runtime))
    assert bucket_id not in state["buckets"] and bucket_id in state["destroyed_buckets"]
    assert base64.b64encode(bucket_key) not in _keystore_plaintext(runtime)
    fresh = FileKeyStore(
        runtime.settings.keystore_file, load_master_key(runtime.settings.master_key_file)
    )
    with pytest.raises(RecordShreddedError):
        fresh.bucket_key(bucket_id)
    # the captured ciphertext (as a backup would hold it) opens only with the destroyed key
    from retention.store import RAW_AUDIO, _aad

    aad = _aad("raw_segments", aad_row, RAW_AUDIO)
    assert (
        _crypto.open_sealed(record_key, nonce, ciphertext, aad, commitment)[:256]
        == (secrets_pcm[doomed[0]][:256])
    )
    with pytest.raises(NotFoundError):
        store.get_raw(doomed[0], now=now + timedelta(hours=3))
    assert store.get_raw(kept, now=now + timedelta(hours=3)).sample_rate == 16000
    with store.session() as session:
        assert (
            session.scalar(select(RawSegment.id).where(RawSegment.bucket_id == bucket_id)) is None
        )
