"""The audit log holds no serial, no PCM and no personal free text — scanned, not assumed.

The log must outlive the raw audio (AI Act: deployer logs for at least six months), so it may
carry pseudonyms at most. A store is filled through the real API with a known serial, PCM with
marker bytes and a free-text payload; then the audit_log table and every database file
(main file, WAL, shared memory) are searched for them.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from flowaudit.runtime import Runtime

from .logbuild import START

SERIAL = "WB-SECRET-0042-XYZ"
PCM_MARKER = b"PCM\x7fMARKER\x01\x02"
FREE_TEXT = "Bonjour, je m'appelle Marie Dupont"


def _fill(runtime: Runtime) -> str:
    pcm = (PCM_MARKER * 200)[: 2 * 960]
    with runtime.store.transaction(START, actor="pipeline") as tx:
        tx.register_event(
            "fete-2026",
            name="demo",
            starts_at=START,
            ends_at=START + timedelta(hours=4),
            policy_name="spotify-2026",
            policy_sha256="0" * 64,
        )
        pseudonym = tx.register_subject(SERIAL, zone="A")
        tx.record_consent("fete-2026", pseudonym, status="opted_in", given_at=START)
        tx.put_raw(
            event_id="fete-2026",
            pseudonym=pseudonym,
            start_at=START + timedelta(minutes=1),
            pcm=pcm,
            sample_rate=16000,
            retention=timedelta(hours=72),
            speech_frames=2,
        )
        tx.put_metadata(
            event_id="fete-2026",
            pseudonym=pseudonym,
            kind="track_request",
            start_at=START + timedelta(minutes=2),
            payload={"text": FREE_TEXT, "serial": SERIAL},
            retention=None,
        )
    runtime.store.destroy_subject_key(pseudonym, now=START + timedelta(hours=1))
    return pseudonym


def _audit_rows_text(runtime: Runtime) -> str:
    with runtime.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM audit_log ORDER BY seq")).all()
    return json.dumps([[str(v) for v in row] for row in rows])


def test_the_audit_table_holds_no_serial_pcm_or_free_text(runtime: Runtime) -> None:
    pseudonym = _fill(runtime)
    dump = _audit_rows_text(runtime)
    assert pseudonym in dump  # pseudonyms are what the log uses…
    assert SERIAL not in dump  # …never the serial
    assert "MARKER" not in dump and PCM_MARKER.hex() not in dump
    assert "Marie" not in dump and "appelle" not in dump


@pytest.mark.parametrize("needle", [SERIAL.encode(), PCM_MARKER, b"Marie Dupont"])
def test_no_database_file_contains_them(sqlite_runtime: Runtime, needle: bytes) -> None:
    _fill(sqlite_runtime)
    db_file = Path(sqlite_runtime.engine.url.database or "")
    files = [p for p in db_file.parent.iterdir() if p.name.startswith(db_file.name)]
    assert db_file in files
    for path in files:
        assert needle not in path.read_bytes(), path.name
