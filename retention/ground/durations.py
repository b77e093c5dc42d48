"""Retention durations as policy files write them: "72h", "30d", "0h", "indefinite".

A duration without a unit is refused rather than guessed, because "72" meaning minutes or
hours is exactly the kind of ambiguity a regulator will ask about.
"""

from __future__ import annotations

import re
from datetime import timedelta

from ..errors import InputError

__all__ = [
    "Duration",
    "parse_duration",
    "format_duration",
    "parse_duration_option",
    "parse_finite_duration",
]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")

#: ``None`` means "indefinite": kept until someone decides otherwise.
Duration = timedelta | None


def parse_duration(text: object) -> Duration:
    """Parse ``"72h"`` / ``"30d"`` / ``"indefinite"``; raise ``ValueError`` saying what to write."""
    if not isinstance(text, str):
        raise ValueError(f'{text!r} is not a duration; write it as a string such as "72h"')
    if text.strip().lower() == "indefinite":
        return None
    match = _PATTERN.match(text)
    if match is None:
        if text.strip().isdigit():
            raise ValueError(
                f'"{text}" has no unit; write "{text.strip()}h" (units: s, m, h, d, w)'
            )
        raise ValueError(
            f'"{text}" is not a duration; use a number and a unit (s, m, h, d, w) '
            'such as "72h" or "30d", or "indefinite"'
        )
    amount, unit = match.groups()
    return timedelta(seconds=int(amount) * _UNITS[unit])


def format_duration(value: Duration) -> str:
    """The inverse of :func:`parse_duration`: days from a week up, else hours, minutes, seconds."""
    if value is None:
        return "indefinite"
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0h"
    day = _UNITS["d"]
    if seconds % day == 0 and seconds >= 7 * day:
        return f"{seconds // day}d"
    for unit in ("h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"



def parse_duration_option(text: str, what: str) -> Duration:
    """A duration a user typed for ``what`` (``--duration``); one :class:`InputError` if bad."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InputError(f"{what}: {exc}") from None


def parse_finite_duration(text: str, what: str, *, positive: bool = False) -> timedelta:
    """Like :func:`parse_duration_option`; refuses ``"indefinite"``, and ``0h`` if ``positive``."""
    value = parse_duration_option(text, what)
    if value is None:
        raise InputError(f"{what} {text!r} must be a finite duration such as 15m")
    if positive and value.total_seconds() <= 0:
        raise InputError(f"{what} {text!r} must be a positive duration such as 15m")
    return value
