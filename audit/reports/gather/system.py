"""Security measures as the running system has them (GDPR Art 32), and the audit chain's state.

Where a fact can be measured it is: SQLite pragmas are read from a live connection, nonce and
tag sizes from stored rows, file modes from the files. Algorithm names come from the code that
uses them (``retention._crypto``), not from documentation.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import Integer, cast, func, select, text
from sqlalchemy.orm import Session

from audit.checks import RuntimeLike
from audit.log.signing import load_signing_key, public_key_id
from audit.log.verify import verify_log
from audit.reports._fmt import iso
from retention import _crypto
from retention.errors import FlowauditError
from retention.keys import MASTER_KEY_ENV
from retention.models import (
    AuditCheckpoint,
    AuditEntry,
    Base,
    MetadataRecord,
    RawSegment,
    Subject,
)

__all__ = ["audit_chain", "chain_verification", "security_facts"]


def _mode(path: Path | None) -> str | None:
    if path is None or not path.exists():
        return None
    return f"{stat.S_IMODE(path.stat().st_mode):04o}"


def audit_chain(session: Session) -> dict[str, Any]:
    """Size and head of the hash chain, its checkpoints, and the actions it recorded."""
    count, first, last, first_at, last_at = session.execute(
        select(
            func.count(AuditEntry.seq),
            func.min(AuditEntry.seq),
            func.max(AuditEntry.seq),
            func.min(AuditEntry.at),
            func.max(AuditEntry.at),
        )
    ).one()
    head = session.scalar(select(AuditEntry.hash).where(AuditEntry.seq == last)) if last else None
    actions = {
        str(action): int(n)
        for action, n in session.execute(
            select(AuditEntry.action, func.count()).group_by(AuditEntry.action)
        )
    }
    checkpoint = session.scalars(
        select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc(), AuditCheckpoint.id.desc())
    ).first()
    checkpoints = int(session.scalar(select(func.count(AuditCheckpoint.id))) or 0)
    return {
        "entries": int(count or 0),
        "first_seq": first,
        "last_seq": last,
        "first_at": iso(first_at),
        "last_at": iso(last_at),
        "head_hash": head,
        "actions": dict(sorted(actions.items())),
        "checkpoints": checkpoints,
        "last_checkpoint_seq": checkpoint.seq if checkpoint else None,
        "last_checkpoint_at": iso(checkpoint.at) if checkpoint else None,
        "last_checkpoint_key_id": checkpoint.key_id if checkpoint else None,
        "entries_after_last_checkpoint": (last or 0) - (checkpoint.seq if checkpoint else 0),
    }


def chain_verification(runtime: RuntimeLike) -> dict[str, Any]:
    """Recompute the whole hash chain and check the signed checkpoints (``audit verify``)."""
    try:
        public_key = load_signing_key(runtime.settings.signing_key_file).public_key()
    except FlowauditError:
        public_key = None
    result = verify_log(runtime.engine, public_key)
    return {
        "ok": result.ok,
        "entries": result.entries,
        "head_seq": result.head_seq,
        "first_bad_seq": result.first_bad_seq,
        "problems": result.problems_total,
        "signatures_checked": result.signatures_checked,
        "checkpoints_verified": result.checkpoints_verified,
        "unsigned_tail": result.unsigned_tail,
    }


def _database(session: Session) -> dict[str, Any]:
    bind = session.get_bind()
    dialect = bind.dialect.name
    facts: dict[str, Any] = {"dialect": dialect}
    if dialect == "sqlite":
        for pragma in ("secure_delete", "journal_mode", "foreign_keys"):
            facts[pragma] = session.execute(text(f"PRAGMA {pragma}")).scalar()
        facts["secure_delete"] = bool(facts["secure_delete"])
        facts["foreign_keys"] = bool(facts["foreign_keys"])
        facts["file"] = bind.engine.url.database
    elif dialect == "postgresql":
        facts["ssl_in_transit"] = bool(
            session.execute(
                text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            ).scalar()
        )
        facts["server_version"] = session.execute(text("SHOW server_version")).scalar()
    return facts


def _sealing(session: Session) -> dict[str, Any]:
    raw = session.execute(
        select(
            func.count(RawSegment.id),
            func.min(func.length(RawSegment.nonce)),
            func.max(func.length(RawSegment.nonce)),
            func.min(func.length(RawSegment.ciphertext) - RawSegment.byte_length),
            func.max(func.length(RawSegment.ciphertext) - RawSegment.byte_length),
            func.min(func.length(RawSegment.commitment)),
            func.sum(cast(RawSegment.key_id != RawSegment.bucket_id, Integer)),
        )
    ).one()
    meta = session.execute(
        select(
            func.count(MetadataRecord.id),
            func.min(func.length(MetadataRecord.nonce)),
            func.max(func.length(MetadataRecord.nonce)),
            func.min(func.length(MetadataRecord.commitment)),
        )
    ).one()
    records = int(raw[0] or 0) + int(meta[0] or 0)
    nonces = [v for v in (raw[1], raw[2], meta[1], meta[2]) if v is not None]
    return {
        "records_checked": records,
        "cipher": "AES-256-GCM",
        "key_bits": _crypto.KEY_BYTES * 8,
        "nonce_bits_measured": sorted({int(v) * 8 for v in nonces}),
        "tag_bits_measured": sorted({int(v) * 8 for v in (raw[3], raw[4]) if v is not None}),
        "commitment_bits_measured": sorted(
            {int(v) * 8 for v in (raw[5], meta[3]) if v is not None}
        ),
        "records_with_foreign_key_id": int(raw[6] or 0),
        "record_key_derivation": "HKDF-SHA256(bucket key || subject key, category|bucket|subject)",
    }


def _pseudonyms(session: Session) -> dict[str, Any]:
    total = int(session.scalar(select(func.count(Subject.id))) or 0)
    hmac_shaped = int(
        session.scalar(select(func.count(Subject.id)).where(func.length(Subject.pseudonym) == 64))
        or 0
    )
    columns = sorted(c.name for t in Base.metadata.sorted_tables for c in t.columns)
    return {
        "subjects": total,
        "pseudonyms_hmac_sha256_shaped": hmac_shaped,
        "serial_column_in_schema": any("serial" in c for c in columns),
        "method": "HMAC-SHA256(pepper derived by HKDF from the master key, wristband serial)",
    }


def _key_columns() -> list[str]:
    return sorted(
        f"{t.name}.{c.name}"
        for t in Base.metadata.sorted_tables
        for c in t.columns
        if "key" in c.name
    )


def security_facts(runtime: RuntimeLike, session: Session) -> dict[str, Any]:
    """Art 32 measures read from the running system."""
    settings = runtime.settings
    keys = runtime.keys
    keystore = Path(getattr(keys, "path", "")) if getattr(keys, "path", None) else None
    database = _database(session)
    db_file = Path(database["file"]).resolve() if database.get("file") else None
    signing: dict[str, Any] = {"file_mode": _mode(settings.signing_key_file)}
    try:
        signing["public_key_id"] = public_key_id(
            load_signing_key(settings.signing_key_file).public_key()
        )
    except FlowauditError:
        signing["public_key_id"] = None
    live = keys.bucket_ids() if hasattr(keys, "bucket_ids") else []
    return {
        "database": database,
        "sealing": _sealing(session),
        "key_store": {
            "kind": type(keys).__name__,
            "file_mode": _mode(keystore),
            "outside_database": keystore is not None
            and (db_file is None or keystore.resolve() != db_file),
            "live_bucket_keys": len(live),
            "key_columns_in_schema": _key_columns(),
        },
        "master_key": {
            "source": "environment" if os.environ.get(MASTER_KEY_ENV) else "file",
            "file_mode": _mode(settings.master_key_file),
        },
        "pseudonyms": _pseudonyms(session),
        "signing_key": {**signing, "algorithm": "Ed25519", "separate_from_master_key": True},
    }
