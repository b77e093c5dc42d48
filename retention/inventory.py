"""What the store holds right now, in counts: the basis of `flowaudit status` and reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from .db import map_db_errors
from .models import AuditEntry, Event, MetadataRecord, RawSegment, RetentionBucket, Subject

__all__ = ["Inventory", "take_inventory"]


@dataclass(frozen=True)
class Inventory:
    """Row counts per table and bucket counts per state."""

    events: int
    subjects: int
    raw_segments: int
    raw_bytes: int
    metadata_records: int
    audit_entries: int
    buckets_by_state: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def take_inventory(engine: Engine) -> Inventory:
    """Count what is stored; reads no ciphertext."""

    def count(session: Any, column: Any) -> int:
        return int(session.scalar(select(func.count(column))) or 0)

    from sqlalchemy.orm import Session

    with map_db_errors(), Session(engine) as session:
        states = dict(
            session.execute(
                select(RetentionBucket.state, func.count()).group_by(RetentionBucket.state)
            ).all()
        )
        return Inventory(
            events=count(session, Event.id),
            subjects=count(session, Subject.id),
            raw_segments=count(session, RawSegment.id),
            raw_bytes=int(session.scalar(select(func.sum(RawSegment.byte_length))) or 0),
            metadata_records=count(session, MetadataRecord.id),
            audit_entries=count(session, AuditEntry.seq),
            buckets_by_state={str(k): int(v) for k, v in states.items()},
        )
