"""The hash-chained audit log: every entry's hash covers the one before it.

``hash = SHA-256(prev_hash ‖ canonical JSON of the entry)``, with the genesis ``prev_hash`` all
zeros. An entry written through :meth:`AuditLog.record` lands in the caller's transaction, so
data and its entry commit together. Appends are serialised: PostgreSQL takes a transaction-level
advisory lock; SQLite transactions are single-writer (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from retention.models import AuditEntry

__all__ = ["AuditLog", "GENESIS_HASH", "entry_hash", "canonical_entry"]

GENESIS_HASH = "0" * 64
_PG_LOCK_ID = 0x466C6F77  # "Flow"


def canonical_entry(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    details: dict[str, Any],
) -> bytes:
    """The exact bytes hashed for one entry: sorted keys, no spaces, UTC ISO time."""
    body = {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(),
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "details": details,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def entry_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical).hexdigest()


_HEAD_KEY = "flowaudit.audit_head"


@event.listens_for(Session, "after_transaction_end")
def _forget_head(session: Session, transaction: Any) -> None:
    """The cached chain head is only valid inside the transaction that read it."""
    if transaction.parent is None:
        session.info.pop(_HEAD_KEY, None)


class AuditLog:
    """Implements :class:`retention.recorder.Recorder` over the ``audit_log`` table."""

    def _lock_and_read_head(self, session: Session) -> tuple[int, str]:
        cached = session.info.get(_HEAD_KEY)
        if cached is not None:
            return cached
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_ID})
        last = session.execute(
            select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
        ).first()
        return (0, GENESIS_HASH) if last is None else (int(last[0]), str(last[1]))

    def record(
        self,
        session: Session,
        *,
        at: datetime,
        action: str,
        object_type: str,
        object_id: str,
        details: dict[str, Any] | None = None,
        actor: str = "flowaudit",
    ) -> None:
        """Append one entry in ``session``'s transaction."""
        seq, prev = self._lock_and_read_head(session)
        seq += 1
        details = details or {}
        canonical = canonical_entry(seq, at, actor, action, object_type, object_id, details)
        digest = entry_hash(prev, canonical)
        session.add(
            AuditEntry(
                seq=seq,
                at=at,
                actor=actor,
                action=action,
                object_type=object_type,
                object_id=object_id,
                details=details,
                prev_hash=prev,
                hash=digest,
            )
        )
        session.info[_HEAD_KEY] = (seq, digest)
