"""The retention purge: expired data made unreadable everywhere at once, then deleted.

One run, in order::

    anonymise   metadata past anonymise_metadata_after -> aggregates; originals expire now
    shred       expired ACTIVE buckets: audit entry, destroy the bucket key, state SHREDDED
    delete      SHREDDED buckets: ciphertext rows deleted in bounded batches
    receipt     one transaction: emptied buckets -> DELETED, PurgeRun row, ``purge.receipt``
    checkpoint  SQLite: wal_checkpoint(TRUNCATE), so deleted pages do not linger in the WAL

Shredding touches only ``retention_buckets`` and the key store, so it costs O(expired buckets)
whatever the number of rows; deleting costs O(rows) but the data is already unreadable.

Crash safety: every step is idempotent and keyed by bucket state. A bucket whose key is gone
but is still ACTIVE (killed between the key store and the database) is marked SHREDDED without
a second shred entry; a SHREDDED bucket with rows left is emptied by the next run; emptied
buckets become DELETED in the same transaction as the receipt that names them, so every
bucket a receipt names is really gone, and every gone bucket is named by exactly one receipt.
(The one gap: killed after a ``bucket.shred`` entry commits but before its key is destroyed,
the next run writes that entry again before destroying the key — a repeated intent, never a
repeated destruction.)

A killed run never writes its receipt, and its ``purge_runs`` row still says ``running``. The
next run tells it apart from a live one by its run lock (:mod:`retention._locks`), and closes
it: the killed run's row becomes ``interrupted`` and the new run's receipt names it under
``resumed_runs``, lists the buckets it shredded (its ``bucket.shred`` entries carry the run in
their actor, ``purge/<id>``) and adds the rows it deleted (each delete batch adds its counts to
the run's row in the batch's own transaction). So, killed or not, the receipts together name
every shredded and every deleted bucket once, and count every deleted row once.

Concurrency: see :mod:`retention._locks`; each bucket is handled by one worker, and the final
``UPDATE … WHERE state = 'SHREDDED' RETURNING id`` makes "deleted by this run" exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from ._deletion import (
    SEALED_MODELS,
    Tally,
    delete_rows_batch,
    sealed_bytes,
    truncate_sqlite_wal,
)
from ._locks import BucketLocker
from .anonymise import (
    AnonymiseReport,
    PolicyLoader,
    anonymise_due,
    clear_subject_quasi_identifiers,
    tolerant_loader,
)
from .errors import InputError
from .ground.actions import Action
from .ledger import reshred
from .models import (
    BUCKET_ACTIVE,
    BUCKET_DELETED,
    BUCKET_SHREDDED,
    AuditEntry,
    PurgeRun,
    RetentionBucket,
)
from .policy import load_policy
from .store import EncryptedStore

__all__ = [
    "DEFAULT_BATCH",
    "RUN_INTERRUPTED",
    "PurgePlan",
    "PurgeReport",
    "ResumedRun",
    "purge",
    "plan_purge",
    "shred_expired",
    "delete_shredded",
]

DEFAULT_BATCH = 1000
SHRED_CHUNK = 64  # keys destroyed per key-store rewrite; also the graceful-stop granularity
_IN_CHUNK = 500
_INT32_MAX = 2**31 - 1
ACTOR = "purge"
RUN_RUNNING = "running"
RUN_INTERRUPTED = "interrupted"

ProgressFn = Callable[[str, int, int], None]
StopFn = Callable[[], bool]


@dataclass
class PurgePlan:
    """What a purge would do now (``--dry-run``)."""

    buckets_to_shred: list[str] = field(default_factory=list)
    buckets_to_delete: list[str] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class ResumedRun:
    """A run killed before its receipt, closed by a later run: what it had done."""

    run_id: int
    buckets_shredded: tuple[str, ...] = ()
    rows_deleted: int = 0
    bytes_freed: int = 0


@dataclass
class PurgeReport:
    """What one run did; :meth:`receipt` is the audit entry's details."""

    run_id: int
    as_of: datetime
    dry_run: bool = False
    buckets_shredded: list[str] = field(default_factory=list)
    buckets_deleted: list[str] = field(default_factory=list)
    rows_deleted: int = 0
    bytes_freed: int = 0
    keys_destroyed: int = 0
    stopped: bool = False
    status: str = "running"
    wal_truncated: bool | None = None
    plan: PurgePlan | None = None
    anonymised: AnonymiseReport | None = None
    warnings: list[str] = field(default_factory=list)
    resumed: list[ResumedRun] = field(default_factory=list)

    def receipt(self) -> dict[str, Any]:
        """Bucket ids, counts and time: no serial, no pseudonym, no plaintext.

        Covers the interrupted runs this run closed too: their shredded buckets and deleted
        rows are added, and ``resumed_runs`` (present only then) lists their ids.
        """
        shredded = list(self.buckets_shredded)
        seen = set(shredded)
        for run in self.resumed:
            shredded += [b for b in run.buckets_shredded if b not in seen]
            seen.update(run.buckets_shredded)
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "buckets_shredded": shredded,
            "buckets_deleted": list(self.buckets_deleted),
            "rows_deleted": self.rows_deleted + sum(r.rows_deleted for r in self.resumed),
            "bytes_freed": self.bytes_freed + sum(r.bytes_freed for r in self.resumed),
            "dry_run": self.dry_run,
        }
        if self.resumed:
            out["resumed_runs"] = [r.run_id for r in self.resumed]
        return out

    def as_dict(self) -> dict[str, Any]:
        out = self.receipt()
        out.update(
            status=self.status,
            stopped=self.stopped,
            keys_destroyed=self.keys_destroyed,
            wal_truncated=self.wal_truncated,
            warnings=list(self.warnings),
        )
        if self.resumed:
            out["resumed"] = [
                {
                    "run_id": r.run_id,
                    "buckets_shredded": len(r.buckets_shredded),
                    "rows_deleted": r.rows_deleted,
                    "bytes_freed": r.bytes_freed,
                }
                for r in self.resumed
            ]
        if self.plan is not None:
            out["plan"] = {
                "buckets_to_shred": list(self.plan.buckets_to_shred),
                "buckets_to_delete": list(self.plan.buckets_to_delete),
                "rows": self.plan.rows,
                "bytes": self.plan.bytes,
            }
        if self.anonymised is not None:
            out["anonymised"] = self.anonymised.as_dict()
        return out


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise InputError(f"now must be a timezone-aware time (got {now.isoformat()})")
    return now.astimezone(UTC)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _never() -> bool:
    return False


def run_actor(run_id: int) -> str:
    """The audit actor of one run's entries: which run shredded a bucket, even if it died."""
    return f"{ACTOR}/{run_id}"


# -- the run --------------------------------------------------------------------------------------


def purge(
    store: EncryptedStore,
    *,
    now: datetime,
    dry_run: bool = False,
    batch: int = DEFAULT_BATCH,
    anonymise: bool = True,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    policy_loader: PolicyLoader = load_policy,
    shred_chunk: int = SHRED_CHUNK,
) -> PurgeReport:
    """Enforce retention as of ``now``; idempotent, resumable, safe with several workers.

    ``should_stop`` is polled between buckets (and between ``shred_chunk`` key destructions):
    the work in hand is finished, the receipt is written for what was done, and the run ends
    with ``stopped`` set.
    """
    now = _aware(now)
    if batch < 1:
        raise InputError(f"--batch {batch} must be at least 1 row per delete")
    if shred_chunk < 1:
        raise InputError(f"shred_chunk {shred_chunk} must be at least 1 bucket")
    stop = should_stop or _never
    with BucketLocker(store.engine) as locks:
        run_id = _open_run(store, now, dry_run, locks)
        report = PurgeReport(run_id=run_id, as_of=now, dry_run=dry_run)
        emptied: list[str] = []
        try:
            if not dry_run:  # a dry run claims nothing, not even a dead run's work
                report.resumed = _claim_interrupted(store, locks, run_id)
                # keys a restored key store brought back: destroyed again (keys.reshred entry)
                reshred(store, now=now, actor=run_actor(run_id), skip_active_buckets=True)
            if dry_run:
                report.plan = plan_purge(store, now=now)
                if anonymise:
                    report.anonymised = anonymise_due(
                        store, now=now, dry_run=True, policy_loader=policy_loader
                    )
                report.status = "dry-run"
            else:
                if anonymise and not stop():
                    report.anonymised = anonymise_due(
                        store,
                        now=now,
                        locks=locks,
                        should_stop=stop,
                        progress=progress,
                        policy_loader=policy_loader,
                        coarsen_subjects=False,
                    )
                    report.warnings.extend(report.anonymised.warnings)
                shred_expired(
                    store,
                    now=now,
                    report=report,
                    locks=locks,
                    progress=progress,
                    should_stop=stop,
                    chunk=shred_chunk,
                )
                emptied = delete_shredded(
                    store,
                    now=now,
                    report=report,
                    locks=locks,
                    batch=batch,
                    progress=progress,
                    should_stop=stop,
                )
                if report.anonymised is not None and not report.stopped:
                    # wristbands whose last linkable rows were just deleted
                    report.anonymised.subjects_coarsened += clear_subject_quasi_identifiers(
                        store, now=now, policy_loader=tolerant_loader(policy_loader, [])
                    )
                report.status = "stopped" if report.stopped else "done"
        except BaseException:
            report.status = "failed"
            try:  # a receipt for what did happen before the failure
                _close_run(store, now, report, emptied)
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
            raise
        _close_run(store, now, report, emptied)
    if not dry_run:
        report.wal_truncated = truncate_sqlite_wal(store.engine)
        if not report.wal_truncated:
            report.warnings.append(
                "SQLite WAL could not be truncated (a reader held it); deleted pages may stay "
                "in the -wal file until the next checkpoint"
            )
    return report


def _open_run(store: EncryptedStore, now: datetime, dry_run: bool, locks: BucketLocker) -> int:
    """The run's ``purge_runs`` row, visible to others only once its run lock is held."""
    with store.transaction(now, actor=ACTOR) as tx:
        run = PurgeRun(
            started_at=now,
            as_of=now,
            dry_run=dry_run,
            buckets_shredded=0,
            rows_deleted=0,
            bytes_freed=0,
            status=RUN_RUNNING,
        )
        tx.session.add(run)
        tx.session.flush()
        locks.hold_run(int(run.id))
        return int(run.id)


def _claim_interrupted(store: EncryptedStore, locks: BucketLocker, own: int) -> list[ResumedRun]:
    """Runs left ``running`` whose process is gone, with the work they did before dying.

    Their locks stay ours until this run's receipt marks them ``interrupted``; a run killed in
    turn leaves them ``running`` for the next one.
    """
    with store.session() as session:
        candidates = list(
            session.scalars(
                select(PurgeRun)
                .where(PurgeRun.status == RUN_RUNNING, PurgeRun.id != own)
                .order_by(PurgeRun.id)
            )
        )
        dead = [run for run in candidates if locks.claim_run(int(run.id))]
        out = []
        for run in dead:
            named = [] if run.dry_run else _shredded_by(session, run)
            # a bucket whose entry committed but whose key survived was not shredded by it
            shredded = tuple(b for b in named if store.keys.is_bucket_destroyed(b))
            out.append(
                ResumedRun(
                    run_id=int(run.id),
                    buckets_shredded=shredded,
                    rows_deleted=int(run.rows_deleted or 0),
                    bytes_freed=int(run.bytes_freed or 0),
                )
            )
    return out


def _shredded_by(session: Session, run: PurgeRun) -> list[str]:
    """Buckets named in the ``bucket.shred`` entries of one run (its actor, at its ``as_of``)."""
    seen: dict[str, None] = {}
    for details in session.scalars(
        select(AuditEntry.details)
        .where(
            AuditEntry.action == Action.BUCKET_SHRED,
            AuditEntry.at == run.as_of,
            AuditEntry.actor == run_actor(int(run.id)),
        )
        .order_by(AuditEntry.seq)
    ):
        ids = details.get("bucket_ids") if isinstance(details, dict) else None
        for bucket_id in ids if isinstance(ids, list) else []:
            seen.setdefault(str(bucket_id), None)
    return list(seen)


def _run_tally(run_id: int) -> Tally:
    """Each delete batch adds its rows and bytes to the run's row, in the batch's transaction."""

    def tally(session: Session, _model: type[Any], rows: int, size: int) -> None:
        total = PurgeRun.rows_deleted + rows
        session.execute(
            update(PurgeRun)
            .where(PurgeRun.id == run_id)
            .values(
                rows_deleted=case((total > _INT32_MAX, _INT32_MAX), else_=total),
                bytes_freed=PurgeRun.bytes_freed + size,
            )
            .execution_options(synchronize_session=False)
        )

    return tally


def _close_run(
    store: EncryptedStore, now: datetime, report: PurgeReport, emptied: list[str]
) -> None:
    """Emptied buckets -> DELETED, the run's counts, and the receipt: all in one transaction.

    Interrupted runs this run resumed become ``interrupted`` in the same transaction.
    """
    with store.transaction(now, actor=run_actor(report.run_id)) as tx:
        deleted: set[str] = set()
        for chunk in _chunks(emptied, _IN_CHUNK):
            result = tx.session.execute(
                update(RetentionBucket)
                .where(RetentionBucket.id.in_(chunk), RetentionBucket.state == BUCKET_SHREDDED)
                .values(state=BUCKET_DELETED, deleted_at=now)
                .returning(RetentionBucket.id)
                .execution_options(synchronize_session=False)
            )
            deleted.update(result.scalars())
        report.buckets_deleted = [b for b in emptied if b in deleted]
        run = tx.session.get(PurgeRun, report.run_id)
        if run is not None:
            run.finished_at = now
            run.buckets_shredded = len(report.buckets_shredded)
            run.rows_deleted = min(report.rows_deleted, _INT32_MAX)
            run.bytes_freed = report.bytes_freed
            run.status = report.status
        if report.resumed:
            tx.session.execute(
                update(PurgeRun)
                .where(
                    PurgeRun.id.in_([r.run_id for r in report.resumed]),
                    PurgeRun.status == RUN_RUNNING,
                )
                .values(status=RUN_INTERRUPTED)
                .execution_options(synchronize_session=False)
            )
        tx.audit(Action.PURGE_RECEIPT, "purge_run", str(report.run_id), report.receipt())


# -- planning -------------------------------------------------------------------------------------


def _expired_active(store: EncryptedStore, now: datetime) -> list[str]:
    with store.session() as session:
        return list(
            session.scalars(
                select(RetentionBucket.id)
                .where(
                    RetentionBucket.state == BUCKET_ACTIVE,
                    RetentionBucket.expires_at.is_not(None),
                    RetentionBucket.expires_at <= now,
                )
                .order_by(RetentionBucket.expires_at, RetentionBucket.id)
            )
        )


def _shredded(store: EncryptedStore) -> list[str]:
    with store.session() as session:
        return list(
            session.scalars(
                select(RetentionBucket.id)
                .where(RetentionBucket.state == BUCKET_SHREDDED)
                .order_by(RetentionBucket.shredded_at, RetentionBucket.id)
            )
        )


def _row_totals(store: EncryptedStore, bucket_ids: Sequence[str]) -> tuple[int, int]:
    rows = size = 0
    with store.session() as session:
        for chunk in _chunks(bucket_ids, _IN_CHUNK):
            for model in SEALED_MODELS:
                count, total = session.execute(
                    select(func.count(), func.coalesce(func.sum(sealed_bytes(model)), 0)).where(
                        model.bucket_id.in_(chunk)
                    )
                ).one()
                rows, size = rows + int(count), size + int(total)
    return rows, size


def plan_purge(store: EncryptedStore, *, now: datetime) -> PurgePlan:
    """Buckets a purge at ``now`` would shred and delete, and the rows and bytes they hold.

    (Metadata buckets the anonymisation step would expire first are reported by
    :func:`retention.anonymise.anonymise_due` with ``dry_run=True``.)
    """
    now = _aware(now)
    to_shred = _expired_active(store, now)
    to_delete = _shredded(store) + to_shred
    rows, size = _row_totals(store, to_delete)
    return PurgePlan(buckets_to_shred=to_shred, buckets_to_delete=to_delete, rows=rows, bytes=size)


# -- shred ----------------------------------------------------------------------------------------


def _fresh_active(store: EncryptedStore, bucket_ids: Sequence[str], now: datetime) -> list[str]:
    """Re-read after locking: only buckets still ACTIVE and expired, in the given order."""
    with store.session() as session:
        alive = set(
            session.scalars(
                select(RetentionBucket.id).where(
                    RetentionBucket.id.in_(bucket_ids),
                    RetentionBucket.state == BUCKET_ACTIVE,
                    RetentionBucket.expires_at <= now,
                )
            )
        )
    return [b for b in bucket_ids if b in alive]


def _mark_shredded(
    store: EncryptedStore, bucket_ids: Sequence[str], now: datetime, actor: str
) -> None:
    """For buckets whose key a crashed run already destroyed: finish the state change."""
    with store.transaction(now, actor=actor) as tx:
        tx.session.execute(
            update(RetentionBucket)
            .where(RetentionBucket.id.in_(bucket_ids), RetentionBucket.state == BUCKET_ACTIVE)
            .values(state=BUCKET_SHREDDED, shredded_at=now)
        )


def shred_expired(
    store: EncryptedStore,
    *,
    now: datetime,
    report: PurgeReport,
    locks: BucketLocker,
    progress: ProgressFn | None = None,
    should_stop: StopFn = _never,
    chunk: int = SHRED_CHUNK,
) -> None:
    """Destroy the keys of expired buckets: O(expired buckets), no row is read."""
    actor = run_actor(report.run_id)
    candidates = _expired_active(store, now)
    done = 0
    for ids in _chunks(candidates, chunk):
        if should_stop():
            report.stopped = True
            break
        with locks.holding(list(ids)) as mine:
            fresh = _fresh_active(store, mine, now) if mine else []
            gone = [b for b in fresh if store.keys.is_bucket_destroyed(b)]
            live = [b for b in fresh if b not in set(gone)]
            if live:
                report.keys_destroyed += len(store.shred_buckets(live, now=now, actor=actor))
            if gone:
                _mark_shredded(store, gone, now, actor)
            report.buckets_shredded.extend(fresh)
        done += len(ids)
        if progress is not None:
            progress("shred", done, len(candidates))


# -- delete ---------------------------------------------------------------------------------------


def _is_shredded(store: EncryptedStore, bucket_id: str) -> bool:
    with store.session() as session:
        state = session.scalar(select(RetentionBucket.state).where(RetentionBucket.id == bucket_id))
    return state == BUCKET_SHREDDED


def delete_shredded(
    store: EncryptedStore,
    *,
    now: datetime,
    report: PurgeReport,
    locks: BucketLocker,
    batch: int = DEFAULT_BATCH,
    progress: ProgressFn | None = None,
    should_stop: StopFn = _never,
) -> list[str]:
    """Delete the ciphertext of SHREDDED buckets in batches; return the buckets emptied.

    The caller marks the emptied buckets DELETED together with its receipt.
    """
    actor, tally = run_actor(report.run_id), _run_tally(report.run_id)
    candidates = _shredded(store)
    total = _row_totals(store, candidates)[0] if progress is not None and candidates else 0
    done = 0
    emptied: list[str] = []
    for bucket_id in candidates:
        if should_stop():
            report.stopped = True
            break
        if not locks.try_lock(bucket_id):
            continue  # another worker is on it
        try:
            if not _is_shredded(store, bucket_id):
                continue
            for model in SEALED_MODELS:
                while True:
                    rows, size = delete_rows_batch(
                        store,
                        model,
                        model.bucket_id == bucket_id,
                        batch=batch,
                        now=now,
                        actor=actor,
                        tally=tally,
                    )
                    report.rows_deleted += rows
                    report.bytes_freed += size
                    done += rows
                    if rows and progress is not None:
                        progress("delete", done, max(total, done))
                    if rows < batch:
                        break
            emptied.append(bucket_id)
        finally:
            locks.unlock(bucket_id)
    return emptied
