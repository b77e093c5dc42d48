"""Override, veto and pin from the console: the policy's rule, the row, the audit entry.

The rule is :mod:`pipeline.live.controls`' (``selection.artist_control``): ``none`` refuses
every control (``artist_control_none``), ``partial`` refuses overrides
(``artist_control_partial``) and takes vetoes and pins, ``full`` takes all three. A refused
control is stored and audited as well as an accepted one, each with who asked (the key's id,
label and role). A control naming a track (or artist) the catalogue does not have is refused
(``unknown_track`` / ``unknown_artist``) and audited, and not stored. A veto that would
leave the catalogue with no track the selector may play (with the event's accepted console
vetoes) is refused (``veto_leaves_no_track``, 409), stored and audited: with every track
vetoed the selector would have nothing to pick from but vetoed tracks.

Controls of one home are inserted one at a time (PostgreSQL: a transaction advisory lock), so
their ids grow in commit order and the stream's control cursor misses none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from pipeline.catalogue import Catalogue
from retention.ground.actions import Action
from retention.ground.console_rules import VETO_LEAVES_NO_TRACK, refusal_for
from retention.models import ConsoleControl
from retention.store import EncryptedStore

from .keys import KeyInfo
from .reader import EventView, Reader, control_json

__all__ = ["ControlOutcome", "submit_control", "refusal_for"]

_LOCK_KEY = 0x636F6E736F6C65  # "console": one lock for every control insert of a database


@dataclass(frozen=True)
class ControlOutcome:
    status: int  # 201 accepted, 403 refused by the policy, 404 unknown track/artist,
    # 409 a veto that leaves no track
    control: dict[str, Any] | None
    code: str | None = None
    message: str | None = None


def submit_control(store: EncryptedStore, reader: Reader, event: EventView, key: KeyInfo,
                   kind: str, *, track_id: str | None, artist: str | None,
                   now: datetime) -> ControlOutcome:
    """Check, store and audit one control (module docstring)."""
    catalogue = reader.catalogue_of(event.id)
    who = {"key": key.key_id, "label": key.label, "role": key.role}
    target = {"track_id": track_id} if track_id is not None else {"artist": artist}
    unknown: tuple[str, str] | None = None
    if track_id is not None and catalogue.index_of(track_id) is None:
        unknown = ("unknown_track", f"no track {track_id!r} in the catalogue; "
                                    "GET /v1/catalogue lists the track ids")
    elif artist is not None and artist not in set(catalogue.artists()):
        unknown = ("unknown_artist", "no artist of that name in the catalogue; "
                                     "GET /v1/catalogue lists the artists")
    with store.transaction(now, actor="console") as tx:
        if unknown is not None:
            tx.audit(Action.CONSOLE_CONTROL, "console_control", f"{event.id}:{kind}",
                     {"event": event.id, "kind": kind, "status": "refused",
                      "reason": unknown[0], **who})
            return ControlOutcome(404, None, *unknown)
        refusal = refusal_for(event.artist_control, kind)
        if tx.session.get_bind().dialect.name == "postgresql":
            tx.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        status = 403
        if (refusal is None and kind == "veto"
                and _vetoes_all(tx.session, event.id, catalogue, track_id, artist)):
            refusal, status = VETO_LEAVES_NO_TRACK, 409
        row = ConsoleControl(
            event_id=event.id, kind=kind, track_id=track_id, artist=artist,
            status="refused" if refusal else "accepted",
            reason=refusal[0] if refusal else None, key_id=key.key_id, by_label=key.label,
            by_role=key.role, created_at=now, applied_at=None)
        tx.session.add(row)
        tx.session.flush()
        tx.audit(Action.CONSOLE_CONTROL, "console_control", str(row.id),
                 {"event": event.id, "kind": kind, **target, "status": row.status,
                  "reason": row.reason, "artist_control": event.artist_control, **who})
        body = control_json(row)
    if refusal is not None:
        return ControlOutcome(status, body, refusal[0], refusal[1])
    return ControlOutcome(201, body)


def _vetoes_all(session: Session, event_id: str, catalogue: Catalogue, track_id: str | None,
                artist: str | None) -> bool:
    """Whether the event's accepted vetoes and this one cover the whole catalogue."""
    rows = session.execute(
        select(ConsoleControl.track_id, ConsoleControl.artist)
        .where(ConsoleControl.event_id == event_id, ConsoleControl.kind == "veto",
               ConsoleControl.status == "accepted")).all()
    artists = np.array(catalogue.artists())
    vetoed = np.zeros(len(catalogue), bool)
    for track, name in [*rows, (track_id, artist)]:
        idx = catalogue.index_of(track) if track else None
        if idx is not None:
            vetoed[idx] = True
        elif name:
            vetoed |= artists == name
    return bool(vetoed.all())
