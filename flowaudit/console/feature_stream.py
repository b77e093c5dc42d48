"""The scorer feed pushed: server-sent events of one scorer key's feature windows.

The same feed as ``GET /v1/events/{id}/features`` (:func:`~.scorers.feature_windows`: the
same gating, the same per-key pseudonyms, windows the crowd step has taken, a replay up to
its clock), sent as it grows: one ``features`` event per feature window, its data the very
window object the GET feed pages carry.

The cursor is ``W.S``: the window and the subject (this key's pseudonym) of the event; within
a window the events go in subject order, so ``Last-Event-ID: W.S`` resumes with the rest of
window ``W`` and then the windows after it, nothing twice and nothing skipped, even when the
client went in the middle of a window. A bare ``W`` (the GET feed's ``cursor``) resumes after
window ``W``, so a client can switch from polling to the stream. Without one the stream starts
at the feed's start, like ``after=-1``.

A poll that finds no taken window past the cursor reads two rows (read-only, no write lock
on SQLite); only then does it read the feed, up to ``PAGES`` pages of it. Like every stream
of the console (:func:`~.stream.sse_loop`), it ends once its key is revoked.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from retention.models import LiveCrowdWindow, LiveState
from retention.store import EncryptedStore

from .keys import KeyInfo
from .reader import EventView
from .scorers import feature_windows
from .stream import frame, sse_loop

__all__ = ["FeatureCursor", "PAGES", "feature_stream", "parse_feature_cursor",
           "FEATURE_CURSOR"]

PAGES = 5  # feed pages one poll sends at most (a new stream catches up over a few polls)
#: a ``Last-Event-ID`` this stream takes: ``W.S`` (an event's id), ``W`` (a feed cursor) or
#: nothing
FEATURE_CURSOR = r"^\s*(-?[0-9]{1,9}(\.[0-9a-f]{24})?)?\s*$"
_CURSOR_RE = re.compile(r"(-?\d{1,9})(?:\.([0-9a-f]{24}))?")


@dataclass
class FeatureCursor:
    window: int
    subject: str | None = None  # the last subject sent of ``window``; None: all of it

    def __str__(self) -> str:
        return str(self.window) if self.subject is None else f"{self.window}.{self.subject}"


def parse_feature_cursor(value: str) -> FeatureCursor | None:
    """A ``Last-Event-ID`` of this stream, or ``None`` if it is not one."""
    match = _CURSOR_RE.fullmatch(value.strip())
    if match is None:
        return None
    window, subject = int(match.group(1)), match.group(2)
    if window < 0:  # before the first window: the whole feed
        return FeatureCursor(-1)
    return FeatureCursor(window, subject)


def _due(store: EncryptedStore, event_id: str, horizon: datetime | None) -> int:
    """The last window the feed could serve now: taken by the crowd step (and, in a replay,
    started by the replay's clock)."""
    with store.session() as session:
        row = session.get(LiveState, event_id)
        stepped = -1 if row is None else int(row.crowd_window)
        if horizon is None or stepped < 0:
            return stepped
        shown = session.scalar(select(func.max(LiveCrowdWindow.window)).where(
            LiveCrowdWindow.event_id == event_id, LiveCrowdWindow.start_at <= horizon))
    return -1 if shown is None else min(stepped, int(shown))


def _ordered(windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(windows, key=lambda w: (w["window"], w["subject"]))


def poll_features(store: EncryptedStore, event: EventView, key: KeyInfo,
                  cursor: FeatureCursor, now: datetime, horizon: datetime | None
                  ) -> list[bytes]:
    """The ``features`` events after ``cursor`` (advanced past them), up to ``PAGES`` pages."""
    partial = cursor.subject is not None  # window ``cursor.window`` was sent in part
    due = _due(store, event.id, horizon)
    if due < cursor.window + (0 if partial else 1):
        return []
    out: list[bytes] = []
    for _ in range(PAGES):
        partial = cursor.subject is not None
        after = cursor.window - 1 if partial else cursor.window
        page = feature_windows(store, event, key, after, now, horizon)
        for window in _ordered(page["windows"]):
            if partial and window["window"] == cursor.window \
                    and window["subject"] <= str(cursor.subject):
                continue  # sent before
            cursor.window, cursor.subject = window["window"], window["subject"]
            out.append(frame("features", window, cursor))
        if page["cursor"] >= cursor.window:  # every window up to the page's cursor was sent
            done = page["cursor"] > after
            cursor.window, cursor.subject = int(page["cursor"]), None
            if done and page["cursor"] < page["stepped"]:
                continue
        break
    return out


def feature_stream(store: EncryptedStore, event: EventView, key: KeyInfo,
                   cursor: FeatureCursor | None, *, now: Callable[[], datetime],
                   horizon: Callable[[], datetime | None],
                   disconnected: Callable[[], Awaitable[bool]], poll: float,
                   keepalive: float, sleep: Callable[[float], Awaitable[None]],
                   on_open: Callable[[], None], on_close: Callable[[], None],
                   key_live: Callable[[], bool]) -> AsyncIterator[bytes]:
    """The stream's bytes (module docstring), on the console's one polling loop."""
    at = cursor if cursor is not None else FeatureCursor(-1)

    def step() -> list[bytes]:
        return poll_features(store, event, key, at, now(), horizon())

    return sse_loop(step, disconnected=disconnected, poll=poll, keepalive=keepalive,
                    sleep=sleep, on_open=on_open, on_close=on_close, key_live=key_live)
