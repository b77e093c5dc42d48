"""The track catalogue: id, title, artist, energy, valence, bpm and a mood-recovery flag.

CSV (header row), JSON (a list of objects, or ``{"tracks": [...]}``) or TOML (``[[tracks]]``).
Every row is checked; the first bad value raises one :class:`InputError` naming the file, the
row and the column. Columns are also kept as numpy arrays so the selector scores the whole
catalogue in one vectorised pass.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retention.errors import InputError
from retention.ground.tomlfile import read_toml

__all__ = ["Track", "Catalogue", "load_catalogue", "COLUMNS"]

COLUMNS = ("id", "title", "artist", "energy", "valence", "bpm", "recovery", "duration_s")
_REQUIRED = COLUMNS[:7]


@dataclass(frozen=True)
class Track:
    id: str
    title: str
    artist: str
    energy: float
    valence: float
    bpm: float
    recovery: bool
    duration_s: int = 210


@dataclass
class Catalogue:
    """Tracks in file order, with column arrays for vectorised scoring."""

    source: str
    tracks: list[Track]
    energy: np.ndarray = field(init=False, repr=False)
    valence: np.ndarray = field(init=False, repr=False)
    bpm: np.ndarray = field(init=False, repr=False)
    recovery: np.ndarray = field(init=False, repr=False)
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.energy = np.array([t.energy for t in self.tracks])
        self.valence = np.array([t.valence for t in self.tracks])
        self.bpm = np.array([t.bpm for t in self.tracks])
        self.recovery = np.array([t.recovery for t in self.tracks], bool)
        self._index = {t.id: i for i, t in enumerate(self.tracks)}

    def __len__(self) -> int:
        return len(self.tracks)

    def index_of(self, track_id: str) -> int | None:
        return self._index.get(track_id)

    def artists(self) -> list[str]:
        return [t.artist for t in self.tracks]


def _read_rows(path: Path, where: str) -> list[Any]:
    """The track rows of a CSV or JSON catalogue."""
    if not path.is_file():
        raise InputError(f"{where} does not exist")
    if path.suffix not in (".csv", ".json"):
        raise InputError(f"{where}: unknown format {path.suffix!r}; use .csv, .json or .toml")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".csv":
            return list(csv.DictReader(text.splitlines()))
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError, csv.Error) as exc:
        raise InputError(f"{where}: cannot be parsed ({type(exc).__name__}: {exc})") from None
    rows: list[Any] = data.get("tracks", []) if isinstance(data, dict) else data
    return rows


def load_catalogue(path: str | Path) -> Catalogue:
    path = Path(path)
    where = f"catalogue '{path}'"
    if path.suffix == ".toml":
        rows: list[Any] = read_toml(path, what=where).get("tracks", [])
    else:
        rows = _read_rows(path, where)
    if not isinstance(rows, list) or not rows:
        raise InputError(f"{where}: holds no tracks")
    tracks = [_track(where, i + 1, row) for i, row in enumerate(rows)]
    ids = [t.id for t in tracks]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"{where}: track id {dup!r} appears twice")
    return Catalogue(str(path), tracks)


def _track(where: str, row_no: int, row: Any) -> Track:
    if not isinstance(row, dict):
        raise InputError(f"{where}: row {row_no} is not a table of columns")
    missing = [c for c in _REQUIRED if row.get(c) in (None, "")]
    if missing:
        raise InputError(f"{where}: row {row_no} has no {missing[0]!r}")

    def number(col: str, low: float, high: float) -> float:
        value = row[col]
        try:
            num = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{where}: row {row_no}, {col} = {value!r} is not a number") from None
        if not low <= num <= high:
            raise InputError(
                f"{where}: row {row_no}, {col} = {value!r} is outside {low:g}..{high:g}"
            )
        return num

    flag = row["recovery"]
    if isinstance(flag, str):
        if flag.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise InputError(f"{where}: row {row_no}, recovery = {flag!r}; use true or false")
        flag = flag.strip().lower() in ("true", "1", "yes")
    return Track(
        id=str(row["id"]).strip(),
        title=str(row["title"]).strip(),
        artist=str(row["artist"]).strip(),
        energy=number("energy", 0, 1),
        valence=number("valence", 0, 1),
        bpm=number("bpm", 40, 220),
        recovery=bool(flag),
        duration_s=int(number("duration_s", 30, 1200)) if row.get("duration_s") else 210,
    )
