"""The console's live controls, applied by the crowd step before it decides (issue 12).

The DJ console stores each accepted override, veto and pin in ``console_controls`` (migration
0006); every crowd step reads them in its own transaction and adds them to the selector's
:class:`~pipeline.artist.ArtistControl`, under the policy's ``selection.artist_control``
exactly as :mod:`pipeline.artist` defines the modes:

- ``none``: nothing applies (the console refuses such controls anyway);
- ``partial``: vetoes (a track, or every track of an artist) and pins (the pinned pool);
- ``full``: as partial, and overrides, each replacing the automatic pick at the next decision.

Overrides are appended after the event file's own, in the order they were stored (ids only
grow, a stored control is never removed), so the indices ``ArtistControl._used`` carries
from step to step keep naming the same overrides. An override the previous steps used is
marked ``applied_at`` here. A control naming a track the catalogue no longer has is skipped.

``pipeline`` does not import ``retention.models``: the table is reached with SQL expressions
of its own, as :mod:`pipeline.live.tokens` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import sqlalchemy as sa

from retention.ground.console_rules import CONTROL_KINDS, KINDS_BY_MODE, allowed_kinds
from retention.store import StoreTransaction

from ..artist import ArtistControl, Override
from ..catalogue import Catalogue

__all__ = ["CONTROL_KINDS", "KINDS_BY_MODE", "StoredControl", "apply_live_controls",
           "allowed_kinds", "merge_controls"]

#: a console override is due at the first decision after it is stored
_DUE = datetime(1970, 1, 1, tzinfo=UTC)

CONTROLS = sa.table(
    "console_controls",
    sa.column("id", sa.Integer),
    sa.column("event_id", sa.String),
    sa.column("kind", sa.String),
    sa.column("track_id", sa.String),
    sa.column("artist", sa.String),
    sa.column("status", sa.String),
    sa.column("by_label", sa.String),
    sa.column("applied_at", sa.DateTime(timezone=True)),
)


@dataclass(frozen=True)
class StoredControl:
    """One accepted console control as the crowd step reads it."""

    id: int
    kind: str
    track_id: str | None
    artist: str | None
    label: str
    applied: bool = False


def apply_live_controls(tx: StoreTransaction, event_id: str, artist: ArtistControl,
                        at: datetime, *, catalogue: Catalogue) -> None:
    """Add the event's accepted console controls to ``artist`` (module docstring)."""
    kinds = allowed_kinds(artist.mode)
    if not kinds:
        return
    rows = tx.session.execute(
        sa.select(CONTROLS.c.id, CONTROLS.c.kind, CONTROLS.c.track_id, CONTROLS.c.artist,
                  CONTROLS.c.by_label, CONTROLS.c.applied_at)
        .where(CONTROLS.c.event_id == event_id, CONTROLS.c.status == "accepted",
               CONTROLS.c.kind.in_(kinds))
        .order_by(CONTROLS.c.id)
    ).all()
    if not rows:
        return
    controls = [StoredControl(int(r[0]), str(r[1]), r[2], r[3], str(r[4]), r[5] is not None)
                for r in rows]
    used = merge_controls(artist, controls, catalogue)
    if used:
        tx.session.execute(sa.update(CONTROLS).where(CONTROLS.c.id.in_(used))
                           .values(applied_at=at))


def merge_controls(artist: ArtistControl, controls: list[StoredControl],
                   catalogue: Catalogue) -> list[int]:
    """Add ``controls`` (in id order) to ``artist`` under its mode; return the ids of console
    overrides the earlier steps used that are not marked applied yet."""
    kinds = allowed_kinds(artist.mode)
    size = len(catalogue)
    artists = np.array(catalogue.artists())
    base = len(artist.overrides)
    overrides: list[tuple[StoredControl, Override]] = []
    for control in controls:
        if control.kind not in kinds:
            continue
        idx = catalogue.index_of(control.track_id) if control.track_id else None
        if control.kind == "veto":
            mask = _mask(artist.vetoed, size)
            if idx is not None:
                mask[idx] = True
            elif control.artist:
                mask |= artists == control.artist
            artist.vetoed = mask
        elif control.kind == "pin" and idx is not None:
            mask = _mask(artist.pinned, size)
            mask[idx] = True
            artist.pinned = mask
        elif control.kind == "override" and idx is not None:
            note = f"console #{control.id} by {control.label}"
            overrides.append((control, Override(_DUE, str(control.track_id), note)))
    artist.overrides = [*artist.overrides, *(o for _, o in overrides)]
    return [c.id for i, (c, _) in enumerate(overrides)
            if base + i in artist._used and not c.applied]


def _mask(current: np.ndarray | None, size: int) -> np.ndarray:
    return np.zeros(size, bool) if current is None else current.copy()
