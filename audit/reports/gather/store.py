"""Facts about the event, its population and what each data category holds now.

Every function takes an open session and returns JSON-friendly values (ISO times, ints,
floats): these are the numbers the reports print, so each one is a plain SQL aggregate that a
test can recompute.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Subquery, and_, cast, distinct, func, or_, select, union
from sqlalchemy.orm import Session

from audit.reports._fmt import dur, iso
from retention.models import (
    BUCKET_ACTIVE,
    Consent,
    Event,
    MetadataRecord,
    RawSegment,
    RetentionBucket,
    Subject,
)
from retention.policy import Policy
from retention.store import METADATA, RAW_AUDIO

__all__ = [
    "event_facts",
    "population",
    "category_stats",
    "notice_timing",
    "readable_at",
    "CATEGORIES",
    "FRAME_MS",
]

#: data categories the store knows, in report order
CATEGORIES = (RAW_AUDIO, METADATA)
#: capture frame length (30 ms, DESIGN.md): converts stored speech-frame counts to seconds
FRAME_MS = 30


def _int(value: Any) -> int:
    return int(value or 0)


def event_facts(session: Session, event_id: str, policy: Policy) -> dict[str, Any]:
    """The event row, and whether the policy reported on is the one it ran under."""
    event = session.get(Event, event_id)
    assert event is not None
    return {
        "id": event.id,
        "name": event.name,
        "venue": event.venue or "",
        "starts_at": iso(event.starts_at),
        "ends_at": iso(event.ends_at),
        "duration_s": (event.ends_at - event.starts_at).total_seconds(),
        "policy_name": event.policy_name,
        "policy_sha256": event.policy_sha256,
        "report_policy_name": policy.name,
        "report_policy_sha256": policy.sha256,
        "policy_matches": event.policy_sha256 == policy.sha256,
    }


def _pseudonyms_with_data(event_id: str) -> Subquery:
    raw = select(RawSegment.subject_pseudonym.label("p")).where(
        RawSegment.event_id == event_id, RawSegment.subject_pseudonym.is_not(None)
    )
    meta = select(MetadataRecord.subject_pseudonym.label("p")).where(
        MetadataRecord.event_id == event_id, MetadataRecord.subject_pseudonym.is_not(None)
    )
    return union(raw, meta).subquery()


def population(session: Session, event_id: str) -> dict[str, Any]:
    """Wristbands of the event by consent state, staff, and how many have data stored."""
    by_status = {
        str(status): _int(count)
        for status, count in session.execute(
            select(Consent.status, func.count())
            .where(Consent.event_id == event_id)
            .group_by(Consent.status)
        )
    }
    joined = (
        select(func.count()).select_from(Consent).join(Subject, Subject.id == Consent.subject_id)
    )
    in_event = Consent.event_id == event_id
    staff = _int(session.scalar(joined.where(in_event, Subject.is_staff.is_(True))))
    erased = _int(session.scalar(joined.where(in_event, Subject.erased_at.is_not(None))))
    explicit = _int(
        session.scalar(select(func.count()).where(in_event, Consent.biometrics_explicit.is_(True)))
    )
    with_data = _pseudonyms_with_data(event_id)
    subjects_with_data = _int(session.scalar(select(func.count()).select_from(with_data)))
    staff_with_data = _int(
        session.scalar(
            select(func.count())
            .select_from(with_data)
            .join(Subject, Subject.pseudonym == with_data.c.p)
            .where(Subject.is_staff.is_(True))
        )
    )
    notices = {
        str(version): _int(count)
        for version, count in session.execute(
            select(Consent.notice_version, func.count())
            .where(in_event, Consent.notice_version != "")
            .group_by(Consent.notice_version)
        )
    }
    return {
        "wristbands": sum(by_status.values()),
        "consent_by_status": {
            k: by_status.get(k, 0) for k in ("opted_in", "opted_out", "withdrawn")
        },
        "staff_wristbands": staff,
        "erased_subjects": erased,
        "biometrics_explicit_consents": explicit,
        "subjects_with_data": subjects_with_data,
        "staff_with_data": staff_with_data,
        "notice_versions": notices,
    }


def _common(session: Session, model: Any, event_id: str, now: datetime) -> dict[str, Any]:
    in_event = model.event_id == event_id
    row = session.execute(
        select(
            func.count(model.id),
            func.sum(func.length(model.ciphertext)),
            func.min(model.start_at),
            func.max(model.start_at),
            func.count(distinct(model.subject_pseudonym)),
        ).where(in_event)
    ).one()
    readable = session.scalar(
        select(func.count(model.id))
        .join(RetentionBucket, RetentionBucket.id == model.bucket_id)
        .where(
            in_event,
            RetentionBucket.state == BUCKET_ACTIVE,
            or_(model.expires_at.is_(None), model.expires_at > now),
        )
    )
    expired_present = session.scalar(
        select(func.count(model.id)).where(
            in_event, model.expires_at.is_not(None), model.expires_at <= now
        )
    )
    next_expiry = session.scalar(
        select(func.min(model.expires_at)).where(in_event, model.expires_at > now)
    )
    indefinite = session.scalar(
        select(func.count(model.id)).where(in_event, model.expires_at.is_(None))
    )
    return {
        "records": _int(row[0]),
        "ciphertext_bytes": _int(row[1]),
        "oldest_record_at": iso(row[2]),
        "newest_record_at": iso(row[3]),
        "subjects": _int(row[4]),
        "readable_now": _int(readable),
        "expired_awaiting_purge": _int(expired_present),
        "kept_indefinitely": _int(indefinite),
        "next_expiry_at": iso(next_expiry),
    }


def _buckets(session: Session, event_id: str, category: str) -> dict[str, int]:
    counts = {
        str(state): _int(count)
        for state, count in session.execute(
            select(RetentionBucket.state, func.count())
            .where(RetentionBucket.event_id == event_id, RetentionBucket.category == category)
            .group_by(RetentionBucket.state)
        )
    }
    return {k: counts.get(k, 0) for k in ("ACTIVE", "SHREDDED", "DELETED")}


def category_stats(
    session: Session, event_id: str, policy: Policy, now: datetime
) -> list[dict[str, Any]]:
    """Per data category: the policy's retention and what the store holds at ``now``."""
    out: list[dict[str, Any]] = []
    for category, model in ((RAW_AUDIO, RawSegment), (METADATA, MetadataRecord)):
        stats = _common(session, model, event_id, now)
        stats = {
            "category": category,
            "retention": dur(policy.retention_for(category)),
            **stats,
            "buckets": _buckets(session, event_id, category),
        }
        if model is RawSegment:
            row = session.execute(
                select(
                    func.sum(RawSegment.byte_length),
                    func.sum(RawSegment.duration_ms),
                    func.sum(RawSegment.speech_frames),
                ).where(RawSegment.event_id == event_id)
            ).one()
            stats["pcm_bytes"] = _int(row[0])
            stats["audio_seconds"] = _int(row[1]) / 1000
            stats["speech_frames"] = _int(row[2])
            stats["speech_seconds"] = _int(row[2]) * FRAME_MS / 1000
        else:
            kinds = session.execute(
                select(
                    MetadataRecord.kind,
                    func.count(),
                    func.sum(cast(MetadataRecord.anonymised, Integer)),
                    func.count(MetadataRecord.subject_pseudonym),
                )
                .where(MetadataRecord.event_id == event_id)
                .group_by(MetadataRecord.kind)
                .order_by(MetadataRecord.kind)
            )
            stats["by_kind"] = [
                {
                    "kind": str(kind),
                    "records": _int(count),
                    "anonymised": _int(anon),
                    "linked_to_wristband": _int(linked),
                }
                for kind, count, anon, linked in kinds
            ]
        out.append(stats)
    return out


def notice_timing(session: Session, event_id: str) -> dict[str, Any]:
    """Was each wristband informed before its first capture (AI Act Art 50(5), GDPR Art 13)?

    Consent records carry the notice version shown and the time consent was given; a stored
    record older than that consent means capture came first.
    """
    raw = select(
        RawSegment.subject_pseudonym.label("p"), func.min(RawSegment.start_at).label("first")
    ).where(RawSegment.event_id == event_id, RawSegment.subject_pseudonym.is_not(None))
    meta = select(
        MetadataRecord.subject_pseudonym.label("p"),
        func.min(MetadataRecord.start_at).label("first"),
    ).where(MetadataRecord.event_id == event_id, MetadataRecord.subject_pseudonym.is_not(None))
    both = union(
        raw.group_by(RawSegment.subject_pseudonym), meta.group_by(MetadataRecord.subject_pseudonym)
    ).subquery()
    firsts = select(both.c.p, func.min(both.c.first).label("first")).group_by(both.c.p).subquery()
    rows = session.execute(
        select(firsts.c.first, Consent.given_at, Consent.status)
        .select_from(firsts)
        .join(Subject, Subject.pseudonym == firsts.c.p)
        .outerjoin(Consent, and_(Consent.subject_id == Subject.id, Consent.event_id == event_id))
    ).all()
    with_notice = _int(
        session.scalar(
            select(func.count()).where(Consent.event_id == event_id, Consent.notice_version != "")
        )
    )
    return {
        "consents_with_notice_version": with_notice,
        "subjects_with_data": len(rows),
        "data_without_consent_record": sum(1 for _, given, status in rows if status is None),
        "data_before_consent": sum(
            1 for first, given, _ in rows if given is not None and first < given
        ),
    }


def readable_at(session: Session, event_id: str, at: datetime) -> dict[str, int]:
    """Records per category that the store would still let anyone read at ``at``.

    Reads past ``expires_at`` are refused and shredded buckets cannot be decrypted, so this is
    what survives at ``at`` even if no purge ever ran.
    """
    out: dict[str, int] = {}
    for category, model in ((RAW_AUDIO, RawSegment), (METADATA, MetadataRecord)):
        out[category] = _int(
            session.scalar(
                select(func.count(model.id))
                .join(RetentionBucket, RetentionBucket.id == model.bucket_id)
                .where(
                    model.event_id == event_id,
                    RetentionBucket.state == BUCKET_ACTIVE,
                    or_(model.expires_at.is_(None), model.expires_at > at),
                )
            )
        )
    return out
