"""The one place "now" comes from: ``--now``, ``FLOWAUDIT_NOW``, or the system clock.

Retention can then be tested and demonstrated without waiting 72 hours.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime

from retention.errors import InputError

__all__ = ["NOW_ENV", "parse_time", "resolve_now"]

NOW_ENV = "FLOWAUDIT_NOW"


def parse_time(text: str, what: str = "time") -> datetime:
    """ISO 8601 (``2026-06-21T22:00``, ``…Z``, ``…+02:00``); a time without zone is UTC."""
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError:
        raise InputError(
            f"{what} {text!r} is not an ISO 8601 time; write e.g. 2026-06-21T22:00:00Z"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def resolve_now(option: str | None, environ: Mapping[str, str] | None = None) -> datetime:
    env = os.environ if environ is None else environ
    if option:
        return parse_time(option, "--now")
    if env.get(NOW_ENV):
        return parse_time(env[NOW_ENV], NOW_ENV)
    return datetime.now(UTC)
