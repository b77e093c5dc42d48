"""Anonymisation of kept metadata: what a policy keeps "indefinitely" must stop being personal.

When ``retention.anonymise_metadata_after`` has passed for an hour of an event's metadata, the
hour's bucket is rewritten:

* records linked to a wristband are **aggregated** per (kind, hour, generalised
  quasi-identifiers): the pseudonym link is dropped, numeric fields become group means, free
  text is dropped, sensitive attributes are kept only as counts and only where the group is
  l-diverse;
* quasi-identifiers are **coarsened** along the policy's ``[reid.hierarchies]`` (arrival to the
  hour at least, every other attribute at least one step), and the least further generalisation
  is searched so that every group has at least ``reid.k_min`` distinct wristbands while at most
  ``reid.max_suppression`` of them fall in groups that are too small; those groups are
  **suppressed**. Choosing and aggregating is the privacy engine's job
  (:mod:`retention.anonymity.aggregate`); this module reads the rows, asks it, writes back and
  records the audit entry;
* records without a pseudonym (crowd-level scores) are re-stored unchanged;
* everything kept goes to a separate ``metadata+anon`` bucket, and the original bucket's (and
  its rows') retention ends *now*, in the same transaction, so the purge shreds its key next.

One ``metadata.anonymise`` audit entry per bucket records counts and the generalisation used —
never a pseudonym or a value. A bucket is processed once: after the transaction it is expired,
so a rerun (or a second worker) finds nothing to do. Once a wristband has no linkable record
left and every event it took part in is past its anonymisation time, its own quasi-identifiers
are cleared from ``subjects`` (:func:`clear_subject_quasi_identifiers`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import exists, or_, select, update

from ._locks import BucketLocker
from .anonymity.aggregate import SENSITIVE_PREFIX, VALUE_PREFIX, aggregate_k_anonymous
from .errors import FlowauditError, InputError, RetentionError
from .ground.actions import Action
from .ground.quasi import QUASI_IDENTIFIERS, TIME_QUASI_IDENTIFIERS
from .models import (
    BUCKET_ACTIVE,
    Consent,
    Event,
    MetadataRecord,
    RawSegment,
    RetentionBucket,
    Subject,
)
from .policy import Policy, load_policy
from .store import METADATA, EncryptedStore, MetadataData

__all__ = [
    "ANON_TAG",
    "AGGREGATE_KIND",
    "AnonymiseReport",
    "anonymise_due",
    "clear_subject_quasi_identifiers",
    "tolerant_loader",
]

ANON_TAG = "anon"
AGGREGATE_KIND = "aggregate"
_ANON_PATTERN = f"%:{METADATA}+{ANON_TAG}:%"
#: the subject-table columns holding a wristband's quasi-identifiers (arrival as a time)
_SUBJECT_COLUMNS = tuple(
    c for c in (*QUASI_IDENTIFIERS, *TIME_QUASI_IDENTIFIERS) if c in Subject.__table__.columns
)

ProgressFn = Callable[[str, int, int], None]
PolicyLoader = Callable[[str], Policy]


@dataclass
class AnonymiseReport:
    """What one anonymisation pass did (or, with ``dry_run``, would do)."""

    dry_run: bool = False
    buckets: list[str] = field(default_factory=list)
    records_in: int = 0
    linkable_records: int = 0
    subjects: int = 0
    aggregates_written: int = 0
    records_copied: int = 0
    records_suppressed: int = 0
    subjects_suppressed: int = 0
    records_unreadable: int = 0
    subjects_coarsened: int = 0
    min_group_subjects: int | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _numeric_fields(payload: dict[str, Any], skip: set[str], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in payload.items():
        name = prefix + str(key)
        if name in skip or isinstance(value, bool):
            continue
        if isinstance(value, int | float) and math.isfinite(value):
            out[name] = float(value)
        elif isinstance(value, dict) and not prefix:
            out.update(_numeric_fields(value, skip, name + "."))
    return out


def _qi_value(qi: str, subject: Subject | None, payload: dict[str, Any]) -> Any:
    """A record's value of one QI: the wristband's own attribute, else the payload's field."""
    if qi in TIME_QUASI_IDENTIFIERS:
        return subject.arrival_at if subject is not None else None
    if qi in _SUBJECT_COLUMNS:
        return getattr(subject, qi) if subject is not None else None
    value = payload.get(qi)
    return value if isinstance(value, str | int | float) and not isinstance(value, bool) else None


def _frame(
    records: list[MetadataData], subjects: dict[str, Subject], policy: Policy
) -> tuple[pd.DataFrame, set[str]]:
    qis = list(policy.reid.quasi_identifiers)
    sensitive = list(policy.reid.sensitive)
    skip = set(qis) | set(sensitive)
    rows: list[dict[str, Any]] = []
    dropped: set[str] = set()
    for record in records:
        assert record.pseudonym is not None
        subject = subjects.get(record.pseudonym)
        row: dict[str, Any] = {"pseudonym": record.pseudonym, "kind": record.kind}
        for qi in qis:
            row[qi] = _qi_value(qi, subject, record.payload)
        for name in sensitive:
            value = record.payload.get(name)
            row[SENSITIVE_PREFIX + name] = None if value is None else str(value)
        numbers = _numeric_fields(record.payload, skip)
        for name, value in numbers.items():
            row[VALUE_PREFIX + name] = value
        dropped.update(
            k
            for k, v in record.payload.items()
            if k not in skip and k not in numbers and not isinstance(v, dict)
        )
        rows.append(row)
    frame = pd.DataFrame(rows)
    for qi in qis:
        frame[qi] = frame[qi].astype(object) if qi in frame else None
    for name in sensitive:
        if frame[SENSITIVE_PREFIX + name].isna().all():
            frame = frame.drop(columns=[SENSITIVE_PREFIX + name])
    return frame, dropped


def tolerant_loader(loader: PolicyLoader, warnings: list[str]) -> Callable[[str], Policy | None]:
    """``loader`` that returns None (and notes a warning) for a policy that no longer loads."""
    return _Policies(loader, warnings).get


class _Policies:
    """Load each event's policy once; a policy that no longer loads is a warning, not a stop."""

    def __init__(self, loader: PolicyLoader, warnings: list[str]) -> None:
        self.loader = loader
        self.warnings = warnings
        self._cache: dict[str, Policy | None] = {}

    def get(self, name: str) -> Policy | None:
        if name not in self._cache:
            try:
                self._cache[name] = self.loader(name)
            except FlowauditError as exc:
                self._cache[name] = None
                self.warnings.append(f"policy {name!r} did not load ({exc}); not anonymised")
        return self._cache[name]


def _due_buckets(
    store: EncryptedStore, now: datetime, policies: _Policies
) -> list[tuple[RetentionBucket, Event, Policy]]:
    """Linkable-metadata buckets whose anonymisation time has come, oldest first."""
    query = (
        select(RetentionBucket, Event)
        .join(Event, Event.id == RetentionBucket.event_id)
        .where(
            RetentionBucket.category == METADATA,
            RetentionBucket.state == BUCKET_ACTIVE,
            RetentionBucket.ends_at <= now,
            (RetentionBucket.expires_at.is_(None)) | (RetentionBucket.expires_at > now),
            RetentionBucket.id.not_like(_ANON_PATTERN),
        )
        .order_by(RetentionBucket.starts_at, RetentionBucket.id)
    )
    out = []
    with store.session() as session:
        for bucket, event in session.execute(query).all():
            policy = policies.get(event.policy_name)
            if policy is None:
                continue
            after = policy.retention.anonymise_metadata_after
            if after is not None and bucket.starts_at + after <= now:
                out.append((bucket, event, policy))
    return out


def anonymise_due(
    store: EncryptedStore,
    *,
    now: datetime,
    dry_run: bool = False,
    locks: BucketLocker | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: ProgressFn | None = None,
    policy_loader: PolicyLoader = load_policy,
    coarsen_subjects: bool = True,
) -> AnonymiseReport:
    """Anonymise every metadata bucket whose ``anonymise_metadata_after`` has passed.

    ``coarsen_subjects`` then clears the quasi-identifiers of wristbands nothing links to any
    more; the purge passes False and does that itself once the originals are deleted.
    """
    if now.tzinfo is None:
        raise InputError(f"now must be a timezone-aware time (got {now.isoformat()})")
    now = now.astimezone(UTC)
    report = AnonymiseReport(dry_run=dry_run)
    policies = _Policies(policy_loader, report.warnings)
    due = _due_buckets(store, now, policies)
    if dry_run:
        with store.session() as session:
            for bucket, _event, _policy in due:
                report.buckets.append(bucket.id)
                ids = session.scalars(
                    select(MetadataRecord.subject_pseudonym).where(
                        MetadataRecord.bucket_id == bucket.id
                    )
                ).all()
                report.records_in += len(ids)
                report.linkable_records += sum(1 for p in ids if p is not None)
        return report
    if locks is None:
        with BucketLocker(store.engine) as own:
            _anonymise(store, now, due, own, should_stop, progress, report)
    else:
        _anonymise(store, now, due, locks, should_stop, progress, report)
    if coarsen_subjects:
        report.subjects_coarsened += clear_subject_quasi_identifiers(
            store, now=now, policy_loader=policies.get
        )
    return report


def _anonymise(
    store: EncryptedStore,
    now: datetime,
    due: list[tuple[RetentionBucket, Event, Policy]],
    locks: BucketLocker,
    should_stop: Callable[[], bool] | None,
    progress: ProgressFn | None,
    report: AnonymiseReport,
) -> None:
    for done, (bucket, event, policy) in enumerate(due, start=1):
        if should_stop is not None and should_stop():
            break
        if locks.try_lock(bucket.id):
            try:
                _anonymise_bucket(store, now, bucket.id, event.id, policy, report)
            finally:
                locks.unlock(bucket.id)
        if progress is not None:
            progress("anonymise", done, len(due))


def _still_due(store: EncryptedStore, bucket_id: str, now: datetime) -> bool:
    """Re-read after locking: another worker may have anonymised the bucket meanwhile."""
    with store.session() as session:
        bucket = session.get(RetentionBucket, bucket_id)
        return (
            bucket is not None
            and bucket.state == BUCKET_ACTIVE
            and (bucket.expires_at is None or bucket.expires_at > now)
        )


def _anonymise_bucket(
    store: EncryptedStore,
    now: datetime,
    bucket_id: str,
    event_id: str,
    policy: Policy,
    report: AnonymiseReport,
) -> None:
    if not _still_due(store, bucket_id, now):
        return
    with store.session() as session:
        rows = list(
            session.scalars(
                select(MetadataRecord)
                .where(MetadataRecord.bucket_id == bucket_id)
                .order_by(MetadataRecord.start_at, MetadataRecord.id)
            )
        )
        bucket = session.get(RetentionBucket, bucket_id)
        assert bucket is not None
        hour = bucket.starts_at
        pseudonyms = {r.subject_pseudonym for r in rows if r.subject_pseudonym}
        subjects = (
            {
                s.pseudonym: s
                for s in session.scalars(select(Subject).where(Subject.pseudonym.in_(pseudonyms)))
            }
            if pseudonyms
            else {}
        )
    linkable: list[MetadataData] = []
    unlinked: list[MetadataData] = []
    unreadable = 0
    for row in rows:
        try:
            # package-private: the bucket's rows are read as rows, not via an event/time query
            record = store._open_metadata(row, now)
        except RetentionError:  # past its own retention, or its wristband was erased
            unreadable += 1
            continue
        (linkable if record.pseudonym else unlinked).append(record)

    qis = list(policy.reid.quasi_identifiers)
    k_min = int(policy.reid.k_min)
    groups: list[dict[str, Any]] = []
    labels: dict[str, str] = {}
    suppressed_subjects = suppressed_records = 0
    dropped: set[str] = set()
    if linkable:
        frame, dropped = _frame(linkable, subjects, policy)
        groups, choice = aggregate_k_anonymous(
            frame,
            qis,
            dict(policy.reid.hierarchies),
            k_min=k_min,
            l_min=int(policy.reid.l_min),
            max_suppression=float(policy.reid.max_suppression),
        )
        labels = choice.labels
        suppressed_subjects, suppressed_records = (
            choice.suppressed_subjects,
            choice.suppressed_records,
        )
    retention = policy.retention.metadata
    keep_aggregates = retention is None or hour + retention > now
    written = 0
    with store.transaction(now, actor="anonymise") as tx:
        if keep_aggregates:
            for group in groups:
                payload = {
                    "source_kind": group["kind"],
                    "window_start": hour.isoformat(),
                    "window": "1h",
                    "qi": group["qi"],
                    "subjects": group["subjects"],
                    "records": group["records"],
                    "mean": group["mean"],
                    "sensitive": group["sensitive"],
                    "k_min": k_min,
                    "generalisation": labels,
                }
                tx.put_metadata(
                    event_id=event_id,
                    pseudonym=None,
                    kind=AGGREGATE_KIND,
                    start_at=hour,
                    payload=payload,
                    retention=retention,
                    anonymised=True,
                    bucket_tag=ANON_TAG,
                )
                written += 1
        for record in unlinked:
            tx.put_metadata(
                event_id=event_id,
                pseudonym=None,
                kind=record.kind,
                start_at=record.start_at,
                payload=record.payload,
                retention=None
                if record.expires_at is None
                else record.expires_at - record.start_at,
                anonymised=record.anonymised,
                bucket_tag=ANON_TAG,
            )
        # the linkable originals' retention ends now: reads refuse them, the purge shreds them
        tx.session.execute(
            update(RetentionBucket).where(RetentionBucket.id == bucket_id).values(expires_at=now)
        )
        tx.session.execute(
            update(MetadataRecord)
            .where(MetadataRecord.bucket_id == bucket_id)
            .values(expires_at=now)
            .execution_options(synchronize_session=False)
        )
        min_group = min((g["subjects"] for g in groups), default=None) if written else None
        tx.audit(
            Action.METADATA_ANONYMISE,
            "retention_bucket",
            bucket_id,
            {
                "event": event_id,
                "records_in": len(rows),
                "linkable_records": len(linkable),
                "subjects": len({r.pseudonym for r in linkable}),
                "aggregates": written,
                "records_copied": len(unlinked),
                "records_suppressed": suppressed_records if keep_aggregates else len(linkable),
                "subjects_suppressed": suppressed_subjects,
                "records_unreadable": unreadable,
                "k_min": k_min,
                "min_group_subjects": min_group,
                "quasi_identifiers": qis,
                "generalisation": labels,
                "fields_dropped": sorted(dropped),
            },
        )
    report.buckets.append(bucket_id)
    report.records_in += len(rows)
    report.linkable_records += len(linkable)
    report.subjects += len({r.pseudonym for r in linkable})
    report.aggregates_written += written
    report.records_copied += len(unlinked)
    report.records_suppressed += suppressed_records if keep_aggregates else len(linkable)
    report.subjects_suppressed += suppressed_subjects
    report.records_unreadable += unreadable
    if min_group is not None:
        report.min_group_subjects = (
            min_group
            if report.min_group_subjects is None
            else min(report.min_group_subjects, min_group)
        )


def clear_subject_quasi_identifiers(
    store: EncryptedStore,
    *,
    now: datetime,
    policy_loader: Callable[[str], Policy | None],
) -> int:
    """Clear the quasi-identifiers of wristbands nothing links to any more.

    Those are the subject-table columns of :data:`retention.ground.quasi.QUASI_IDENTIFIERS`
    (arrival as its time). A wristband qualifies when no raw or metadata record carries its
    pseudonym and every event it consented to is past its policy's anonymisation time (an
    event whose policy never anonymises keeps them). The pseudonym and consent records stay:
    they prove consent and keep an erased wristband from being captured again.
    """
    has_qi = or_(*(getattr(Subject, c).is_not(None) for c in _SUBJECT_COLUMNS))
    query = (
        select(Subject.id, Event.ends_at, Event.policy_name)
        .join(Consent, Consent.subject_id == Subject.id)
        .join(Event, Event.id == Consent.event_id)
        .where(
            has_qi,
            Subject.erased_at.is_(None),
            ~exists().where(RawSegment.subject_pseudonym == Subject.pseudonym),
            ~exists().where(MetadataRecord.subject_pseudonym == Subject.pseudonym),
        )
    )
    with store.session() as session:
        links = session.execute(query).all()
    ready: dict[int, bool] = {}
    for subject_id, ends_at, policy_name in links:
        policy = policy_loader(policy_name)
        after = None if policy is None else policy.retention.anonymise_metadata_after
        ok = after is not None and ends_at + after <= now
        ready[subject_id] = ready.get(subject_id, True) and ok
    ids = sorted(s for s, ok in ready.items() if ok)
    if not ids:
        return 0
    with store.transaction(now, actor="anonymise") as tx:
        for chunk in _chunks(ids, 500):
            tx.session.execute(
                update(Subject).where(Subject.id.in_(chunk)).values(dict.fromkeys(_SUBJECT_COLUMNS))
            )
        tx.audit(Action.SUBJECT_COARSEN, "subjects", f"{len(ids)} subjects", {"subjects": len(ids)})
    return len(ids)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
