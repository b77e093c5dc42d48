"""Builds real audit logs for the log tests, and tampers with copies of them like an attacker.

The log is written through the real store API (events, wristbands, sealed records, decisions,
custom entries with awkward details), with the signing key attached so checkpoints land every
few entries, and an anchor is exported at the head. Tampering works on raw rows of a *copy*
of the SQLite file, the way someone with write access to the database would.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from audit.log.chain import canonical_entry, entry_hash, read_head
from audit.log.checkpoints import (
    Anchor,
    CheckpointSigner,
    load_anchor,
    load_signer,
    make_anchor,
    write_anchor,
    write_checkpoint,
)
from flowaudit.runtime import Runtime
from retention.models import Decision

START = datetime(2026, 6, 21, 18, 0, tzinfo=UTC)
COLUMNS = ("seq", "at", "actor", "action", "object_type", "object_id", "details")
COLUMNS += ("prev_hash", "hash")


def fill_log(runtime: Runtime, entries: int = 40, checkpoint_every: int = 7) -> CheckpointSigner:
    """Write at least ``entries`` audit entries through the store; return the signer."""
    signer = load_signer(runtime.settings.signing_key_file)
    assert signer is not None
    runtime.audit.attach_signer(signer, checkpoint_every)
    store = runtime.store
    with store.transaction(START, actor="setup") as tx:
        tx.register_event(
            "fete-2026",
            name="demo",
            starts_at=START,
            ends_at=START + timedelta(hours=6),
            policy_name="privacy-by-default",
            policy_sha256="0" * 64,
        )
    i = 0
    while True:
        at = START + timedelta(minutes=i, microseconds=137 * i)
        with store.transaction(at, actor="pipeline") as tx:
            pseudonym = tx.register_subject(f"WB-{i:05d}", zone="A")
            tx.record_consent("fete-2026", pseudonym, status="opted_in", given_at=START)
            tx.put_metadata(
                event_id="fete-2026",
                pseudonym=pseudonym,
                kind="window_score",
                start_at=at,
                payload={"sentiment": 50 + i},
                retention=timedelta(days=30),
            )
            tx.audit(
                "gate.drop",
                "wristband",
                pseudonym,
                {"reason": "vad", "frames": i, "ratio": i / 7, "zones": {"B": 1, "A": 2}},
            )
            if i % 5 == 0:
                decision = Decision(
                    event_id="fete-2026",
                    decided_at=at,
                    track_id=f"trk-{i}",
                    crowd_sentiment=40.5,
                    inputs={},
                    parameters={"weights": {"sentiment": 1.0}},
                    explanation="test",
                    latency_ms=1.0,
                )
                tx.session.add(decision)
                tx.session.flush()
                tx.audit("selection.decision", "decision", str(decision.id), {"note": "é ü ✓"})
        i += 1
        with store.session() as session:
            if read_head(session)[0] >= entries:
                return signer


def export_anchor(runtime: Runtime, signer: CheckpointSigner, path: Path, now: datetime) -> Anchor:
    """Sign the head and write it out as an anchor file."""
    with runtime.store.transaction(now, actor="audit") as tx:
        checkpoint = write_checkpoint(tx.session, signer, now, force=True)
        assert checkpoint is not None
        write_anchor(path, make_anchor(checkpoint, signer.public_key))
    return load_anchor(path)


def freeze(runtime: Runtime) -> Path:
    """Fold the WAL into the main file so a plain copy of it is the whole database."""
    runtime.engine.dispose()
    path = Path(runtime.engine.url.database or "")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return path


class NotUtf8(bytes):
    """Bytes to be stored as SQLite *text* (``CAST(x AS TEXT)``), which no UTF-8 decoder reads."""


def _lenient(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


@dataclass
class RawLog:
    """Raw rows of a copy of a SQLite log, to be tampered with and written back."""

    path: Path

    @classmethod
    def copy_of(cls, source: Path, target: Path) -> RawLog:
        shutil.copyfile(source, target)
        return cls(target)

    def rows(self) -> list[dict[str, Any]]:
        with sqlite3.connect(self.path) as conn:
            cursor = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM audit_log ORDER BY seq")
            return [dict(zip(COLUMNS, row, strict=True)) for row in cursor]

    def replace(
        self,
        rows: list[dict[str, Any]],
        *,
        drop_checkpoints_after: int | None = None,
        loose: bool = False,
    ) -> None:
        """Write ``rows`` back; ``loose`` first recreates the table without types or
        constraints, as an attacker with the file can, so any value stays as given."""
        conn = sqlite3.connect(self.path)
        try:
            if loose:
                conn.execute("DROP TABLE audit_log")
                conn.execute(f"CREATE TABLE audit_log ({', '.join(COLUMNS)})")
            else:
                conn.execute("DELETE FROM audit_log")
            conn.executemany(
                f"INSERT INTO audit_log ({', '.join(COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in COLUMNS)})",
                [tuple(r[c] for c in COLUMNS) for r in rows],
            )
            for position, row in enumerate(rows, start=1):
                for column in COLUMNS:
                    if isinstance(row[column], NotUtf8):
                        conn.execute(
                            f"UPDATE audit_log SET {column} = CAST({column} AS TEXT) "
                            "WHERE rowid = (SELECT rowid FROM audit_log ORDER BY rowid "
                            "LIMIT 1 OFFSET ?)",
                            (position - 1,),
                        )
            if drop_checkpoints_after is not None:
                conn.execute(
                    "DELETE FROM audit_checkpoints WHERE seq > ?", (drop_checkpoints_after,)
                )
            conn.commit()
        finally:
            conn.close()

    def stored(self, seq_position: int) -> tuple[tuple[type, Any], ...]:
        """The typed values of the ``seq_position``-th row (1-based, by rowid) as stored."""
        with sqlite3.connect(self.path) as conn:
            conn.text_factory = _lenient
            row = conn.execute(
                f"SELECT {', '.join(COLUMNS)} FROM audit_log ORDER BY rowid LIMIT 1 OFFSET ?",
                (seq_position - 1,),
            ).fetchone()
        return tuple((type(v), v) for v in row)

    def add_checkpoint(self, seq: int, head_hash: str, at: str, key_id: str, sig: bytes) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.execute(
                "INSERT INTO audit_checkpoints (seq, head_hash, at, key_id, signature) "
                "VALUES (?, ?, ?, ?, ?)",
                (seq, head_hash, at, key_id, sig),
            )

    def drop_checkpoints(self) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.execute("DELETE FROM audit_checkpoints")

    def url(self) -> str:
        return f"sqlite:///{self.path}"


def iso_of(raw_at: str) -> str:
    return datetime.fromisoformat(raw_at).replace(tzinfo=UTC).isoformat()


def forged(
    seq: int,
    prev_hash: str,
    like: dict[str, Any],
    valid: bool,
    iso: Callable[[Any], str] | None = None,
) -> dict[str, Any]:
    """A fabricated entry at ``seq``; ``valid`` gives it a correctly chained hash.
    ``iso`` turns the stored time into the chain's (default: SQLite's text)."""
    details = json.dumps({"forged": True, "frames": 0})
    row = {
        "seq": seq,
        "at": like["at"],
        "actor": "pipeline",
        "action": "gate.drop",
        "object_type": "wristband",
        "object_id": "f" * 64,
        "details": details,
        "prev_hash": prev_hash,
    }
    canonical = canonical_entry(
        seq, (iso or iso_of)(like["at"]), "pipeline", "gate.drop", "wristband", "f" * 64, details
    )
    row["hash"] = entry_hash(prev_hash, canonical) if valid else "0" * 63 + "1"
    return row


def shift_at(raw_at: str) -> str:
    value = datetime.fromisoformat(raw_at) + timedelta(microseconds=1)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def flip(hex_text: str) -> str:
    return ("1" if hex_text[0] != "1" else "2") + hex_text[1:]


def forged_tail(
    rows: list[dict[str, Any]], count: int, iso: Callable[[Any], str] | None = None
) -> list[dict[str, Any]]:
    """``count`` fabricated entries after the last one, each correctly hashed and chained:
    what someone with write access but without the signing key can append."""
    last = rows[-1]
    out, prev = [], last["hash"]
    for n in range(1, count + 1):
        row = forged(last["seq"] + n, prev, last, valid=True, iso=iso)
        out.append(row)
        prev = row["hash"]
    return out


# -- PostgreSQL: the same attacker, within what the column types accept --------------------------
PG_TYPES = {
    "seq": "integer",
    "at": "timestamptz",
    "details": "json",
    **{c: "text" for c in ("actor", "action", "object_type", "object_id", "prev_hash", "hash")},
}


def pg_iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


@dataclass
class PgLog:
    """Raw rows of a PostgreSQL log (one schema per test), tampered with in place."""

    engine: Engine

    def loosen(self) -> None:
        """Drop the primary key and NOT NULL constraints (an attacker with DDL rights);
        the column types stay."""
        with self.engine.begin() as conn:
            conn.execute(text("ALTER TABLE audit_log DROP CONSTRAINT pk_audit_log"))
            for column in COLUMNS:
                conn.execute(text(f"ALTER TABLE audit_log ALTER COLUMN {column} DROP NOT NULL"))

    def rows(self) -> list[dict[str, Any]]:
        select_list = ", ".join(
            "details::text AS details" if c == "details" else c for c in COLUMNS
        )
        with self.engine.connect() as conn:
            result = conn.execute(text(f"SELECT {select_list} FROM audit_log ORDER BY seq"))
            return [dict(row._mapping) for row in result]

    def restore(self, rows: list[dict[str, Any]]) -> None:
        values = ", ".join("CAST(:details AS json)" if c == "details" else f":{c}" for c in COLUMNS)
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_log"))
            conn.execute(
                text(f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES ({values})"), rows
            )

    def set(self, seq: int, column: str, value: str | int | None) -> None:
        expression = "NULL" if value is None else f"CAST(:v AS {PG_TYPES[column]})"
        with self.engine.begin() as conn:
            conn.execute(
                text(f"UPDATE audit_log SET {column} = {expression} WHERE seq = :k"),
                {"v": value, "k": seq},
            )
