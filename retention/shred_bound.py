"""How long a shred stays reversible from an old copy, read from the log and the key store.

A shredded key can come back only from a copy of the key store made before the shred (a
``keys backup``, a snapshot, keystore.bin copied aside) opened with the wrapping key in use
then. Inside flowaudit the shred ledger refuses such a copy at once; outside it, only retiring
that wrapping key ends it: a file KEK rotation destroys the old KEK, a Transit rotation with
``--trim`` deletes the old key versions. The shared provider (KV v2 entries) is bounded the
same way: a destroyed entry's versions are removed from KV, but a storage snapshot of the
server taken before the shred unwraps until the trim. So the bound is the rotation interval
configured (``key_rotation_interval``), counted from the last retirement the audit log records.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .errors import ConfigError
from .ground.actions import Action
from .ground.durations import format_duration, parse_duration
from .ground.times import iso_utc
from .ledger import SHRED_ACTIONS
from .models import AuditEntry

__all__ = ["shred_bound", "rotation_interval"]


def rotation_interval(text: str | None) -> timedelta | None:
    """``key_rotation_interval`` of flowaudit.toml as a duration (None: not configured)."""
    if not text:
        return None
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"key_rotation_interval in flowaudit.toml: {exc}") from None
    if value is None or value <= timedelta(0):
        raise ConfigError(
            f"key_rotation_interval {text!r} must be a finite duration such as \"90d\""
        )
    return value


def _retirements(session: Session, provider: str) -> list[datetime]:
    """When the log says a wrapping key was retired (file rotation; Transit rotate + trim)."""
    out = []
    for at, details in session.execute(
        select(AuditEntry.at, AuditEntry.details)
        .where(AuditEntry.action == Action.KEYS_ROTATE.value)
        .order_by(AuditEntry.seq)
    ):
        d = details if isinstance(details, dict) else {}
        if d.get("provider") != provider:
            continue
        if provider == "file" or d.get("trim") is True:
            out.append(at)
    return out


def shred_bound(
    session: Session, provider: str, interval: timedelta | None, now: datetime
) -> dict[str, Any]:
    """The facts and the one-sentence statement the GDPR report prints."""
    retired = _retirements(session, provider)
    since = retired[-1] if retired else None
    first = session.scalar(select(func.min(AuditEntry.at)))

    def count(action: tuple[str, ...]) -> int:
        query = select(func.count()).select_from(AuditEntry).where(AuditEntry.action.in_(action))
        if since is not None:
            query = query.where(AuditEntry.at >= since)
        return int(session.scalar(query) or 0)

    pending = count(SHRED_ACTIONS)
    backups = count((Action.KEYS_BACKUP.value,))
    start = since or first
    due = start + interval if interval is not None and start is not None else None
    retire = "a KEK rotation" if provider == "file" else "a Transit rotation with --trim"
    # shared: a destroyed entry's versions leave KV, but a server snapshot taken before keeps them
    also = " (a keys backup, a storage snapshot of OpenBao/Vault)" if provider == "shared" else ""
    if interval is None:
        statement = (
            f"no bound: no key_rotation_interval is configured, so a copy of the key store{also} "
            f"made before a shred stays able to restore its key outside flowaudit until {retire} "
            "(inside flowaudit the shred ledger refuses it at once)"
        )
    else:
        late = due is not None and now > due
        statement = (
            f"every shred is irreversible everywhere at most {format_duration(interval)} after "
            f"it happened (key_rotation_interval; each {retire} retires the key that older "
            f"copies{also} need); "
            f"{pending} shred entries and {backups} key-store backups are still "
            "under the current wrapping key"
            + (f"; the next rotation was due {iso_utc(due)}: OVERDUE" if late and due else "")
            + (f"; next rotation due {iso_utc(due)}" if due and not late else "")
        )
    return {
        "provider": provider,
        "rotation_interval": format_duration(interval) if interval is not None else None,
        "last_retirement": iso_utc(since) if since else None,
        "retirements": len(retired),
        "next_rotation_due": iso_utc(due) if due else None,
        "overdue": bool(due is not None and now > due),
        "shreds_under_current_key": pending,
        "backups_under_current_key": backups,
        "statement": statement,
    }
