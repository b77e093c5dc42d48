"""Generalisation hierarchies for quasi-identifiers, as ``[reid.hierarchies]`` writes them.

Private to `retention` (the anonymisation step needs them and may not import `audit`). The
level syntax and labels follow `audit.reid_hierarchies`, so what the purge keeps reads the
same way in a re-identification report::

    "*"        suppress: every value becomes "*" (last level only)
    "15m" "1h" "1d"   time buckets; labels 2026-06-21T20:00Z, or 2026-06-21 from a day up
    "10y"      age bands on a grid from 0 (25-34 at 10y -> 20-39; 55+ -> 50+)
    "area"     zone -> area: the part before the last "/", else the name without its number
    "prefix:N" the first N characters
    {a = "x"}  an explicit mapping; unlisted values become "*"

Level 0 is the stored value; level i applies the first i steps. A level that cannot read a
value turns it into "*": when anonymising, an unreadable value must err on the side of privacy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["SUPPRESSED", "Level", "Hierarchy", "hierarchy_for", "zone_area"]

SUPPRESSED = "*"
_DAY = 86_400
_TIME = re.compile(r"^(\d+)([mhd])$")
_AGE = re.compile(r"^(\d+)y$")
_PREFIX = re.compile(r"^prefix:(\d+)$")
_UNIT = {"m": 60, "h": 3600, "d": _DAY}
_BAND = re.compile(r"^\s*(\d+)\s*[-–]\s*(\d+)\s*$")
_OPEN = re.compile(r"^\s*(\d+)\s*\+\s*$")
_UNDER = re.compile(r"^\s*<\s*(\d+)\s*$")
_NUMBER = re.compile(r"^\s*(\d+)\s*$")
_ZONE_NUMBER = re.compile(r"^(.*?[^\d\s_.-])[\s_.-]*\d+$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def zone_area(zone: str) -> str:
    """``stage/front`` -> ``stage``; ``A1``, ``A-12`` -> ``A``; a plain name is its own area."""
    text = str(zone).strip()
    if "/" in text:
        return text.rsplit("/", 1)[0].strip() or text
    match = _ZONE_NUMBER.match(text)
    return match.group(1) if match else text


def _time_label(value: Any, step: int) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return SUPPRESSED
    if not isinstance(value, datetime):
        return SUPPRESSED
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = int((value - _EPOCH).total_seconds()) // step * step
    floored = _EPOCH + timedelta(seconds=seconds)
    return f"{floored:%Y-%m-%d}" if step % _DAY == 0 else f"{floored:%Y-%m-%dT%H:%M}Z"


def _age_label(value: Any, width: int) -> str:
    text = str(value)
    low: int
    high: int | None
    if (m := _BAND.match(text)) is not None and int(m[1]) <= int(m[2]):
        low, high = int(m[1]), int(m[2])
    elif (m := _OPEN.match(text)) is not None:
        low, high = int(m[1]), None
    elif (m := _UNDER.match(text)) is not None and int(m[1]) > 0:
        low, high = 0, int(m[1]) - 1
    elif (m := _NUMBER.match(text)) is not None:
        low = high = int(m[1])
    else:
        return SUPPRESSED
    start = low // width * width
    if high is None:
        return f"{start}+"
    return f"{start}-{(high // width + 1) * width - 1}"


@dataclass(frozen=True)
class Level:
    """One generalisation step: ``kind`` is time|age|area|prefix|map|suppress."""

    kind: str
    spec: str
    size: int = 0
    mapping: Mapping[str, str] = field(default_factory=dict)

    def apply(self, value: Any) -> Any:
        if self.kind == "suppress":
            return SUPPRESSED
        if value is None or value == SUPPRESSED:
            return value
        if self.kind == "time":
            return _time_label(value, self.size)
        if self.kind == "age":
            return _age_label(value, self.size)
        if self.kind == "area":
            return zone_area(value)
        if self.kind == "prefix":
            return str(value)[: self.size]
        return self.mapping.get(str(value), SUPPRESSED)


def _parse_level(token: Any) -> Level:
    if isinstance(token, Mapping):
        return Level("map", "map", mapping={str(k): str(v) for k, v in token.items()})
    text = str(token).strip()
    if (m := _TIME.match(text)) is not None and int(m[1]) > 0:
        return Level("time", text, int(m[1]) * _UNIT[m[2]])
    if (m := _AGE.match(text)) is not None and int(m[1]) > 0:
        return Level("age", text, int(m[1]))
    if (m := _PREFIX.match(text)) is not None:
        return Level("prefix", text, int(m[1]))
    if text == "area":
        return Level("area", text)
    return Level("suppress", SUPPRESSED)  # "*" or anything unreadable: the safe choice


@dataclass(frozen=True)
class Hierarchy:
    """The ladder of one quasi-identifier; ``levels[i - 1]`` takes level i-1 to level i."""

    column: str
    levels: tuple[Level, ...]

    @property
    def height(self) -> int:
        return len(self.levels)

    def label(self, level: int) -> str:
        return "as stored" if level == 0 else self.levels[level - 1].spec

    def generalise(self, value: Any, level: int) -> Any:
        for step in self.levels[:level]:
            value = step.apply(value)
        return value

    def first_level_at_least(self, seconds: int) -> int:
        """The lowest level that is a time step of ``seconds`` or coarser (or suppression)."""
        for index, step in enumerate(self.levels, start=1):
            if step.kind != "time" or step.size >= seconds:
                return index
        return self.height


def hierarchy_for(column: str, spec: Sequence[Any] | None, *, is_time: bool) -> Hierarchy:
    """The policy's ladder for ``column``; without one, time gets 1h/1d/* and the rest "*"."""
    if not spec or isinstance(spec, str):
        spec = ["1h", "1d", SUPPRESSED] if is_time else [SUPPRESSED]
    levels = tuple(_parse_level(token) for token in spec)
    if levels[-1].kind != "suppress":
        levels += (Level("suppress", SUPPRESSED),)  # the top of every ladder is "*"
    return Hierarchy(column, levels)
