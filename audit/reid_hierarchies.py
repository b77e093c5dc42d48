"""Generalisation hierarchies for quasi-identifiers, as a policy writes them.

A hierarchy is the ladder of ever coarser values an attribute may be recoded to before data
leaves flowaudit. Level 0 is always the value as stored; every entry of the policy list is one
step up::

    [reid.hierarchies]
    arrival_bucket = ["15m", "1h", "1d", "*"]   # time: 15-minute, hourly, daily buckets, then gone
    age_band = ["10y", "20y", "*"]              # age: 10- and 20-year bands
    zone = ["area", "*"]                        # zone "A1" -> area "A"
    ticket_type = ["*"]                         # a quasi-identifier without a list gets ["*"]

Level syntax (one kind per list; ``"*"`` may end any list):

==================  ===========================================================================
``"*"``             suppress the attribute: every value becomes ``*``. Must be the last level.
``"15m"`` ``"1h"``  time buckets (``m``/``h``/``d``): floor to the step, labelled by the bucket
``"1d"``            start (``2026-06-21T20:15Z``, or ``2026-06-21`` from one day up; ``HH:MM``
                    for time-of-day data). Each step a whole multiple of the one before; steps
                    under a day divide a day.
``"10y"``           age bands N years wide on a grid from 0 (``20-29``; ``50+`` for an open top
                    band). A stored band that straddles the grid becomes the smallest run of
                    grid cells containing it (``25-34`` at 10y -> ``20-39``), so a generalised
                    value is always true. Each width a whole multiple of the one before.
``"area"``          zone -> area: the part before the last ``/`` (``stage/front`` -> ``stage``),
                    else the name without its trailing number (``A1``, ``A-12`` -> ``A``;
                    ``north 3`` -> ``north``). A zone with neither is its own area.
``"prefix:3"``      keep the first N characters (postcodes ``75011`` -> ``750``); N decreasing.
``{a = "x", …}``    an explicit mapping (an inline TOML table); values it does not list become
                    ``*``, so an incomplete mapping errs on the side of privacy.
==================  ===========================================================================

Each level is applied to the output of the one below it, so level ``i + 1`` is always a function
of level ``i`` — the property the lattice search (:mod:`audit.reid_lattice`) relies on. Missing
values stay missing until ``"*"``. Bad specs raise :class:`PolicyError` naming the policy file,
the key and the value; values a level cannot read raise :class:`InputError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from retention.errors import InputError, PolicyError

__all__ = [
    "SUPPRESSED",
    "Level",
    "Hierarchy",
    "parse_hierarchy",
    "parse_hierarchies",
    "hierarchies_from_policy",
    "hierarchy_for",
    "zone_area",
    "generalise_frame",
]

SUPPRESSED = "*"
_DAY = 86_400
_TIME = re.compile(r"^(\d+)([mhd])$")
_AGE = re.compile(r"^(\d+)y$")
_PREFIX = re.compile(r"^prefix:(\d+)$")
_UNIT = {"m": 60, "h": 3600, "d": _DAY}
_TIME_OF_DAY = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")
_BAND = re.compile(r"^\s*(\d+)\s*[-–]\s*(\d+)\s*$")
_OPEN = re.compile(r"^\s*(\d+)\s*\+\s*$")
_UNDER = re.compile(r"^\s*<\s*(\d+)\s*$")
_AGE_NUMBER = re.compile(r"^\s*(\d+)(?:\.0+)?\s*$")
_ZONE_NUMBER = re.compile(r"^(.*?[^\d\s_.-])[\s_.-]*\d+$")


def zone_area(zone: str) -> str:
    """The area a zone belongs to (see the module docstring for the convention)."""
    text = str(zone).strip()
    if "/" in text:
        head = text.rsplit("/", 1)[0].strip()
        return head or text
    match = _ZONE_NUMBER.match(text)
    return match.group(1) if match else text


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value is pd.NA


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class Level:
    """One step of a hierarchy: ``kind`` is time|age|area|prefix|map|suppress."""

    kind: str
    spec: str
    size: int = 0  # seconds (time), years (age), characters (prefix)
    mapping: Mapping[str, str] = field(default_factory=dict)

    def apply(self, values: np.ndarray, column: str) -> np.ndarray:
        """Generalise an object array of (distinct) values by this one step."""
        out = np.empty(len(values), dtype=object)
        if self.kind == "suppress":
            out[:] = SUPPRESSED
            return out
        present = np.array([not _is_missing(v) for v in values], dtype=bool)
        out[~present] = None
        kept = values[present]
        if self.kind == "time":
            out[present] = _time_level(kept, self.size, column)
        elif self.kind == "age":
            out[present] = [_age_level(v, self.size, column) for v in kept]
        elif self.kind == "area":
            out[present] = [zone_area(v) for v in kept]
        elif self.kind == "prefix":
            out[present] = [str(v)[: self.size] for v in kept]
        elif self.kind == "map":
            out[present] = [self.mapping.get(str(v), SUPPRESSED) for v in kept]
        else:  # pragma: no cover - kinds are fixed by the parser
            raise ValueError(self.kind)
        return out


@dataclass(frozen=True)
class Hierarchy:
    """The ladder of one attribute; ``height`` levels above the stored value."""

    column: str
    levels: tuple[Level, ...]

    @property
    def height(self) -> int:
        return len(self.levels)

    def label(self, level: int) -> str:
        """How a level is written in reports: ``as stored``, ``1h``, ``*`` ..."""
        if level == 0:
            return "as stored"
        return self.levels[level - 1].spec

    def ladder(self, values: np.ndarray) -> list[np.ndarray]:
        """``values`` at every level 0..height (each level computed from the one below)."""
        current = np.asarray(values, dtype=object)
        out = [current]
        for step in self.levels:
            current = step.apply(current, self.column)
            out.append(current)
        return out

    def generalise(self, values: np.ndarray, level: int) -> np.ndarray:
        """``values`` at one level."""
        if not 0 <= level <= self.height:
            raise InputError(
                f"level {level} of {self.column!r} does not exist; it has levels 0..{self.height}"
            )
        current = np.asarray(values, dtype=object)
        for step in self.levels[:level]:
            current = step.apply(current, self.column)
        return current


# -- value parsing ---------------------------------------------------------------------------


def _time_level(values: np.ndarray, step: int, column: str) -> list[str]:
    texts = [v.isoformat() if hasattr(v, "isoformat") else str(v) for v in values]
    clock = [_TIME_OF_DAY.match(t) for t in texts]
    if texts and all(clock):
        seconds = np.array(
            [int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3] or 0) for m in clock if m],
            dtype=np.int64,
        )
        if step >= _DAY:
            return [SUPPRESSED] * len(texts)
        floored = seconds // step * step
        return [f"{s // 3600:02d}:{s % 3600 // 60:02d}" for s in floored]
    try:
        stamps = pd.to_datetime(pd.Series(texts, dtype=object), utc=True, format="ISO8601")
    except (ValueError, TypeError):
        bad = next((t for t in texts if not _parses_as_time(t)), texts[0] if texts else "")
        raise InputError(
            f"column {column!r}: {_short(bad)} is not a time; time levels need ISO 8601 "
            "values (2026-06-21T20:15Z) or HH:MM"
        ) from None
    epoch = stamps.to_numpy(dtype="datetime64[s]").astype(np.int64)
    floored = epoch // step * step
    if step % _DAY == 0:
        days = floored.astype("datetime64[s]").astype("datetime64[D]")
        return [str(s) for s in np.datetime_as_string(days, unit="D")]
    minutes = floored.astype("datetime64[s]").astype("datetime64[m]")
    return [f"{s}Z" for s in np.datetime_as_string(minutes, unit="m")]


def _parses_as_time(text: str) -> bool:
    try:
        pd.to_datetime(pd.Series([text], dtype=object), utc=True, format="ISO8601")
    except (ValueError, TypeError):
        return False
    return True


def _age_bounds(value: Any, column: str) -> tuple[int, int | None]:
    """``(low, high)`` years of an age or age band; ``high`` is None for an open band."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value), int(value)
    text = str(value)
    if (m := _BAND.match(text)) is not None:
        low, high = int(m[1]), int(m[2])
        if low <= high:
            return low, high
    elif (m := _OPEN.match(text)) is not None:
        return int(m[1]), None
    elif (m := _UNDER.match(text)) is not None and int(m[1]) > 0:
        return 0, int(m[1]) - 1
    elif (m := _AGE_NUMBER.match(text)) is not None:
        return int(m[1]), int(m[1])
    raise InputError(
        f"column {column!r}: {_short(value)} is not an age or age band; age levels read "
        "ages (27), bands (25-34), open bands (55+) and <18"
    )


def _age_level(value: Any, width: int, column: str) -> str:
    low, high = _age_bounds(value, column)
    start = low // width * width
    if high is None:
        return f"{start}+"
    end = (high // width + 1) * width - 1
    return f"{start}-{end}"


# -- policy parsing --------------------------------------------------------------------------


def _level(token: Any, fail: Any) -> Level:
    if isinstance(token, Mapping):
        if not token or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in token.items()
        ):
            raise fail('a mapping level must be a non-empty table of strings, e.g. {A1 = "A"}')
        return Level("map", "map", mapping=dict(token))
    if not isinstance(token, str):
        raise fail(f"level {_short(token)} is neither a string nor a mapping table")
    text = token.strip()
    if text == SUPPRESSED:
        return Level("suppress", SUPPRESSED)
    if text == "area":
        return Level("area", "area")
    if (m := _TIME.match(text)) is not None:
        seconds = int(m[1]) * _UNIT[m[2]]
        if seconds <= 0:
            raise fail(f"time level {text!r} must be longer than zero")
        if seconds < _DAY and _DAY % seconds:
            raise fail(f"time level {text!r} does not divide a day; use e.g. 15m, 1h, 6h")
        return Level("time", text, seconds)
    if (m := _AGE.match(text)) is not None:
        if int(m[1]) <= 0:
            raise fail(f"age level {text!r} must be at least 1y")
        return Level("age", text, int(m[1]))
    if (m := _PREFIX.match(text)) is not None:
        return Level("prefix", text, int(m[1]))
    raise fail(
        f"level {text!r} is not understood; use '*', a time step (15m, 1h, 1d), an age band "
        "width (10y), 'area', 'prefix:N' or a mapping table"
    )


def parse_hierarchy(column: str, spec: Any, *, source: str = "policy") -> Hierarchy:
    """Validate one policy list (``reid.hierarchies.<column>``) into a :class:`Hierarchy`."""

    def fail(problem: str) -> PolicyError:
        return PolicyError(
            f"policy '{source}': reid.hierarchies.{column} = {_short(spec)}: {problem}"
        )

    if isinstance(spec, str) or not isinstance(spec, Sequence) or not spec:
        raise fail('expected a non-empty list of levels, e.g. ["1h", "1d", "*"]')
    levels = tuple(_level(token, fail) for token in spec)
    for i, level in enumerate(levels):
        if level.kind == "suppress" and i != len(levels) - 1:
            raise fail("'*' suppresses the attribute, so it can only be the last level")
    kinds = {level.kind for level in levels if level.kind != "suppress"}
    if len(kinds) > 1:
        raise fail(f"mixes level kinds ({', '.join(sorted(kinds))}); one kind per attribute")
    for below, above in zip(levels, levels[1:], strict=False):
        if above.kind in ("time", "age") and above.size % below.size:
            raise fail(
                f"{above.spec!r} is not a whole multiple of {below.spec!r}; each level must "
                "merge whole buckets of the level before it"
            )
        if above.kind in ("time", "age", "prefix") and above.size == below.size:
            raise fail(f"{above.spec!r} repeats the level before it")
        if above.kind == "prefix" and above.size > below.size:
            raise fail(f"{above.spec!r} keeps more characters than {below.spec!r}")
    return Hierarchy(column, levels)


def parse_hierarchies(spec: Mapping[str, Any], *, source: str = "policy") -> dict[str, Hierarchy]:
    """Validate a whole ``[reid.hierarchies]`` table."""
    if not isinstance(spec, Mapping):
        raise PolicyError(f"policy '{source}': reid.hierarchies must be a table")
    return {
        str(column): parse_hierarchy(str(column), value, source=source)
        for column, value in spec.items()
    }


def hierarchies_from_policy(policy: Any) -> dict[str, Hierarchy]:
    """The validated hierarchies of a loaded :class:`retention.policy.Policy`."""
    return parse_hierarchies(policy.reid.hierarchies, source=policy.source)


def hierarchy_for(hierarchies: Mapping[str, Hierarchy], column: str) -> Hierarchy:
    """The hierarchy of ``column``; an attribute the policy does not list gets ``["*"]``."""
    found = hierarchies.get(column)
    return found if found is not None else Hierarchy(column, (Level("suppress", SUPPRESSED),))


def generalise_frame(
    frame: pd.DataFrame,
    levels: Mapping[str, int],
    hierarchies: Mapping[str, Hierarchy],
) -> pd.DataFrame:
    """A copy of ``frame`` with each column in ``levels`` recoded to that level.

    Works on the distinct values only (factorize, recode, take), so a million rows with a few
    hundred distinct values cost a few hundred recodings.
    """
    out = frame.copy()
    for column, level in levels.items():
        if level == 0:
            continue
        codes, uniques = pd.factorize(frame[column], use_na_sentinel=False)
        recoded = hierarchy_for(hierarchies, column).generalise(
            np.asarray(uniques, dtype=object), level
        )
        out[column] = pd.Series(recoded[codes], index=frame.index, dtype=object)
    return out
