"""Third-party scorers: a gated, pseudonymous feed of feature windows, and scores posted back.

Gated: only an event whose policy sets ``selection.third_party_scorers = true`` serves it
(``third_party_scorers_off`` otherwise), only to a ``scorer`` key of that event. The feed is
the features the worker sealed in each ``window_score`` record (decrypted here), for windows
the crowd step has taken: never audio, never a serial, never the store's pseudonym. Each key
sees its own pseudonym of a wristband (HMAC-SHA256 under the key's random salt), so two
scorers cannot join their feeds on the wristband, and a leaked feed names no stored row.

A posted score (0-100, for a window and a subject of the key's own feed: a window the crowd
step has taken, as the feed serves) is stored as a sealed ``third_party_score`` metadata
record of that wristband, under the policy's metadata retention, and audited
(``console.score``: the key, its label, how many, which windows). A post naming one window
and subject twice is refused whole (:func:`duplicate_of`): which of the two would count?
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from retention.errors import InputError
from retention.ground.actions import Action
from retention.models import LiveState, LiveWindowRecord, MetadataRecord
from retention.store import EncryptedStore

from .keys import KeyInfo
from .reader import EventView, iso

__all__ = ["FEED_WINDOWS", "SCORE_KIND", "Posted", "feature_windows", "window_objects",
           "subject_of", "duplicate_of", "store_scores", "count_scores"]

FEED_WINDOWS = 20  # windows per page of the feed
SCORE_KIND = "third_party_score"


def subject_of(key: KeyInfo, pseudonym: str) -> str:
    """The pseudonym a scorer key sees for a wristband (module docstring)."""
    mac = hmac.new(bytes.fromhex(key.pseudonym_salt), pseudonym.encode(), hashlib.sha256)
    return mac.hexdigest()[:24]


def _stepped(session: Any, event_id: str) -> int:
    row = session.get(LiveState, event_id)
    return -1 if row is None else int(row.crowd_window)


def feature_windows(store: EncryptedStore, event: EventView, key: KeyInfo, after: int,
                    now: datetime, horizon: datetime | None = None) -> dict[str, Any]:
    """One page of the feed after window ``after``: ``{"cursor", "windows": [...]}``."""
    with store.transaction(now, actor="console") as tx:
        stepped = _stepped(tx.session, event.id)
        until = min(stepped, after + FEED_WINDOWS)
        query = (select(LiveWindowRecord)
                 .where(LiveWindowRecord.event_id == event.id,
                        LiveWindowRecord.window > after, LiveWindowRecord.window <= until,
                        LiveWindowRecord.score_record_id.is_not(None))
                 .order_by(LiveWindowRecord.window, LiveWindowRecord.id))
        if horizon is not None:
            query = query.where(LiveWindowRecord.start_at <= horizon)
        windows = window_objects(tx, key, list(tx.session.scalars(query)))
    if horizon is not None:  # a replay: the page ends where the replay's clock is
        cursor = windows[-1]["window"] if windows else after
    else:
        cursor = max(after, until)
    return {"cursor": cursor, "windows": windows, "stepped": stepped}


def window_objects(tx: Any, key: KeyInfo, rows: Sequence[LiveWindowRecord]
                   ) -> list[dict[str, Any]]:
    """The feed's window objects of ``rows``, in ``tx`` (a store transaction), in window order
    and within a window in the order of this key's pseudonyms (row order is the same for
    every key and would pair two scorers' subjects by position); a row whose record expired
    or was shredded since is left out (never served)."""
    records = {r.id: r for r in tx.read_metadata([str(r.score_record_id) for r in rows])}
    out = []
    for row in rows:
        record = records.get(str(row.score_record_id))
        if record is None:
            continue
        payload = record.payload
        out.append({"window": row.window, "start_at": iso(row.start_at),
                    "subject": subject_of(key, row.subject_pseudonym),
                    "zone": payload.get("zone"),
                    "features": dict(payload.get("features") or {}),
                    "frames": int(payload.get("frames") or 0)})
    return sorted(out, key=lambda w: (w["window"], w["subject"]))


def duplicate_of(pairs: Sequence[tuple[int, str]]) -> tuple[int, int] | None:
    """The indices of the first two ``(window, subject)`` pairs that are the same, if any."""
    seen: dict[tuple[int, str], int] = {}
    for i, pair in enumerate(pairs):
        if pair in seen:
            return seen[pair], i
        seen[pair] = i
    return None


@dataclass(frozen=True)
class Posted:
    stored: int
    unknown: list[int]  # indices of scores naming no window/subject of this key's feed


def store_scores(store: EncryptedStore, event: EventView, key: KeyInfo,
                 scores: Sequence[tuple[int, str, float]], now: datetime) -> Posted:
    """Store ``(window, subject, score)`` triples as sealed records (module docstring);
    nothing is stored if any names no window of the feed, or if two name the same one."""
    twice = duplicate_of([(w, s) for w, s, _ in scores])
    if twice is not None:
        raise InputError(f"scores {twice[0]} and {twice[1]} name the same window and subject; "
                         "send one score for each")
    assert event.policy is not None  # the route gates on third_party_scorers
    with store.transaction(now, actor="console") as tx:
        stepped = _stepped(tx.session, event.id)  # the feed serves no window after it
        windows = sorted({w for w, _, _ in scores if w <= stepped})
        rows = list(tx.session.execute(
            select(LiveWindowRecord.window, LiveWindowRecord.subject_pseudonym,
                   LiveWindowRecord.start_at, LiveWindowRecord.score_record_id)
            .where(LiveWindowRecord.event_id == event.id,
                   LiveWindowRecord.window.in_(windows),
                   LiveWindowRecord.score_record_id.is_not(None))).all())
        asked = {(w, s) for w, s, _ in scores}
        named = {(w, subject_of(key, p)): (p, at, str(rid)) for w, p, at, rid in rows}
        named = {pair: row for pair, row in named.items() if pair in asked}
        # as the feed: a window whose record expired or was erased since is not in it (and
        # sealing a score under an erased wristband's destroyed key would say so)
        readable = {r.id for r in tx.read_metadata([rid for _, _, rid in named.values()])}
        known = {pair: (p, at) for pair, (p, at, rid) in named.items() if rid in readable}
        unknown = [i for i, (w, s, _) in enumerate(scores) if (w, s) not in known]
        if unknown:
            return Posted(0, unknown)
        for window, subject, score in scores:
            pseudonym, start_at = known[(window, subject)]
            tx.put_metadata(event_id=event.id, pseudonym=pseudonym, kind=SCORE_KIND,
                            start_at=start_at,
                            payload={"score": round(float(score), 2), "window": window,
                                     "scorer_key": key.key_id, "scorer": key.label},
                            retention=event.policy.retention.metadata)
        tx.audit(Action.CONSOLE_SCORE, "console_key", key.key_id,
                 {"event": event.id, "label": key.label, "scores": len(scores),
                  "windows": [windows[0], windows[-1]] if windows else []})
    return Posted(len(scores), [])


def count_scores(store: EncryptedStore, event_id: str) -> int:
    """How many posted scores an event has stored (readable or not)."""
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(MetadataRecord).where(
            MetadataRecord.event_id == event_id, MetadataRecord.kind == SCORE_KIND)) or 0)
