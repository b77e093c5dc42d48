"""Data-subject requests: access and portability (GDPR Art 15/20), erasure (Art 17), deadlines.

A wristband serial enters only through :meth:`EncryptedStore.pseudonym`; it is never stored,
logged or written into a receipt. Every request is a ``subject_requests`` row tracked against
Art 12(3): answer within one month of receipt, extendable once by two further months.

Erasure is crypto-shredding first: the subject key is destroyed (every record of the wristband,
in every copy of the database, is unreadable at once), then its rows are deleted in batches,
its consents deleted, its quasi-identifiers cleared and ``erased_at`` set. It resumes after a
crash: the request stays ``in_progress`` and a rerun finishes it, with the rows the killed run
deleted still counted (each delete batch adds its counts to the request in its own
transaction). A rerun after the erasure committed — the kill landed after the work, before the
answer reached anyone — confirms it: the same request id and receipt, and a
``dsr.erase_confirm`` entry.

The erasure receipt holds counts, times and the request id — no serial, no plaintext and no
pseudonym. The pseudonym is a stable identifier of the wristband for anyone holding the master
key; a receipt is meant to be shown (to the person, to an auditor, in a report), so it must not
re-identify the person it proves was forgotten. Once erased, the pseudonym is also replaced by
``"erased"`` on every request row of that wristband — on the erasure request itself by
``"erased:"`` and a keyed tag of the pseudonym (HMAC under the store's pepper, domain-separated),
so a repeated erasure finds its receipt while the database alone links no request to the
subject. The pseudonym survives only where it is needed or cannot be removed: the ``subjects``
row (marked erased, so the wristband is not captured or answered for again) and audit entries
written before the erasure (a hash chain cannot be edited).
"""

from __future__ import annotations

import calendar
import hashlib
import json
import os
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update

from ._deletion import Tally, delete_rows_batch, truncate_sqlite_wal
from ._keyfile import SUBJECTS
from .errors import FlowauditError, InputError, NotFoundError
from .ground.actions import Action
from .ground.times import iso_utc, to_utc
from .ledger import reshred
from .models import Consent, Event, MetadataRecord, RawSegment, Subject, SubjectRequest
from .policy import Policy, load_policy
from .store import EncryptedStore

__all__ = [
    "REQUEST_KINDS",
    "ERASURE_REASONS",
    "EXTENSION_REASONS",
    "ERASED_MARK",
    "EXPORT_FORMAT",
    "RequestStatus",
    "ExportResult",
    "ErasureResult",
    "ART12_MONTHS",
    "ART12_MAX_MONTHS",
    "add_months",
    "deadline_of",
    "request_status",
    "receive_request",
    "extend_request",
    "list_requests",
    "export_subject",
    "erase_subject",
    "erase_pseudonym",
    "erase_on_withdrawal",
]

REQUEST_KINDS = ("access", "portability", "erasure")
ERASURE_REASONS = ("request", "withdrawal", "objection", "no-longer-necessary")
EXTENSION_REASONS = ("complexity", "number-of-requests")
ERASED_MARK = "erased"
EXPORT_FORMAT = "flowaudit-dsr-export/1"
ACTOR = "dsr"
_OPEN = ("received", "in_progress")
_NOT_HELD = "no data is held for that wristband serial (never seen, or already erased)"
# a serial never holds NUL (argv cannot), so this input to the pseudonym HMAC is no wristband's
_TAG_DOMAIN = "\x00flowaudit/v1/erasure-request\x00"
_DELETED_KEYS: dict[type[RawSegment] | type[MetadataRecord], str] = {
    RawSegment: "raw_segments_deleted",
    MetadataRecord: "metadata_records_deleted",
}

PolicyLoader = Callable[[str], Policy]


# -- deadlines ------------------------------------------------------------------------------------

#: GDPR Art 12(3): answer within one month of receipt ...
ART12_MONTHS = 1
#: ... extendable by two further months: never later than three months after receipt.
ART12_MAX_MONTHS = 3


def add_months(at: datetime, months: int) -> datetime:
    """``at`` plus calendar months, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    month = at.month - 1 + months
    year, month = at.year + month // 12, month % 12 + 1
    return at.replace(year=year, month=month, day=min(at.day, calendar.monthrange(year, month)[1]))


def deadline_of(request: SubjectRequest) -> datetime:
    """Art 12(3): one month, or the extension — never beyond three months from receipt."""
    if request.extended_to is None:
        return request.due_at
    return min(request.extended_to, add_months(request.received_at, ART12_MAX_MONTHS))


@dataclass(frozen=True)
class RequestStatus:
    """One request as ``dsr list`` shows it (no pseudonym)."""

    id: int
    kind: str
    status: str
    received_at: datetime
    due_at: datetime
    extended_to: datetime | None
    deadline: datetime
    completed_at: datetime | None
    overdue: bool
    late: bool
    receipt: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        iso = _iso
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "received_at": iso(self.received_at),
            "due_at": iso(self.due_at),
            "extended_to": iso(self.extended_to),
            "deadline": iso(self.deadline),
            "completed_at": iso(self.completed_at),
            "overdue": self.overdue,
            "late": self.late,
            "receipt": self.receipt,
        }


def _iso(at: datetime | None) -> str | None:
    return None if at is None else iso_utc(at)


def _aware(at: datetime, name: str) -> datetime:
    if at.tzinfo is None:
        raise InputError(f"{name} must be a timezone-aware time (got {at.isoformat()})")
    return to_utc(at)


def request_status(request: SubjectRequest, now: datetime) -> RequestStatus:
    """The request judged at ``now``: overdue if open past its deadline, late if answered after.

    The one lateness rule: ``flowaudit dsr list``, the overdue-request check and the reports
    all use it.
    """
    deadline = deadline_of(request)
    done = request.completed_at is not None
    return RequestStatus(
        id=request.id,
        kind=request.kind,
        status=request.status,
        received_at=request.received_at,
        due_at=request.due_at,
        extended_to=request.extended_to,
        deadline=deadline,
        completed_at=request.completed_at,
        overdue=not done and now > deadline,
        late=done and request.completed_at is not None and request.completed_at > deadline,
        receipt=dict(request.receipt or {}),
    )


def list_requests(
    store: EncryptedStore, *, now: datetime, open_only: bool = False
) -> list[RequestStatus]:
    """Every request with its deadline and whether it is overdue (open) or was late (done)."""
    now = _aware(now, "now")
    query = select(SubjectRequest).order_by(SubjectRequest.received_at, SubjectRequest.id)
    if open_only:
        query = query.where(SubjectRequest.status.in_(_OPEN))
    with store.session() as session:
        return [request_status(r, now) for r in session.scalars(query)]


# -- request bookkeeping --------------------------------------------------------------------------


def _live_subject(session: Any, pseudonym: str) -> Subject:
    subject = session.scalar(select(Subject).where(Subject.pseudonym == pseudonym))
    if subject is None or subject.erased_at is not None:
        raise NotFoundError(_NOT_HELD)
    return subject


def _check_kind(kind: str) -> str:
    if kind not in REQUEST_KINDS:
        raise InputError(f"request kind {kind!r}; use one of {', '.join(REQUEST_KINDS)}")
    return kind


def receive_request(
    store: EncryptedStore,
    serial: str,
    kind: str,
    *,
    now: datetime,
    received_at: datetime | None = None,
) -> int:
    """Log a request when it arrives (its one-month clock starts); return its id."""
    now = _aware(now, "now")
    received = _aware(received_at, "received_at") if received_at else now
    if received > now:
        raise InputError(f"received time {received.isoformat()} is in the future")
    pseudonym = store.pseudonym(serial)
    _check_kind(kind)
    with store.transaction(now, actor=ACTOR) as tx:
        _live_subject(tx.session, pseudonym)
        request = SubjectRequest(
            subject_pseudonym=pseudonym,
            kind=kind,
            received_at=received,
            due_at=add_months(received, ART12_MONTHS),
            status="received",
            receipt={},
        )
        tx.session.add(request)
        tx.session.flush()
        tx.audit(
            Action.DSR_RECEIVE,
            "subject_request",
            str(request.id),
            {"kind": kind, "received_at": iso_utc(received)},
        )
        return int(request.id)


def _open_request(
    session: Any, pseudonym: str, kinds: tuple[str, ...], received: datetime, kind: str
) -> SubjectRequest:
    """The oldest open request of these kinds for the wristband, or a new one."""
    request = session.scalar(
        select(SubjectRequest)
        .where(
            SubjectRequest.subject_pseudonym == pseudonym,
            SubjectRequest.kind.in_(kinds),
            SubjectRequest.status.in_(_OPEN),
        )
        .order_by(SubjectRequest.received_at, SubjectRequest.id)
        .limit(1)
    )
    if request is None:
        request = SubjectRequest(
            subject_pseudonym=pseudonym,
            kind=kind,
            received_at=received,
            due_at=add_months(received, ART12_MONTHS),
            status="received",
            receipt={},
        )
        session.add(request)
        session.flush()
    return request


def extend_request(
    store: EncryptedStore, request_id: int, *, now: datetime, reason: str
) -> RequestStatus:
    """Art 12(3) extension by two further months, once, while the request is open."""
    now = _aware(now, "now")
    if reason not in EXTENSION_REASONS:
        raise InputError(f"extension reason {reason!r}; use one of {', '.join(EXTENSION_REASONS)}")
    with store.transaction(now, actor=ACTOR) as tx:
        request = tx.session.get(SubjectRequest, request_id)
        if request is None:
            raise NotFoundError(f"no data-subject request #{request_id}; see `flowaudit dsr list`")
        if request.status not in _OPEN:
            raise InputError(f"request #{request_id} is {request.status}; only open ones extend")
        if request.extended_to is not None:
            raise InputError(f"request #{request_id} was already extended; Art 12(3) allows once")
        if now > request.due_at:
            raise InputError(
                f"request #{request_id} was due {request.due_at.isoformat()}; an extension must "
                "be notified within the first month"
            )
        request.extended_to = add_months(request.due_at, ART12_MAX_MONTHS - ART12_MONTHS)
        request.receipt = {
            **(request.receipt or {}),
            "extension": {"reason": reason, "notified_at": iso_utc(now)},
        }
        tx.audit(
            Action.DSR_EXTEND,
            "subject_request",
            str(request_id),
            {"reason": reason, "extended_to": iso_utc(request.extended_to)},
        )
        return request_status(request, now)


# -- access / portability -------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    """Where an export went and what it holds (counts only)."""

    request_id: int
    out_dir: Path
    raw_segments: int
    metadata_records: int
    consents: int
    unreadable: int
    on_time: bool


def _prepare_out(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError(
            f"export directory '{out_dir}' exists and is not empty; give a new or empty directory"
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (out_dir / "raw").mkdir(exist_ok=True, mode=0o700)
    except OSError as exc:
        raise InputError(f"cannot create export directory '{out_dir}' ({exc.strerror})") from exc
    return out_dir


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _wav_bytes(pcm: bytes, sample_rate: int) -> bytes:
    import io

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(pcm)
    return buffer.getvalue()


def _policy_section(event: Event, loader: PolicyLoader) -> dict[str, Any]:
    """Purposes, recipients and retention, from the policy the event ran under (Art 15(1))."""
    try:
        policy = loader(event.policy_name)
    except FlowauditError:
        return {"name": event.policy_name, "sha256": event.policy_sha256, "available": False}
    info = policy.policy
    return {
        "name": policy.name,
        "sha256": event.policy_sha256,
        "loaded_sha256": policy.sha256,
        "controller": info.controller,
        "controller_contact": info.controller_contact,
        "dpo_contact": info.dpo_contact,
        "purposes": list(info.purposes),
        "lawful_basis": info.lawful_basis,
        "recipients": list(info.recipients),
        "third_country_transfers": info.third_country_transfers,
        "retention": policy.as_dict()["retention"],  # every duration as the policy writes it
    }


def export_subject(
    store: EncryptedStore,
    serial: str,
    out_dir: Path,
    *,
    now: datetime,
    received_at: datetime | None = None,
    policy_loader: PolicyLoader = load_policy,
) -> ExportResult:
    """Write everything held about one wristband, decrypted, to ``out_dir`` (Art 15 and 20).

    ``manifest.json`` (subject, consents, events with purposes/recipients/retention, one entry
    per audio file), ``metadata.json`` and ``raw/<id>.wav``. The files hold personal data in the
    clear — that is the point of the request — and are created with mode 0600.
    """
    now = _aware(now, "now")
    received = _aware(received_at, "received_at") if received_at else now
    pseudonym = store.pseudonym(serial)
    with store.session() as session:
        subject = _live_subject(session, pseudonym)
        consents = (
            session.execute(
                select(Consent).where(Consent.subject_id == subject.id).order_by(Consent.event_id)
            )
            .scalars()
            .all()
        )
        stored_raw = session.scalar(
            select(func.count())
            .select_from(RawSegment)
            .where(RawSegment.subject_pseudonym == pseudonym)
        )
        stored_meta = session.scalar(
            select(func.count())
            .select_from(MetadataRecord)
            .where(MetadataRecord.subject_pseudonym == pseudonym)
        )
    out_dir = _prepare_out(out_dir)
    raw_entries = []
    event_ids = {c.event_id for c in consents}
    for segment in store.iter_raw(now=now, pseudonym=pseudonym):
        name = f"raw/{segment.id}.wav"
        data = _wav_bytes(segment.pcm, segment.sample_rate)
        _write_private(out_dir / name, data)
        event_ids.add(segment.event_id)
        raw_entries.append(
            {
                "id": segment.id,
                "event_id": segment.event_id,
                "start_at": _iso(segment.start_at),
                "expires_at": _iso(segment.expires_at),
                "sample_rate": segment.sample_rate,
                "duration_ms": segment.duration_ms,
                "speech_frames": segment.speech_frames,
                "file": name,
                "pcm_sha256": hashlib.sha256(segment.pcm).hexdigest(),
            }
        )
    metadata = []
    for record in store.iter_metadata(now=now, pseudonym=pseudonym):
        event_ids.add(record.event_id)
        metadata.append(
            {
                "id": record.id,
                "event_id": record.event_id,
                "kind": record.kind,
                "start_at": _iso(record.start_at),
                "expires_at": _iso(record.expires_at),
                "anonymised": record.anonymised,
                "payload": record.payload,
            }
        )
    _write_private(out_dir / "metadata.json", _json(metadata))
    unreadable = int(stored_raw or 0) + int(stored_meta or 0) - len(raw_entries) - len(metadata)

    with store.transaction(now, actor=ACTOR) as tx:
        events = tx.session.scalars(
            select(Event).where(Event.id.in_(sorted(event_ids))).order_by(Event.id)
        ).all()
        request = _open_request(
            tx.session, pseudonym, ("access", "portability"), received, "access"
        )
        request.status = "done"
        request.completed_at = now
        on_time = now <= deadline_of(request)
        receipt = {
            "request_id": request.id,
            "kind": request.kind,
            "received_at": _iso(request.received_at),
            "completed_at": iso_utc(now),
            "on_time": on_time,
            "raw_segments": len(raw_entries),
            "metadata_records": len(metadata),
            "consents": len(consents),
            "unreadable_records": unreadable,
        }
        request.receipt = {**(request.receipt or {}), **receipt}
        tx.audit(Action.DSR_EXPORT, "subject_request", str(request.id), receipt)
        manifest = {
            "format": EXPORT_FORMAT,
            "generated_at": iso_utc(now),
            "request": {
                "id": request.id,
                "kind": request.kind,
                "received_at": _iso(request.received_at),
                "due_at": _iso(request.due_at),
                "completed_at": iso_utc(now),
                "legal_basis": "GDPR Art 15 (access) and Art 20 (portability)",
            },
            "subject": {
                "pseudonym": pseudonym,
                "zone": subject.zone,
                "age_band": subject.age_band,
                "ticket_type": subject.ticket_type,
                "device_model": subject.device_model,
                "arrival_at": _iso(subject.arrival_at),
                "is_staff": subject.is_staff,
                "registered_at": _iso(subject.created_at),
            },
            "consents": [
                {
                    "event_id": c.event_id,
                    "status": c.status,
                    "given_at": _iso(c.given_at),
                    "withdrawn_at": _iso(c.withdrawn_at),
                    "biometrics_explicit": c.biometrics_explicit,
                    "notice_version": c.notice_version,
                }
                for c in consents
            ],
            "events": [
                {
                    "id": e.id,
                    "name": e.name,
                    "venue": e.venue,
                    "starts_at": _iso(e.starts_at),
                    "ends_at": _iso(e.ends_at),
                    "policy": _policy_section(e, policy_loader),
                }
                for e in events
            ],
            "raw_segments": raw_entries,
            "metadata": {"file": "metadata.json", "records": len(metadata)},
            "not_exported": {
                "records": unreadable,
                "why": "past their retention or their key was destroyed: unreadable by anyone",
            },
            "your_rights": [
                "rectification (Art 16) and restriction (Art 18): contact the controller",
                "erasure (Art 17): the controller runs `flowaudit dsr erase`",
                "withdraw consent at any time (Art 7(3)); capture stops from that moment",
                "complain to a supervisory authority (Art 77), in France the CNIL",
            ],
        }
        _write_private(out_dir / "manifest.json", _json(manifest))
    return ExportResult(
        request_id=int(request.id),
        out_dir=out_dir,
        raw_segments=len(raw_entries),
        metadata_records=len(metadata),
        consents=len(consents),
        unreadable=unreadable,
        on_time=on_time,
    )


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


# -- erasure --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasureResult:
    """The erasure receipt (no serial, no pseudonym, no plaintext).

    ``confirmed``: the wristband was already erased; this is that erasure's request and receipt.
    """

    request_id: int
    receipt: dict[str, Any]
    confirmed: bool = False


def _erased_tag(store: EncryptedStore, pseudonym: str) -> str:
    """What the erasure request keeps instead of the pseudonym: a keyed tag, 64 characters."""
    tag = store.pseudonym(_TAG_DOMAIN + pseudonym)
    return f"{ERASED_MARK}:{tag}"[:64]


def _confirm_erasure(store: EncryptedStore, pseudonym: str, now: datetime) -> ErasureResult | None:
    """The finished erasure of an erased wristband, found by its tag; None if there is none."""
    with store.transaction(now, actor=ACTOR) as tx:
        request = tx.session.scalar(
            select(SubjectRequest)
            .where(
                SubjectRequest.subject_pseudonym == _erased_tag(store, pseudonym),
                SubjectRequest.kind == "erasure",
                SubjectRequest.status == "done",
            )
            .order_by(SubjectRequest.completed_at.desc(), SubjectRequest.id.desc())
            .limit(1)
        )
        if request is None:
            return None
        tx.audit(
            Action.DSR_ERASE_CONFIRM,
            "subject_request",
            str(request.id),
            {"request_id": int(request.id), "confirmed_at": iso_utc(now)},
        )
        return ErasureResult(
            request_id=int(request.id), receipt=dict(request.receipt or {}), confirmed=True
        )


def _request_tally(request_id: int) -> Tally:
    """Each delete batch adds its counts to the request's receipt, in the batch's transaction."""

    def tally(session: Any, model: type[Any], rows: int, size: int) -> None:
        request = session.get(SubjectRequest, request_id)
        if request is None:
            return
        receipt = dict(request.receipt or {})
        key = _DELETED_KEYS[model]
        receipt[key] = int(receipt.get(key) or 0) + rows
        receipt["bytes_freed"] = int(receipt.get("bytes_freed") or 0) + size
        request.receipt = receipt

    return tally


def erase_subject(
    store: EncryptedStore,
    serial: str,
    *,
    now: datetime,
    reason: str = "request",
    received_at: datetime | None = None,
    batch: int = 1000,
) -> ErasureResult:
    """Erase one wristband (Art 17): destroy its key, delete its rows, keep a receipt."""
    return erase_pseudonym(
        store,
        store.pseudonym(serial),
        now=now,
        reason=reason,
        received_at=received_at,
        batch=batch,
    )


def erase_on_withdrawal(store: EncryptedStore, pseudonym: str, *, now: datetime) -> ErasureResult:
    """Consent withdrawn (Art 7(3), Art 17(1)(b)): erase everything of that wristband now.

    For the pipeline, which knows wristbands by pseudonym only.
    """
    return erase_pseudonym(store, pseudonym, now=now, reason="withdrawal")


def erase_pseudonym(
    store: EncryptedStore,
    pseudonym: str,
    *,
    now: datetime,
    reason: str = "request",
    received_at: datetime | None = None,
    batch: int = 1000,
) -> ErasureResult:
    """Erasure by pseudonym; resumes an erasure a crash interrupted, confirms a finished one."""
    now = _aware(now, "now")
    received = _aware(received_at, "received_at") if received_at else now
    if reason not in ERASURE_REASONS:
        raise InputError(f"erasure reason {reason!r}; use one of {', '.join(ERASURE_REASONS)}")
    if batch < 1:
        raise InputError(f"batch {batch} must be at least 1")
    # keys a restored key store brought back are destroyed again (keys.reshred entry); this
    # subject's own key is left to step 1, as in a first erasure
    reshred(store, now=now, actor=ACTOR, skip=[(SUBJECTS, pseudonym)])
    with store.session() as session:
        known = session.scalar(select(Subject).where(Subject.pseudonym == pseudonym))
        erased = known is not None and known.erased_at is not None
    if erased:  # a retry after the erasure committed, or the same request again
        confirmed = _confirm_erasure(store, pseudonym, now)
        if confirmed is None:
            raise NotFoundError(_NOT_HELD)
        return confirmed
    with store.transaction(now, actor=ACTOR) as tx:
        _live_subject(tx.session, pseudonym)
        request = _open_request(tx.session, pseudonym, ("erasure",), received, "erasure")
        request.status = "in_progress"
        request_id = int(request.id)

    # 1. crypto-shred: from here on nothing of this wristband decrypts, in any copy
    if not store.keys.is_subject_destroyed(pseudonym):  # a resumed erasure: already done
        store.destroy_subject_key(pseudonym, now=now, actor=ACTOR)
    # 2. delete the ciphertext in bounded batches; each batch counts itself into the request
    tally = _request_tally(request_id)
    for model in _DELETED_KEYS:
        while True:
            rows, _size = delete_rows_batch(
                store,
                model,
                model.subject_pseudonym == pseudonym,
                batch=batch,
                now=now,
                actor=ACTOR,
                tally=tally,
            )
            if rows < batch:
                break
    # 3. consents, attributes and the request, with the receipt, in one transaction
    with store.transaction(now, actor=ACTOR) as tx:
        subject = _live_subject(tx.session, pseudonym)
        consents = len(
            tx.session.scalars(select(Consent.id).where(Consent.subject_id == subject.id)).all()
        )
        tx.session.execute(delete(Consent).where(Consent.subject_id == subject.id))
        subject.zone = subject.age_band = subject.ticket_type = subject.device_model = None
        subject.arrival_at = None
        subject.erased_at = now
        done = tx.session.get(SubjectRequest, request_id)
        assert done is not None
        request = done
        progress = dict(request.receipt or {})  # what every attempt deleted
        counts = {key: int(progress.get(key) or 0) for key in _DELETED_KEYS.values()}
        freed = int(progress.get("bytes_freed") or 0)
        request.status = "done"
        request.completed_at = now
        receipt = {
            "request_id": request_id,
            "kind": "erasure",
            "reason": reason,
            "received_at": _iso(request.received_at),
            "completed_at": iso_utc(now),
            "deadline": _iso(deadline_of(request)),
            "on_time": now <= deadline_of(request),
            "subject_key_destroyed": store.keys.is_subject_destroyed(pseudonym),
            **counts,
            "consents_deleted": int(consents or 0),
            "bytes_freed": freed,
            "subject_attributes_cleared": True,
        }
        stored = {**(request.receipt or {}), **receipt}  # what a retry will show again
        request.receipt = stored
        request.subject_pseudonym = _erased_tag(store, pseudonym)
        tx.session.flush()
        tx.session.execute(
            update(SubjectRequest)
            .where(SubjectRequest.subject_pseudonym == pseudonym)
            .values(subject_pseudonym=ERASED_MARK)
            .execution_options(synchronize_session=False)
        )
        tx.audit(Action.DSR_ERASE, "subject_request", str(request_id), receipt)
    truncate_sqlite_wal(store.engine)
    return ErasureResult(request_id=request_id, receipt=dict(stored))
