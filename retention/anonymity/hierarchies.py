"""Generalisation hierarchies for quasi-identifiers, as ``[reid.hierarchies]`` writes them.

Part of the one privacy engine (:mod:`retention.anonymity`): the re-identification report, the
export gate and the anonymisation step all climb these ladders, so what the purge keeps reads
the same way in a report.

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
of level ``i`` — the property the lattice search (:mod:`retention.anonymity.lattice`) relies on
to roll a coarser table up from a finer one.

Two deliberate modes, carried by the :class:`Hierarchy` itself (``lenient``), because a report
and an anonymiser must fail differently:

* **strict** (reports, export gate): :func:`parse_hierarchy` / :func:`parse_hierarchies` reject
  a bad spec with a :class:`PolicyError` naming the policy file, the key and the value, and
  :meth:`Hierarchy.ladder` / :meth:`Hierarchy.generalise` (vectorised over numpy arrays) raise
  :class:`InputError` for a value a level cannot read. Missing values stay missing until ``"*"``.
* **lenient** (anonymisation): :func:`lenient_hierarchy` turns a level it cannot read into
  ``"*"`` and always ends the ladder with ``"*"``; its ladder turns a value it cannot read, and
  a missing one, into ``"*"`` at the first step: when anonymising, anything unreadable must err
  on the side of privacy rather than stop the purge.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, PolicyError
from ..ground.times import coerce_utc
from ._settings import PolicySettings

__all__ = [
    "SUPPRESSED",
    "Level",
    "Hierarchy",
    "parse_hierarchy",
    "parse_hierarchies",
    "hierarchies_from_policy",
    "hierarchy_for",
    "lenient_hierarchy",
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
_AGE_NUMBER = re.compile(r"^\s*(\d+)(?:\.0+)?\s*$")  # strict: "27" and "27.0"
_NUMBER = re.compile(r"^\s*(\d+)\s*$")  # lenient: "27" only, anything else is suppressed
_ZONE_NUMBER = re.compile(r"^(.*?[^\d\s_.-])[\s_.-]*\d+$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
        """Generalise an object array of (distinct) values by this one step (strict reading)."""
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
        elif self.kind in ("area", "prefix", "map"):
            out[present] = [self._recode_text(v) for v in kept]
        else:  # pragma: no cover - kinds are fixed by the parser
            raise ValueError(self.kind)
        return out

    def apply_value(self, value: Any) -> str:
        """Generalise one value by this step (lenient: what it cannot read becomes ``*``).

        A missing value becomes ``*`` too: once generalised, "unknown" and "suppressed" are
        the same class, so they cannot single anyone out by being told apart.
        """
        if self.kind == "suppress" or _is_missing(value) or value is pd.NaT:
            return SUPPRESSED
        if value == SUPPRESSED:
            return SUPPRESSED
        if self.kind == "time":
            return _time_label_lenient(value, self.size)
        if self.kind == "age":
            bounds = _text_bounds(str(value), _NUMBER)
            return SUPPRESSED if bounds is None else _band_label(*bounds, self.size)
        return self._recode_text(value)

    def _recode_text(self, value: Any) -> str:
        """The area, prefix and mapping steps: they read any value, so both modes share them."""
        if self.kind == "area":
            return zone_area(value)
        if self.kind == "prefix":
            return str(value)[: self.size]
        return self.mapping.get(str(value), SUPPRESSED)


@dataclass(frozen=True)
class Hierarchy:
    """The ladder of one attribute; ``height`` levels above the stored value.

    ``lenient`` chooses how values are read (see the module docstring): strict ladders raise
    :class:`InputError` for a value a level cannot read, lenient ones make it ``*``.
    """

    column: str
    levels: tuple[Level, ...]
    lenient: bool = False

    @property
    def height(self) -> int:
        return len(self.levels)

    def label(self, level: int) -> str:
        """How a level is written in reports: ``as stored``, ``1h``, ``*`` ..."""
        if level == 0:
            return "as stored"
        return self.levels[level - 1].spec

    def _step(self, step: Level, values: np.ndarray) -> np.ndarray:
        if not self.lenient:
            return step.apply(values, self.column)
        out = np.empty(len(values), dtype=object)
        out[:] = [step.apply_value(v) for v in values]
        return out

    def ladder(self, values: np.ndarray) -> list[np.ndarray]:
        """``values`` at every level 0..height (each level computed from the one below)."""
        current = np.asarray(values, dtype=object)
        out = [current]
        for step in self.levels:
            current = self._step(step, current)
            out.append(current)
        return out

    def generalise(self, values: np.ndarray, level: int) -> np.ndarray:
        """``values`` at one level (strict: an unreadable value is an :class:`InputError`)."""
        if not 0 <= level <= self.height:
            raise InputError(
                f"level {level} of {self.column!r} does not exist; it has levels 0..{self.height}"
            )
        current = np.asarray(values, dtype=object)
        for step in self.levels[:level]:
            current = self._step(step, current)
        return current

    def generalise_value(self, value: Any, level: int) -> Any:
        """One value at one level, read leniently (an unreadable value becomes ``*``)."""
        for step in self.levels[:level]:
            value = step.apply_value(value)
        return value

    def first_level_at_least(self, seconds: int) -> int:
        """The lowest level that is a time step of ``seconds`` or coarser (or suppression)."""
        for index, step in enumerate(self.levels, start=1):
            if step.kind != "time" or step.size >= seconds:
                return index
        return self.height


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


def _time_label_lenient(value: Any, step: int) -> str:
    """One datetime or ISO 8601 string floored to ``step``; anything else is suppressed."""
    try:
        value = coerce_utc(value)
    except ValueError:
        return SUPPRESSED
    seconds = int((value - _EPOCH).total_seconds()) // step * step
    floored = _EPOCH + timedelta(seconds=seconds)
    return f"{floored:%Y-%m-%d}" if step % _DAY == 0 else f"{floored:%Y-%m-%dT%H:%M}Z"


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
    bounds = _text_bounds(str(value), _AGE_NUMBER)
    if bounds is not None:
        return bounds
    raise InputError(
        f"column {column!r}: {_short(value)} is not an age or age band; age levels read "
        "ages (27), bands (25-34), open bands (55+) and <18"
    )


def _text_bounds(text: str, number: re.Pattern[str]) -> tuple[int, int | None] | None:
    """``(low, high)`` of an age written as text (band, open band, ``<N``, ``number``), or None."""
    if (m := _BAND.match(text)) is not None:
        low, high = int(m[1]), int(m[2])
        return (low, high) if low <= high else None
    if (m := _OPEN.match(text)) is not None:
        return int(m[1]), None
    if (m := _UNDER.match(text)) is not None and int(m[1]) > 0:
        return 0, int(m[1]) - 1
    if (m := number.match(text)) is not None:
        return int(m[1]), int(m[1])
    return None


def _band_label(low: int, high: int | None, width: int) -> str:
    """The smallest run of ``width``-year grid cells holding ``low..high`` (``50+`` if open)."""
    start = low // width * width
    if high is None:
        return f"{start}+"
    end = (high // width + 1) * width - 1
    return f"{start}-{end}"


def _age_level(value: Any, width: int, column: str) -> str:
    return _band_label(*_age_bounds(value, column), width)


# -- policy parsing --------------------------------------------------------------------------


def _read_level(text: str) -> Level | None:
    """The level a (stripped) string names, by syntax alone; None if it names none."""
    if text == SUPPRESSED:
        return Level("suppress", SUPPRESSED)
    if text == "area":
        return Level("area", "area")
    if (m := _TIME.match(text)) is not None:
        return Level("time", text, int(m[1]) * _UNIT[m[2]])
    if (m := _AGE.match(text)) is not None:
        return Level("age", text, int(m[1]))
    if (m := _PREFIX.match(text)) is not None:
        return Level("prefix", text, int(m[1]))
    return None


def _level(token: Any, fail: Any) -> Level:
    """Strict: a level the policy writes wrongly is a :class:`PolicyError` (via ``fail``)."""
    if isinstance(token, Mapping):
        if not token or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in token.items()
        ):
            raise fail('a mapping level must be a non-empty table of strings, e.g. {A1 = "A"}')
        return Level("map", "map", mapping=dict(token))
    if not isinstance(token, str):
        raise fail(f"level {_short(token)} is neither a string nor a mapping table")
    text = token.strip()
    level = _read_level(text)
    if level is not None and level.kind == "time":
        if level.size <= 0:
            raise fail(f"time level {text!r} must be longer than zero")
        if level.size < _DAY and _DAY % level.size:
            raise fail(f"time level {text!r} does not divide a day; use e.g. 15m, 1h, 6h")
    if level is not None and level.kind == "age" and level.size <= 0:
        raise fail(f"age level {text!r} must be at least 1y")
    if level is not None:
        return level
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


def hierarchies_from_policy(policy: PolicySettings) -> dict[str, Hierarchy]:
    """The validated (strict) hierarchies of a loaded :class:`retention.policy.Policy`."""
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


def _lenient_level(token: Any) -> Level:
    """Lenient: a level that cannot be read (or a zero step) suppresses, the safe choice."""
    if isinstance(token, Mapping):
        return Level("map", "map", mapping={str(k): str(v) for k, v in token.items()})
    level = _read_level(str(token).strip())
    if level is None or (level.kind in ("time", "age") and level.size <= 0):
        return Level("suppress", SUPPRESSED)
    return level


def lenient_hierarchy(column: str, spec: Sequence[Any] | None, *, is_time: bool) -> Hierarchy:
    """The anonymiser's ladder for ``column``: never raises, always ends in ``"*"``.

    Without a spec, time gets ``1h``/``1d``/``*`` and the rest ``*``. Unlike
    :func:`parse_hierarchy` it does not validate the ladder (kinds, multiples, order): a policy
    that once loaded must still be anonymised, never left linkable because of a typo.
    """
    if not spec or isinstance(spec, str):
        spec = ["1h", "1d", SUPPRESSED] if is_time else [SUPPRESSED]
    levels = tuple(_lenient_level(token) for token in spec)
    if levels[-1].kind != "suppress":
        levels += (Level("suppress", SUPPRESSED),)  # the top of every ladder is "*"
    return Hierarchy(column, levels, lenient=True)
