"""Replaying a stored event: the console's clock on the event timeline, at a chosen speed.

A replay shows the event as it was, from its first crowd window on: what was committed up to
``first + (now − started) · speed`` on the event timeline is visible, the rest is not yet
(every read of :class:`~flowaudit.console.reader.Reader` takes that horizon). A replay is
read-only: controls are refused (``replay_read_only``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

__all__ = ["Replay"]


@dataclass
class Replay:
    event_id: str
    speed: float
    first: datetime | None = None  # set when the app opens the event
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)

    def start(self, first: datetime) -> None:
        self.first, self.started = first, self.clock()

    def horizon(self) -> datetime | None:
        if self.first is None:
            return None
        return self.first + timedelta(seconds=(self.clock() - self.started) * self.speed)
