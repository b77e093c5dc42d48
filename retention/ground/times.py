"""ISO 8601 times, the one way flowaudit reads and writes them: aware, and in UTC.

A time written without a zone is taken as UTC rather than local time, because an event file
written in Paris and read on a server in UTC must mean the same instant.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from ..errors import InputError

__all__ = ["to_utc", "parse_utc", "coerce_utc", "parse_time", "parse_date_option", "iso_utc"]


def to_utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive time is UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_utc(text: str) -> datetime:
    """``2026-06-21T22:00``, ``…Z`` or ``…+02:00`` as UTC; ``ValueError`` if it is none of them."""
    if not isinstance(text, str):
        raise ValueError(f"{type(text).__name__} is not an ISO 8601 time")
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    return to_utc(datetime.fromisoformat(cleaned))


def coerce_utc(value: object) -> datetime:
    """A datetime (as TOML or a driver gives it) or an ISO string, as UTC; else ``ValueError``."""
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, str):
        return parse_utc(value)
    raise ValueError(f"{type(value).__name__} is not a time")


def parse_time(text: str, what: str = "time") -> datetime:
    """A time a user typed (``what`` names the option); :class:`InputError` saying what to write."""
    try:
        return parse_utc(text)
    except ValueError:
        raise InputError(
            f"{what} {text!r} is not an ISO 8601 time; write e.g. 2026-06-21T22:00:00Z"
        ) from None


def parse_date_option(text: str, what: str) -> date:
    """A calendar date a user typed, such as ``--as-of 2026-08-02``."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{what} {text!r} is not a date; write e.g. 2026-08-02") from None


def iso_utc(moment: datetime) -> str:
    """The canonical text of a time: ISO 8601 in UTC with its ``+00:00`` offset."""
    return to_utc(moment).isoformat()
