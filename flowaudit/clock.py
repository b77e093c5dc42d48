"""The one place "now" comes from: ``--now``, ``FLOWAUDIT_NOW``, or the system clock.

Retention can then be tested and demonstrated without waiting 72 hours.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime

from retention.ground.times import parse_time

__all__ = ["NOW_ENV", "resolve_now"]

NOW_ENV = "FLOWAUDIT_NOW"


def resolve_now(option: str | None, environ: Mapping[str, str] | None = None) -> datetime:
    env = os.environ if environ is None else environ
    if option:
        return parse_time(option, "--now")
    if env.get(NOW_ENV):
        return parse_time(env[NOW_ENV], NOW_ENV)
    return datetime.now(UTC)
