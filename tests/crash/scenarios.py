"""The crash scenarios of issue 14: ``flowaudit purge`` and ``flowaudit dsr erase``.

Each has a prepared home (seeded through the real store), the command's ARGV, and the end
state a killed-then-rerun command must share with an uninterrupted one. What the end states
keep, and the few things they normalise, is written next to each key.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from audit.log.checkpoints import load_signer
from audit.log.verify import verify_log
from flowaudit.runtime import Runtime
from retention.ground.actions import Action
from retention.models import Consent, MetadataRecord, PurgeRun, RawSegment, Subject, SubjectRequest
from retention.purge import RUN_INTERRUPTED
from tests.retention_ops._data import audit_entries, seed_crowd, snapshot

from .harness import Finished, Home, Scenario, new_home

__all__ = ["SCENARIOS", "PURGE", "DSR_ERASE", "purge_state", "dsr_state"]

SEEDED_AT = datetime(2026, 6, 21, 20, 0, tzinfo=UTC)


def _verified(runtime: Runtime) -> str:
    """``ok``, or the first problem: the chain, its signatures, and no unsigned tail."""
    signer = load_signer(Path(runtime.settings.signing_key_file))
    assert signer is not None
    report = verify_log(runtime.engine, signer.public_key)
    first = report.first_problem
    return "ok" if report.ok else f"{first.kind} at seq {first.seq}" if first else "failed"


def _subjects(runtime: Runtime) -> list[tuple[Any, ...]]:
    with runtime.store.session() as session:
        return sorted(
            (
                s.pseudonym,
                s.zone,
                s.age_band,
                s.ticket_type,
                s.device_model,
                s.arrival_at.isoformat() if s.arrival_at else None,
                s.erased_at.isoformat() if s.erased_at else None,
            )
            for s in session.scalars(select(Subject))
        )


# -- purge ----------------------------------------------------------------------------------------

PURGE_AT = SEEDED_AT + timedelta(hours=75, minutes=30)


def prepare_purge(path: Path, backend: str) -> Home:
    """Raw audio and metadata of two events, due for shredding and for anonymisation."""
    home = new_home(path, backend)
    runtime = home.open(SEEDED_AT)
    try:
        seed_crowd(
            runtime.store,
            SEEDED_AT,
            event_id="crash-a",
            policy="privacy-by-default",
            subjects=16,
            hours=5,
            raw_per_hour=1,
            meta_per_hour=1,
            seed=11,
        )
        seed_crowd(
            runtime.store,
            SEEDED_AT,
            event_id="crash-b",
            subjects=3,
            hours=12,
            raw_per_hour=2,
            meta_per_hour=1,
            raw_retention=timedelta(hours=1),
            meta_retention=timedelta(hours=2),
            seed=12,
        )
    finally:
        runtime.close()
    return home


def purge_state(home: Home, last: Finished) -> dict[str, Any]:
    """Buckets, rows, keys and readable data; receipts; purge runs; the audit log verifying.

    Receipts and runs are compared as totals, since a killed run and the run that resumed it
    split one run's work between them: every bucket named once as shredded and once as deleted,
    every row counted once, no run left ``running``, every ``interrupted`` run named by a receipt.
    """
    runtime = home.open(PURGE_AT)
    try:
        state: dict[str, Any] = dict(snapshot(runtime, PURGE_AT))
        receipts = [
            e.details
            for e in audit_entries(runtime.store, Action.PURGE_RECEIPT)
            if not e.details["dry_run"]
        ]
        with runtime.store.session() as session:
            runs = list(session.scalars(select(PurgeRun).where(PurgeRun.dry_run.is_(False))))
        resumed = {r for d in receipts for r in d.get("resumed_runs", [])}
        state.update(
            {
                # each list a multiset: a bucket named twice would show twice
                "receipts.shredded": sorted(b for d in receipts for b in d["buckets_shredded"]),
                "receipts.deleted": sorted(b for d in receipts for b in d["buckets_deleted"]),
                "receipts.rows_deleted": sum(d["rows_deleted"] for d in receipts),
                "receipts.bytes_freed": sum(d["bytes_freed"] for d in receipts),
                "receipts.with_work": sum(
                    bool(d["buckets_shredded"] or d["buckets_deleted"] or d["rows_deleted"])
                    for d in receipts
                ),
                "runs.running": sum(r.status == "running" for r in runs),
                "runs.interrupted_unreceipted": sorted(
                    r.id for r in runs if r.status == RUN_INTERRUPTED and r.id not in resumed
                ),
                "runs.rows_deleted": sum(r.rows_deleted for r in runs),
                "runs.bytes_freed": sum(r.bytes_freed for r in runs),
                # how the runs that did work ended: a killed run whose work a later receipt
                # names counts as done (the kill may land after its last batch, leaving the
                # rerun nothing to do); an unreceipted one shows under interrupted_unreceipted
                "runs.statuses_with_work": sorted(
                    {
                        "done" if r.status == RUN_INTERRUPTED and r.id in resumed else r.status
                        for r in runs
                        if r.rows_deleted or r.buckets_shredded
                    }
                ),
                # a repeated shred *intent* is allowed (documented); a missing one is not
                "shred_entries.buckets": sorted(
                    {
                        b
                        for e in audit_entries(runtime.store, Action.BUCKET_SHRED)
                        for b in e.details["bucket_ids"]
                    }
                ),
                "anonymise_entries": sorted(
                    e.object_id for e in audit_entries(runtime.store, Action.METADATA_ANONYMISE)
                ),
                "subjects": _subjects(runtime),
                "audit_verify": _verified(runtime),
                "last_run.status": json.loads(last.stdout)["status"],
            }
        )
        return state
    finally:
        runtime.close()


PURGE = Scenario(
    name="purge",
    prepare=prepare_purge,
    argv=[
        "purge",
        "--home",
        "{home}",
        "--now",
        PURGE_AT.isoformat(),
        "--batch",
        "2",
        "--format",
        "json",
    ],
    end_state=purge_state,
)


# -- dsr erase ------------------------------------------------------------------------------------

DSR_AT = SEEDED_AT + timedelta(hours=4)
DSR_SEED = 5
VICTIM = f"WB-{DSR_SEED:03d}-0000"  # seed_crowd's first serial


def prepare_dsr(path: Path, backend: str) -> Home:
    """Four wristbands with raw audio and scores; the first one's erasure is the command."""
    home = new_home(path, backend)
    runtime = home.open(SEEDED_AT)
    try:
        seeded = seed_crowd(
            runtime.store,
            SEEDED_AT,
            event_id="crash-dsr",
            subjects=4,
            hours=3,
            raw_per_hour=4,
            meta_per_hour=4,
            seed=DSR_SEED,
        )
        assert seeded.serials[0] == VICTIM
    finally:
        runtime.close()
    return home


def _per_subject(runtime: Runtime, column: Any) -> dict[str, int]:
    with runtime.store.session() as session:
        return {
            str(k): int(n)
            for k, n in session.execute(select(column, func.count()).group_by(column))
            if k is not None
        }


def _ranked(receipt: Any, rank: dict[int, int]) -> Any:
    """The receipt with its ``request_id`` replaced by the request's rank in id order."""
    if not isinstance(receipt, dict) or "request_id" not in receipt:
        return receipt
    ident = receipt["request_id"]
    return {**receipt, "request_id": rank.get(int(ident), ident) if ident is not None else None}


def dsr_state(home: Home, last: Finished) -> dict[str, Any]:
    """The answer printed, the request and its receipt, what is left of every wristband.

    The erasure request's tag is compared by shape (``erased:`` + hex), the pseudonyms of the
    others exactly; intent entries (``subject.key_destroyed``) are not counted, receipts are.
    A request's id is compared by its rank: on PostgreSQL a killed transaction's INSERT uses up
    a sequence value (sequences do not roll back), so the rerun's request may be number 2.
    """
    runtime = home.open(DSR_AT)
    try:
        state: dict[str, Any] = dict(snapshot(runtime, DSR_AT))
        with runtime.store.session() as session:
            rows = list(session.scalars(select(SubjectRequest).order_by(SubjectRequest.id)))
            rank = {int(r.id): n for n, r in enumerate(rows, start=1)}
            requests = sorted(
                (
                    r.kind,
                    r.status,
                    "erased:tag"
                    if r.subject_pseudonym.startswith("erased:")
                    else r.subject_pseudonym,
                    json.dumps(_ranked(r.receipt, rank), sort_keys=True),
                )
                for r in rows
            )
            subjects = {s.id: s.pseudonym for s in session.scalars(select(Subject))}
            consents = Counter(subjects[c.subject_id] for c in session.scalars(select(Consent)))
        erase_entries = audit_entries(runtime.store, Action.DSR_ERASE)
        state.update(
            {
                "answer": _ranked(json.loads(last.stdout), rank),  # the receipt printed
                "requests": requests,
                "subjects": _subjects(runtime),
                "consents": dict(sorted(consents.items())),
                "raw_rows": _per_subject(runtime, RawSegment.subject_pseudonym),
                "metadata_rows": _per_subject(runtime, MetadataRecord.subject_pseudonym),
                "subject_keys_destroyed": sorted(
                    p for p in subjects.values() if runtime.keys.is_subject_destroyed(p)
                ),
                "erase_receipts": [_ranked(e.details, rank) for e in erase_entries],
                "audit_verify": _verified(runtime),
            }
        )
        return state
    finally:
        runtime.close()


DSR_ERASE = Scenario(
    name="dsr erase",
    prepare=prepare_dsr,
    argv=[
        "dsr",
        "erase",
        VICTIM,
        "--home",
        "{home}",
        "--now",
        DSR_AT.isoformat(),
        "--batch",
        "2",
        "--format",
        "json",
    ],
    end_state=dsr_state,
)

SCENARIOS = {"purge": PURGE, "dsr-erase": DSR_ERASE}
