"""What the console shows, read from what the live workers commit: the /v1 JSON shapes.

Everything here reads the store (``events``, ``live_crowd_windows``, ``decisions``,
``live_windows``, ``console_controls``, ``consents``, the retention buckets and the sealed
``crowd_score`` records) and never writes. ``horizon`` is the replay's clock: when set, rows
later than it on the event timeline are not shown yet (see :mod:`flowaudit.console.replay`).

Cursors are per table, and each grows in the order rows commit: crowd windows are stepped in
window order under the ``live_state`` lock, decisions are made inside those steps, console
controls are inserted under one advisory lock (PostgreSQL) or SQLite's single writer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipeline.catalogue import Catalogue
from pipeline.gates import DROP_REASONS
from retention.errors import PolicyError
from retention.ground.durations import format_duration
from retention.models import (
    BUCKET_ACTIVE,
    Consent,
    ConsoleControl,
    Decision,
    Event,
    LiveCrowdWindow,
    LiveState,
    LiveWindowRecord,
    MetadataRecord,
    RawSegment,
    RetentionBucket,
)
from retention.policy import Policy, load_policy
from retention.store import METADATA, RAW_AUDIO, EncryptedStore

__all__ = ["EventView", "Reader", "control_json", "iso"]

_TICK = timedelta(microseconds=1)


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


@dataclass(frozen=True)
class EventView:
    """One stored event and what its policy says about the console."""

    id: str
    name: str
    starts_at: datetime
    ends_at: datetime
    policy_name: str
    policy: Policy | None  # None: the stored policy is not in this installation

    @property
    def artist_control(self) -> str:
        return self.policy.selection.artist_control if self.policy is not None else "none"

    @property
    def threshold(self) -> float | None:
        return self.policy.selection.adaptive_flow_threshold if self.policy else None

    @property
    def scorers_allowed(self) -> bool:
        return bool(self.policy is not None and self.policy.selection.third_party_scorers)

    def as_json(self, mode: str) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "starts_at": iso(self.starts_at),
                "ends_at": iso(self.ends_at), "policy": self.policy_name,
                "artist_control": self.artist_control,
                "adaptive_flow_threshold": self.threshold,
                "third_party_scorers": self.scorers_allowed, "mode": mode}


class Reader:
    """Reads the console's shapes from one store; ``catalogues`` per event id, else the
    default catalogue."""

    def __init__(self, store: EncryptedStore, catalogue: Catalogue,
                 catalogues: Mapping[str, Catalogue] | None = None) -> None:
        self.store, self.catalogue = store, catalogue
        self.catalogues = dict(catalogues or {})
        self._policies: dict[tuple[str, str], Policy | None] = {}

    def catalogue_of(self, event_id: str) -> Catalogue:
        return self.catalogues.get(event_id, self.catalogue)

    # -- the event ---------------------------------------------------------------------------
    def event(self, event_id: str) -> EventView | None:
        with self.store.session() as session:
            row = session.get(Event, event_id)
            if row is None:
                return None
            return EventView(row.id, row.name, row.starts_at, row.ends_at, row.policy_name,
                             self._policy(row.policy_name, row.policy_sha256))

    def _policy(self, name: str, sha256: str) -> Policy | None:
        """The event's policy as stored: a file of that name whose hash differs is not it
        (the console then allows no controls)."""
        key = (name, sha256)
        if key not in self._policies:
            try:
                policy: Policy | None = load_policy(name)
            except PolicyError:
                policy = None
            if policy is not None and policy.sha256 != sha256:
                policy = None
            self._policies[key] = policy
        return self._policies[key]

    def track(self, event_id: str, track_id: str) -> dict[str, Any]:
        cat = self.catalogue_of(event_id)
        idx = cat.index_of(track_id)
        if idx is None:
            return {"track_id": track_id, "title": None, "artist": None}
        t = cat.tracks[idx]
        return {"track_id": t.id, "title": t.title, "artist": t.artist}

    # -- crowd -------------------------------------------------------------------------------
    def crowd_windows(self, event_id: str, after: int, horizon: datetime | None,
                      limit: int = 200) -> list[dict[str, Any]]:
        """Crowd steps after window ``after``, with their zones (the sealed crowd score)."""
        query = (select(LiveCrowdWindow).where(LiveCrowdWindow.event_id == event_id,
                                                LiveCrowdWindow.window > after)
                 .order_by(LiveCrowdWindow.window).limit(limit))
        if horizon is not None:
            query = query.where(LiveCrowdWindow.start_at <= horizon)
        with self.store.session() as session:
            rows = list(session.scalars(query))
        if not rows:
            return []
        zones = self._zones(event_id, rows[0].start_at, rows[-1].start_at)
        return [{"window": r.window, "at": iso(r.start_at),
                 "sentiment": None if r.crowd is None else round(float(r.crowd), 2),
                 "zones": zones.get(r.start_at, {}), "wristbands": int(r.wristbands)}
                for r in rows]

    def _zones(self, event_id: str, first: datetime, last: datetime
               ) -> dict[datetime, dict[str, float]]:
        out: dict[datetime, dict[str, float]] = {}
        for record in self.store.iter_metadata(now=_now(), event_id=event_id,
                                               kind="crowd_score", since=first,
                                               until=last + _TICK):
            zones = record.payload.get("zones") or {}
            out[record.start_at] = {str(k): round(float(v), 2) for k, v in zones.items()
                                    if v is not None}
        return out

    def last_crowd(self, event_id: str, horizon: datetime | None) -> dict[str, Any] | None:
        query = (select(LiveCrowdWindow.window).where(LiveCrowdWindow.event_id == event_id)
                 .order_by(LiveCrowdWindow.window.desc()).limit(1))
        if horizon is not None:
            query = query.where(LiveCrowdWindow.start_at <= horizon)
        with self.store.session() as session:
            window = session.scalar(query)
        if window is None:
            return None
        rows = self.crowd_windows(event_id, window - 1, horizon, limit=1)
        return rows[0] if rows else None

    # -- decisions ---------------------------------------------------------------------------
    def decisions(self, event_id: str, after: int, horizon: datetime | None,
                  limit: int = 100) -> list[dict[str, Any]]:
        query = (select(Decision).where(Decision.event_id == event_id, Decision.id > after)
                 .order_by(Decision.id).limit(limit))
        if horizon is not None:
            query = query.where(Decision.decided_at <= horizon)
        with self.store.session() as session:
            rows = list(session.scalars(query))
        return [self._decision(event_id, r) for r in rows]

    def last_decision(self, event_id: str, horizon: datetime | None) -> dict[str, Any] | None:
        query = (select(Decision).where(Decision.event_id == event_id)
                 .order_by(Decision.id.desc()).limit(1))
        if horizon is not None:
            query = query.where(Decision.decided_at <= horizon)
        with self.store.session() as session:
            row = session.scalars(query).first()
            return None if row is None else self._decision(event_id, row)

    def _decision(self, event_id: str, row: Decision) -> dict[str, Any]:
        params = dict(row.parameters or {})
        return {"id": row.id, "at": iso(row.decided_at), **self.track(event_id, row.track_id),
                "crowd_sentiment": row.crowd_sentiment, "adaptive_flow": bool(row.adaptive_flow),
                "artist_override": bool(row.artist_override), "explanation": row.explanation,
                "parameters": params, "inputs": dict(row.inputs or {})}

    # -- controls ----------------------------------------------------------------------------
    def controls(self, event_id: str, after: int = 0, horizon: datetime | None = None,
                 limit: int = 500) -> list[dict[str, Any]]:
        query = (select(ConsoleControl).where(ConsoleControl.event_id == event_id,
                                              ConsoleControl.id > after)
                 .order_by(ConsoleControl.id).limit(limit))
        if horizon is not None:
            query = query.where(ConsoleControl.created_at <= horizon)
        with self.store.session() as session:
            return [control_json(r) for r in session.scalars(query)]

    # -- privacy -----------------------------------------------------------------------------
    def privacy(self, event: EventView, horizon: datetime | None) -> dict[str, Any]:
        now = _now()
        with self.store.session() as session:
            consents = dict(session.execute(
                select(Consent.status, func.count()).where(Consent.event_id == event.id)
                .group_by(Consent.status)).all())
            drops = self._drops(session, event.id, horizon)
            streaming = self._streaming(session, event.id, horizon)
            stored = [self._stored(session, event, category, model, now)
                      for category, model in ((RAW_AUDIO, RawSegment),
                                              (METADATA, MetadataRecord))]
        retention = event.policy.retention if event.policy is not None else None
        stored.append({"category": "audit_log", "records": None,
                       "retention": format_duration(retention.audit_log) if retention else None,
                       "next_expiry": None, "expires_in_seconds": None})
        return {"wristbands": {"registered": int(sum(consents.values())),
                               "consenting": int(consents.get("opted_in", 0)),
                               "streaming": streaming},
                "drops": drops, "stored": stored, "policy": event.policy_name}

    @staticmethod
    def _drops(session: Session, event_id: str, horizon: datetime | None) -> dict[str, int]:
        sums = [func.coalesce(func.sum(LiveWindowRecord.drops[r].as_integer()), 0)
                for r in DROP_REASONS]
        query = select(*sums).where(LiveWindowRecord.event_id == event_id)
        if horizon is not None:
            query = query.where(LiveWindowRecord.start_at <= horizon)
        row = session.execute(query).one()
        return {reason: int(v or 0) for reason, v in zip(DROP_REASONS, row, strict=True)}

    @staticmethod
    def _streaming(session: Session, event_id: str, horizon: datetime | None) -> int:
        """Wristbands whose frames reached a worker in the last two committed windows."""
        last = select(func.max(LiveWindowRecord.window)).where(
            LiveWindowRecord.event_id == event_id)
        if horizon is not None:
            last = last.where(LiveWindowRecord.start_at <= horizon)
        top = session.scalar(last)
        if top is None:
            return 0
        return int(session.scalar(
            select(func.count(func.distinct(LiveWindowRecord.subject_pseudonym)))
            .where(LiveWindowRecord.event_id == event_id, LiveWindowRecord.window >= top - 1,
                   LiveWindowRecord.window <= top, LiveWindowRecord.frames_received > 0)) or 0)

    @staticmethod
    def _stored(session: Session, event: EventView, category: str, model: Any,
                now: datetime) -> dict[str, Any]:
        live = ((RetentionBucket.event_id == event.id) & (RetentionBucket.category == category)
                & (RetentionBucket.state == BUCKET_ACTIVE))
        records = session.scalar(
            select(func.count()).select_from(model).join(
                RetentionBucket, RetentionBucket.id == model.bucket_id)
            .where(live, (model.expires_at.is_(None)) | (model.expires_at > now))) or 0
        expiry = session.scalar(select(func.min(model.expires_at)).where(
            model.event_id == event.id, model.expires_at > now))
        retention = event.policy.retention_for(category) if event.policy is not None else None
        return {"category": category, "records": int(records),
                "retention": format_duration(retention) if event.policy is not None else None,
                "next_expiry": iso(expiry),
                "expires_in_seconds": None if expiry is None
                else round((expiry - now).total_seconds(), 1)}

    def live_state_window(self, event_id: str) -> int | None:
        with self.store.session() as session:
            row = session.get(LiveState, event_id)
            return None if row is None else int(row.crowd_window)


def control_json(row: ConsoleControl) -> dict[str, Any]:
    status = "applied" if row.applied_at is not None else row.status
    return {"id": row.id, "kind": row.kind, "track_id": row.track_id, "artist": row.artist,
            "by": row.by_label, "role": row.by_role, "at": iso(row.created_at),
            "status": status, "reason": row.reason, "applied_at": iso(row.applied_at)}


def _now() -> datetime:
    return datetime.now(UTC)
