"""Formatting of gathered values for people. Exact numbers stay visible next to rounded ones,
so a reader (or a test) can match every figure to the JSON and to the store."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from retention.ground.durations import format_duration
from retention.ground.times import parse_utc

__all__ = [
    "n",
    "num",
    "pct",
    "size",
    "when",
    "short",
    "day",
    "dur",
    "period",
    "seconds",
    "yes_no",
    "iso",
    "parse_iso",
]


def n(value: int | None) -> str:
    """An integer, digits only (no separators: the JSON and the text must match verbatim)."""
    return "-" if value is None else str(int(value))


def num(value: float | None, digits: int = 1) -> str:
    """A float rounded for reading."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def pct(part: float | None, whole: float | None = None, digits: int = 1) -> str:
    """``part`` as a percentage (of ``whole`` if given, else ``part`` is already a ratio)."""
    if part is None:
        return "-"
    if whole is not None:
        if not whole:
            return "-"
        part = part / whole
    return f"{100 * part:.{digits}f}\u00a0%"


def size(nbytes: int | None) -> str:
    """``1.2 MB (1234567 bytes)``: readable and exact."""
    if nbytes is None:
        return "-"
    value = float(nbytes)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            readable = f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
            break
        value /= 1000
    return readable if nbytes < 1000 else f"{readable} ({int(nbytes)} bytes)"


def iso(value: datetime | date | None) -> str | None:
    """ISO 8601 for JSON (UTC, seconds)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    return value.isoformat()


def parse_iso(text: str) -> datetime:
    """A time a report gathered as ISO text, back as an aware UTC datetime."""
    return parse_utc(text)


def when(value: datetime | str | None) -> str:
    """A UTC time for reading: ``2026-06-21 20:00:00 UTC``."""
    if value is None:
        return "-"
    if isinstance(value, str):
        value = parse_iso(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def short(value: datetime | str | None) -> str:
    """A UTC time for narrow table cells: ``2026-06-21 20:00``."""
    if value is None:
        return "-"
    if isinstance(value, str):
        value = parse_iso(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def day(value: date | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value[:10]
    return value.isoformat()


def dur(value: timedelta | str | None) -> str:
    """A policy duration as written in policy files (``72h``, ``30d``, ``indefinite``)."""
    if isinstance(value, str):
        return value
    return format_duration(value)


_UNIT_WORDS = {
    "en": {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"},
    "fr": {"s": "secondes", "m": "minutes", "h": "heures", "d": "jours", "w": "semaines"},
}


def period(value: timedelta | None, lang: str = "en") -> str:
    """A retention period in words: ``for 72 hours`` / ``indefinitely`` / ``not at all``."""
    if value is None:
        return "indéfiniment" if lang == "fr" else "indefinitely"
    if value.total_seconds() == 0:
        return "pas du tout" if lang == "fr" else "not at all"
    text = format_duration(value)
    amount, unit = text[:-1], text[-1]
    words = _UNIT_WORDS[lang][unit]
    return f"pendant {amount} {words}" if lang == "fr" else f"for {amount} {words}"


def seconds(value: float | None) -> str:
    """Seconds with one decimal and a readable gloss for long spans."""
    if value is None:
        return "-"
    text = f"{value:.1f} s"
    if value >= 3600:
        return f"{text} ({value / 3600:.1f} h)"
    if value >= 60:
        return f"{text} ({value / 60:.1f} min)"
    return text


def yes_no(value: bool | None) -> str:
    if value is None:
        return "-"
    return "yes" if value else "no"
