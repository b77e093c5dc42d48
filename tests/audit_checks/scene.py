"""Builds stores for the compliance-check tests through the real store API (no fakes).

A :class:`Scene` is one event in a real store (SQLite file or PostgreSQL schema, real key
store): wristbands with consent, scores inside the window, decisions with their parameters.
Tests start from the clean scene and add exactly one violation.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from audit.checks import CheckContext, Finding, run_checks
from audit.log.checkpoints import checkpoint_after_command
from flowaudit.runtime import Runtime
from retention.ground.durations import Duration
from retention.models import Decision, RawSegment, RetentionBucket, SubjectRequest
from retention.policy import Policy, load_policy

#: The rules these tests cover. Other rule modules (re-identification, PII) have their own tests
#: and are left out here so each case shows exactly which of these rules fire.
OWN_RULES = (
    "audit-log-verification",
    "biometrics-without-explicit-consent",
    "capture-outside-event-window",
    "data-without-consent",
    "decision-without-main-parameters",
    "expired-bucket-without-purge-receipt",
    "indefinite-linkable-metadata",
    "metadata-past-retention",
    "overdue-subject-request",
    "raw-audio-past-retention",
    "speech-stored",
    "staff-wristbands-processed",
)
EVENT_ID = "fete-2026"
STARTS = datetime(2026, 6, 21, 18, 0, tzinfo=UTC)
ENDS = STARTS + timedelta(hours=6)
WEIGHTS = {"crowd_sentiment": 0.5, "energy_match": 0.3, "artist_intent": 0.2}
NOTICE = "2026-06-wristband-v1"  # the notice version consent records name by default
_UNSET: Any = object()


class Scene:
    """One event in a real store, built step by step."""

    def __init__(self, runtime: Runtime, policy: str = "privacy-by-default") -> None:
        self.runtime = runtime
        self.store = runtime.store
        self.policy: Policy = load_policy(policy)
        self.event_id = EVENT_ID
        self._serial = 0
        with self.store.transaction(STARTS - timedelta(hours=2), actor="test") as tx:
            tx.register_event(
                self.event_id,
                name="Fête de la Musique demo",
                starts_at=STARTS,
                ends_at=ENDS,
                policy_name=self.policy.name,
                policy_sha256=self.policy.sha256,
            )

    # -- building ---------------------------------------------------------------------------
    def wristband(
        self,
        *,
        consent: str | None = "opted_in",
        given_at: datetime | None = _UNSET,
        withdrawn_at: datetime | None = None,
        biometrics_explicit: bool = False,
        is_staff: bool = False,
        serial: str | None = None,
        notice_version: str = NOTICE,
    ) -> str:
        """Register a wristband (and its consent for the event); return its pseudonym."""
        self._serial += 1
        serial = serial or f"WB-{self._serial:06d}"
        given = STARTS - timedelta(hours=1) if given_at is _UNSET else given_at
        with self.store.transaction(STARTS - timedelta(hours=1), actor="test") as tx:
            pseudonym = tx.register_subject(
                serial, zone="A", age_band="20-29", ticket_type="day", is_staff=is_staff
            )
            if consent is not None:
                tx.record_consent(
                    self.event_id,
                    pseudonym,
                    status=consent,
                    given_at=given,
                    withdrawn_at=withdrawn_at,
                    biometrics_explicit=biometrics_explicit,
                    notice_version=notice_version,
                )
        return pseudonym

    def score(
        self,
        pseudonym: str | None,
        at: datetime,
        *,
        kind: str = "window_score",
        retention: Duration = _UNSET,
        anonymised: bool = False,
        payload: dict[str, Any] | None = None,
    ) -> str:
        """Store one metadata record at ``at`` (retention from the policy by default)."""
        keep = self.policy.retention.metadata if retention is _UNSET else retention
        with self.store.transaction(at, actor="pipeline") as tx:
            return tx.put_metadata(
                event_id=self.event_id,
                pseudonym=pseudonym,
                kind=kind,
                start_at=at,
                payload=payload or {"sentiment": 62.5},
                retention=keep,
                anonymised=anonymised,
            )

    def raw(
        self,
        pseudonym: str,
        at: datetime,
        *,
        retention: Duration = _UNSET,
        speech_frames: int = 0,
        pcm: bytes = b"\x01\x00" * 480,
    ) -> str:
        """Store one raw segment at ``at`` (retention from the policy by default)."""
        keep = self.policy.retention.raw_audio if retention is _UNSET else retention
        with self.store.transaction(at, actor="pipeline") as tx:
            return tx.put_raw(
                event_id=self.event_id,
                pseudonym=pseudonym,
                start_at=at,
                pcm=pcm,
                sample_rate=16000,
                retention=keep,
                speech_frames=speech_frames,
            )

    def decision(
        self,
        at: datetime,
        parameters: dict[str, Any] | None = _UNSET,
        explanation: str = "sentiment above threshold: keep the energy",
    ) -> int:
        """Store a selection decision (with its main parameters and explanation by default)."""
        params = {"weights": WEIGHTS, "threshold": 40.0} if parameters is _UNSET else parameters
        with self.store.transaction(at, actor="pipeline") as tx:
            row = Decision(
                event_id=self.event_id,
                decided_at=at,
                track_id="trk-001",
                crowd_sentiment=58.0,
                adaptive_flow=False,
                artist_override=False,
                inputs={"crowd_sentiment": 58.0},
                parameters=params or {},
                explanation=explanation,
                latency_ms=3.2,
            )
            tx.session.add(row)
            tx.session.flush()
            tx.audit("selection.decision", "decision", str(row.id), {"track": "trk-001"})
            return int(row.id)

    def subject_request(
        self,
        pseudonym: str,
        received_at: datetime,
        *,
        extended_to: datetime | None = None,
        completed_at: datetime | None = None,
        due_at: datetime | None = None,
    ) -> int:
        with self.store.transaction(received_at, actor="dsr") as tx:
            row = SubjectRequest(
                subject_pseudonym=pseudonym,
                kind="access",
                received_at=received_at,
                due_at=due_at or received_at + timedelta(days=30),
                extended_to=extended_to,
                completed_at=completed_at,
                status="completed" if completed_at else "received",
                receipt={},
            )
            tx.session.add(row)
            tx.session.flush()
            tx.audit("dsr.received", "subject_request", str(row.id), {"kind": "access"})
            return int(row.id)

    def purge(self, now: datetime, *, delete_rows: bool = True, dry_run: bool = False) -> list:
        """Shred every expired bucket and write the purge receipt the purge job writes."""
        with self.store.session() as session:
            expired = list(
                session.scalars(
                    select(RetentionBucket.id).where(
                        RetentionBucket.expires_at.is_not(None),
                        RetentionBucket.expires_at <= now,
                    )
                )
            )
        shredded = [] if dry_run else self.store.shred_buckets(expired, now=now)
        rows = 0
        with self.store.transaction(now, actor="purge") as tx:
            if delete_rows and not dry_run and expired:
                result = tx.session.execute(
                    delete(RawSegment).where(RawSegment.bucket_id.in_(expired))
                )
                rows = int(result.rowcount or 0)
            tx.audit(
                "purge.receipt",
                "purge_run",
                "run-1",
                {
                    "run_id": 1,
                    "as_of": now.isoformat(),
                    "buckets_shredded": sorted(shredded),
                    "buckets_deleted": [] if dry_run or not delete_rows else sorted(expired),
                    "rows_deleted": rows,
                    "bytes_freed": 0,
                    "dry_run": dry_run,
                },
            )
        return expired

    def seal(self, now: datetime) -> None:
        """Sign the head, as every CLI command does on success."""
        self.runtime.now = now
        checkpoint_after_command(self.runtime)

    # -- checking ---------------------------------------------------------------------------
    def context(
        self, now: datetime, *, as_of: date | None = None, policy: Policy | None = None
    ) -> CheckContext:
        return CheckContext(
            runtime=self.runtime,
            policy=policy or self.policy,
            now=now,
            as_of=as_of or now.date(),
            event_id=None,
            policy_explicit=policy is not None,
        )

    def findings(
        self,
        now: datetime,
        only: Sequence[str] | None = None,
        *,
        sealed: bool = True,
        **kwargs: Any,
    ) -> list[Finding]:
        """The findings once the head is signed, as the CLI command that wrote it leaves it
        (an unsigned tail is an error of its own); ``sealed=False`` checks the raw state."""
        if sealed:
            checkpoint_after_command(self.runtime, now=now)
        return run_checks(self.context(now, **kwargs), only or OWN_RULES)

    def errors(self, now: datetime, **kwargs: Any) -> set[str]:
        """Ids of the rules with error findings."""
        return {f.rule_id for f in self.findings(now, **kwargs) if f.severity == "error"}


def clean_scene(runtime: Runtime, policy: str = "privacy-by-default", wristbands: int = 3) -> Scene:
    """An event with consenting wristbands, scores in the window and explained decisions."""
    scene = Scene(runtime, policy)
    for _ in range(wristbands):
        pseudonym = scene.wristband()
        for minute in (5, 35, 65):
            scene.score(pseudonym, STARTS + timedelta(minutes=minute))
    scene.score(None, STARTS + timedelta(minutes=10), kind="crowd_score")
    scene.decision(STARTS + timedelta(minutes=10))
    return scene


def by_rule(findings: list[Finding], rule_id: str) -> list[Finding]:
    return [f for f in findings if f.rule_id == rule_id]
