"""The one place "now" comes from: ``--now``, ``FLOWAUDIT_NOW``, or the system clock.

Retention can then be tested and demonstrated without waiting 72 hours.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from retention.ground.times import parse_time

__all__ = ["NOW_ENV", "pinned_now", "resolve_now", "running_clock"]

NOW_ENV = "FLOWAUDIT_NOW"


def pinned_now(option: str | None, environ: Mapping[str, str] | None = None) -> datetime | None:
    """The time ``--now`` or ``FLOWAUDIT_NOW`` pins, or ``None`` when the system clock decides.

    A command whose defaults differ when the user names a time (``run-event`` then starts its
    virtual clock there) asks this rather than reading the option and the variable itself.
    """
    env = os.environ if environ is None else environ
    if option:
        return parse_time(option, "--now")
    if env.get(NOW_ENV):
        return parse_time(env[NOW_ENV], NOW_ENV)
    return None


def resolve_now(option: str | None, environ: Mapping[str, str] | None = None) -> datetime:
    """The command's "now": the pinned time, else the system clock."""
    pinned = pinned_now(option, environ)
    return datetime.now(UTC) if pinned is None else pinned


def running_clock(
    option: str | None, environ: Mapping[str, str] | None = None
) -> Callable[[], datetime]:
    """The time for a long-lived command (``purge --every``), read afresh at each use.

    Unpinned, it is the system clock. Pinned, the first reading is the pinned time exactly and
    each later one adds the real (monotonic) time elapsed since, so a job started with
    ``--now`` stamps each run and its closing checkpoint when they actually happen, in the
    pinned timeline.
    """
    pinned = pinned_now(option, environ)
    if pinned is None:
        return lambda: datetime.now(UTC)
    origin: list[float] = []

    def now() -> datetime:
        tick = time.monotonic()
        if not origin:
            origin.append(tick)
        return pinned + timedelta(seconds=tick - origin[0])

    return now
