"""Artist control: what the performing artist may impose on the automatic selection.

``selection.artist_control`` in the policy says how much of it applies:

- ``none``: the selector alone decides; veto list, pinned pool and overrides are ignored;
- ``partial``: the **veto list** (tracks, or ``artist: Name`` lines) is never played, and picks
  come from the **pinned pool** (the tracks the artist agreed to play) while it lasts;
- ``full``: as partial, and the artist's **overrides** replace the automatic pick at the first
  decision at or after their time; such decisions are recorded as ``artist_override``.

Files: veto and pinned are text, one entry per line, ``#`` comments; overrides are TOML
``[[override]]`` tables with ``at`` (UTC time), ``track`` (id) and an optional ``note``.
Unknown track ids are refused with the file and line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from retention.errors import InputError
from retention.ground.times import coerce_utc
from retention.ground.tomlfile import read_toml

from .catalogue import Catalogue
from .event import ArtistFiles

__all__ = ["ARTIST_MODES", "ArtistControl", "Override", "load_artist_control"]

ARTIST_MODES = ("none", "partial", "full")


@dataclass(frozen=True)
class Override:
    at: datetime
    track: str
    note: str = ""


@dataclass
class ArtistControl:
    """The artist's constraints, already resolved against the catalogue."""

    mode: str
    name: str = ""
    vetoed: np.ndarray | None = None  # bool per catalogue track
    pinned: np.ndarray | None = None  # bool per catalogue track (None: no pool)
    overrides: list[Override] = field(default_factory=list)
    _used: set[int] = field(default_factory=set)

    def allowed(self, size: int) -> np.ndarray:
        """Tracks the selector may pick from under this mode (before played-track rules)."""
        ok = np.ones(size, bool)
        if self.mode in ("partial", "full") and self.vetoed is not None:
            ok &= ~self.vetoed
        return ok

    def pool(self, size: int) -> np.ndarray | None:
        if self.mode in ("partial", "full") and self.pinned is not None and self.pinned.any():
            return self.pinned
        return None

    def take_override(self, at: datetime) -> Override | None:
        """The earliest unused override due at ``at`` (full control only)."""
        if self.mode != "full":
            return None
        for i, item in enumerate(self.overrides):
            if i not in self._used and item.at <= at:
                self._used.add(i)
                return item
        return None

    def summary(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "vetoed_tracks": int(self.vetoed.sum()) if self.vetoed is not None else 0,
            "pinned_pool": int(self.pinned.sum()) if self.pinned is not None else 0,
            "overrides": len(self.overrides),
        }


def load_artist_control(files: ArtistFiles, catalogue: Catalogue, mode: str) -> ArtistControl:
    """Read the artist files named by the event (all optional) for the policy's mode."""
    if mode not in ARTIST_MODES:
        raise InputError(f"artist control {mode!r}; use one of {', '.join(ARTIST_MODES)}")
    control = ArtistControl(mode=mode, name=files.name)
    if files.veto is not None:
        control.vetoed = _track_mask(files.veto, catalogue, allow_artists=True)
        if control.vetoed.all():
            raise InputError(f"veto list '{files.veto}' vetoes every track of the catalogue, "
                             "so the selector would have nothing to play; leave one out")
    if files.pinned is not None:
        control.pinned = _track_mask(files.pinned, catalogue, allow_artists=False)
    if files.overrides is not None:
        control.overrides = _overrides(files.overrides, catalogue)
    return control


def _lines(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise InputError(f"artist file '{path}' does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"artist file '{path}' is not UTF-8 text") from None
    out = []
    for no, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if entry:
            out.append((no, entry))
    return out


def _track_mask(path: Path, catalogue: Catalogue, *, allow_artists: bool) -> np.ndarray:
    mask = np.zeros(len(catalogue), bool)
    artists = np.array(catalogue.artists())
    for no, entry in _lines(path):
        if entry.lower().startswith("artist:"):
            if not allow_artists:
                raise InputError(f"'{path}', line {no}: only track ids belong in a pinned pool")
            name = entry.split(":", 1)[1].strip()
            hit = artists == name
            if not hit.any():
                raise InputError(f"'{path}', line {no}: no artist {name!r} in the catalogue")
            mask |= hit
            continue
        idx = catalogue.index_of(entry)
        if idx is None:
            raise InputError(f"'{path}', line {no}: no track {entry!r} in the catalogue")
        mask[idx] = True
    return mask


def _overrides(path: Path, catalogue: Catalogue) -> list[Override]:
    data = read_toml(path, what=f"artist overrides file '{path}'")
    items = data.get("override", [])
    if not isinstance(items, list):
        raise InputError(f"artist overrides '{path}': use [[override]] tables")
    out = []
    for i, item in enumerate(items):
        where = f"artist overrides '{path}': override[{i}]"
        if not isinstance(item, dict) or set(item) - {"at", "track", "note"}:
            raise InputError(f"{where}: allowed keys are at, track, note")
        raw_at = item.get("at")
        if raw_at is None:
            raise InputError(f"{where}.at is required (an ISO 8601 UTC time)")
        try:
            at = coerce_utc(raw_at)
        except ValueError:
            raise InputError(f"{where}.at = {raw_at!r} is not an ISO 8601 time") from None
        track = str(item.get("track", ""))
        if catalogue.index_of(track) is None:
            raise InputError(f"{where}.track = {track!r} is not in the catalogue")
        out.append(Override(at=at, track=track, note=str(item.get("note", ""))))
    return sorted(out, key=lambda o: o.at)
