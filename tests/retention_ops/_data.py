"""Shared builders for the retention-operations tests: seeded data through the real store API."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from flowaudit.runtime import Runtime
from retention.models import (
    AuditEntry,
    MetadataRecord,
    RawSegment,
    RetentionBucket,
)
from retention.store import EncryptedStore

ZONES = ["A1", "A2", "B1", "B2", "C1"]
AGES = ["18-24", "25-34", "35-44", "45-54", "55+"]
TICKETS = ["ga", "vip"]
DEVICES = ["wb-1", "wb-2"]


@dataclass
class Seeded:
    """What a builder stored, so tests can compare against it."""

    event_id: str
    serials: list[str] = field(default_factory=list)
    pseudonyms: dict[str, str] = field(default_factory=dict)  # serial -> pseudonym
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)  # pseudonym -> QIs
    raw: dict[str, tuple[bytes, datetime | None]] = field(default_factory=dict)  # id -> pcm, exp
    raw_owner: dict[str, str | None] = field(default_factory=dict)  # id -> pseudonym
    metadata: dict[str, tuple[dict[str, Any], datetime | None, str | None, str]] = field(
        default_factory=dict
    )  # id -> payload, expires, pseudonym, kind


def register_event(
    store: EncryptedStore, now: datetime, event_id: str, policy: str = "spotify-2026"
) -> None:
    with store.transaction(now, actor="test") as tx:
        tx.register_event(
            event_id,
            name=f"event {event_id}",
            starts_at=now,
            ends_at=now + timedelta(hours=6),
            policy_name=policy,
            policy_sha256="0" * 64,
        )


def pcm(rng: random.Random, samples: int = 480) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(samples * 2))


def seed_crowd(
    store: EncryptedStore,
    now: datetime,
    *,
    event_id: str = "fete",
    policy: str = "spotify-2026",
    subjects: int = 12,
    hours: int = 3,
    raw_per_hour: int = 2,
    meta_per_hour: int = 2,
    raw_retention: timedelta | None = timedelta(hours=72),
    meta_retention: timedelta | None = timedelta(days=30),
    crowd_scores: bool = True,
    seed: int = 7,
    serial_prefix: str = "WB",
    consent: bool = True,
) -> Seeded:
    """A small crowd: subjects with QIs, raw PCM and window scores per hour, crowd scores."""
    rng = random.Random(seed)
    out = Seeded(event_id=event_id)
    register_event(store, now, event_id, policy)
    with store.transaction(now, actor="test") as tx:
        for i in range(subjects):
            serial = f"{serial_prefix}-{seed:03d}-{i:04d}"
            attrs = {
                "zone": rng.choice(ZONES),
                "age_band": rng.choice(AGES),
                "ticket_type": rng.choice(TICKETS),
                "device_model": rng.choice(DEVICES),
                "arrival_at": now + timedelta(minutes=rng.randrange(0, 90)),
            }
            pseud = tx.register_subject(serial, **attrs)
            if consent:
                tx.record_consent(event_id, pseud, status="opted_in", given_at=now)
            out.serials.append(serial)
            out.pseudonyms[serial] = pseud
            out.attributes[pseud] = attrs
    for hour in range(hours):
        with store.transaction(now, actor="test") as tx:
            for serial in out.serials:
                pseud = out.pseudonyms[serial]
                for j in range(raw_per_hour):
                    start = now + timedelta(hours=hour, minutes=rng.randrange(0, 60))
                    data = pcm(rng)
                    rid = tx.put_raw(
                        event_id=event_id,
                        pseudonym=pseud,
                        start_at=start,
                        pcm=data,
                        sample_rate=16000,
                        retention=raw_retention,
                        speech_frames=j,
                    )
                    out.raw[rid] = (data, None if raw_retention is None else start + raw_retention)
                    out.raw_owner[rid] = pseud
                for _ in range(meta_per_hour):
                    start = now + timedelta(hours=hour, minutes=rng.randrange(0, 60))
                    payload = {
                        "score": round(rng.uniform(0, 100), 2),
                        "zone": out.attributes[pseud]["zone"],
                        "features": {"level": round(rng.random(), 4), "flux": rng.random()},
                        "frames": rng.randrange(10, 40),
                        "note": f"private remark {rng.randrange(10**9)}",
                    }
                    mid = tx.put_metadata(
                        event_id=event_id,
                        pseudonym=pseud,
                        kind="window_score",
                        start_at=start,
                        payload=payload,
                        retention=meta_retention,
                    )
                    expires = None if meta_retention is None else start + meta_retention
                    out.metadata[mid] = (payload, expires, pseud, "window_score")
            if crowd_scores:
                start = now + timedelta(hours=hour, minutes=30)
                payload = {"crowd": round(rng.uniform(30, 80), 2), "active": len(out.serials)}
                mid = tx.put_metadata(
                    event_id=event_id,
                    pseudonym=None,
                    kind="crowd_score",
                    start_at=start,
                    payload=payload,
                    retention=meta_retention,
                )
                expires = None if meta_retention is None else start + meta_retention
                out.metadata[mid] = (payload, expires, None, "crowd_score")
    return out


def bucket_states(store: EncryptedStore) -> dict[str, str]:
    with store.session() as session:
        return {b.id: b.state for b in session.scalars(select(RetentionBucket))}


def buckets(store: EncryptedStore) -> dict[str, RetentionBucket]:
    with store.session() as session:
        return {b.id: b for b in session.scalars(select(RetentionBucket))}


def row_counts(store: EncryptedStore) -> dict[str, int]:
    """bucket id -> number of raw + metadata rows in it."""
    counts: dict[str, int] = {}
    with store.session() as session:
        for model in (RawSegment, MetadataRecord):
            for bucket_id, n in session.execute(
                select(model.bucket_id, func.count()).group_by(model.bucket_id)
            ):
                counts[bucket_id] = counts.get(bucket_id, 0) + int(n)
    return counts


def audit_entries(store: EncryptedStore, action: str) -> list[AuditEntry]:
    with store.session() as session:
        return list(
            session.scalars(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
            )
        )


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def snapshot(runtime: Runtime, now: datetime) -> dict[str, Any]:
    """The observable end state of a home: bucket states, rows, live keys, readable data."""
    store = runtime.store
    raw = sorted((r.id, digest(r.pcm)) for r in store.iter_raw(now=now))
    meta = sorted(
        (
            (m.id if m.pseudonym else ""),  # re-stored records get fresh ids
            m.kind,
            m.pseudonym or "",
            json.dumps(m.payload, sort_keys=True),
        )
        for m in store.iter_metadata(now=now)
    )
    return {
        "buckets": bucket_states(store),
        "rows": row_counts(store),
        "live_bucket_keys": runtime.keys.bucket_ids(),
        "raw": raw,
        "metadata": meta,
    }
