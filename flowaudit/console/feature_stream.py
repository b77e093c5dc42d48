"""The scorer feed pushed: server-sent events of one scorer key's feature windows.

The same feed as ``GET /v1/events/{id}/features`` (:func:`~.scorers.feature_windows`: the
same gating, the same per-key pseudonyms, windows the crowd step has taken, a replay up to
its clock), sent as it grows: one ``features`` event per feature window, its data the very
window object the GET feed pages carry. The GET feed asked with ``?cursor=`` is this stream
polled (:func:`feature_events`, one implementation): a page holds the windows the next events
would carry, and ``next_cursor``, the cursor after them (``W@M`` once a page is done).

Every wristband window reaches the stream once, a *late* one too: one a worker committed
after the crowd step of its window was taken and after the stream had passed that window (a
worker was killed holding its messages and they were redelivered). So the cursor is over two
orders: the feed's (window, then this key's pseudonym of the subject) and the store's commit
order (the ``live_windows`` row id, up to a watermark below which every row is committed,
:meth:`~retention.store.EncryptedStore.live_window_watermark`). ``W.S@M`` says: every row up
to id ``M`` at or before window ``W``, subject ``S``, was sent (``W@M``: all of window ``W``).
A poll with the watermark ``L`` sends first the late rows (ids in ``M..L``, at or before
``W.S``) in feed order, each with the id ``W.S@M+W'.S'@L`` (the late rows up to ``W'.S'`` of
those sent as well), then the windows after ``W.S`` in feed order, each with ``W'.S'@L``. So
``Last-Event-ID`` resumes exactly after the last event the client saw: nothing twice, nothing
skipped, even in the middle of a window or of the late rows. Within a window, and within the
late rows, events go in this key's subject order, never in the store's row order (which is
the same for every key and would pair two scorers' subjects by position).

An older cursor is taken too: ``W.S`` (a previous version's event id) or a bare ``W`` (the GET
feed's ``cursor``) resumes after it, the rows committed when the stream opens counting as sent
(what that cursor meant). Without one the stream starts at the feed's start.

A poll that finds nothing new past the cursor reads a few rows (read-only, no write lock on
SQLite); only then does it take the watermark and read the feed, up to ``PAGES`` pages of
windows. Like every stream of the console (:func:`~.stream.sse_loop`), it ends once its key
is revoked.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from retention.models import LiveCrowdWindow, LiveState, LiveWindowRecord
from retention.store import EncryptedStore

from .keys import KeyInfo
from .reader import EventView
from .scorers import FEED_WINDOWS, feature_windows, window_objects
from .stream import frame, sse_loop

__all__ = ["FeatureCursor", "PAGES", "Polled", "feature_stream", "parse_feature_cursor",
           "FEATURE_CURSOR", "after_page", "feature_events", "feature_page",
           "poll_features"]

PAGES = 5  # feed pages one poll sends at most (a new stream catches up over a few polls)
_POINT = r"-?[0-9]{1,9}(\.[0-9a-f]{24})?"
_LATE = r"[0-9]{1,9}\.[0-9a-f]{24}@[0-9]{1,12}"
#: a ``Last-Event-ID`` this stream takes: ``W.S@M`` or ``W.S@M+W.S@L`` (an event's id),
#: ``W@M``, the older ``W.S`` and ``W`` (module docstring), or nothing
FEATURE_CURSOR = rf"^\s*({_POINT}(@[0-9]{{1,12}}(\+{_LATE})?)?)?\s*$"
_CURSOR_RE = re.compile(r"(-?[0-9]{1,9})(?:\.([0-9a-f]{24}))?"
                        r"(?:@([0-9]{1,12})(?:\+([0-9]{1,9})\.([0-9a-f]{24})@([0-9]{1,12}))?)?")
_NEWS = 256  # rows past the cursor a quiet poll looks at; more is news at once


@dataclass
class FeatureCursor:
    """What a stream has sent (module docstring): every row with an id up to ``upto`` at or
    before (``window``, ``subject``); and, while it sends late rows, every row with an id up
    to ``late[2]`` at or before (``late[0]``, ``late[1]``)."""

    window: int
    subject: str | None = None  # the last subject sent of ``window``; None: all of it
    upto: int | None = None  # None: an older cursor, the rows committed at the first poll
    late: tuple[int, str, int] | None = None

    def __str__(self) -> str:
        text = str(self.window) if self.subject is None else f"{self.window}.{self.subject}"
        if self.upto is not None:
            text += f"@{self.upto}"
        if self.late is not None:
            text += f"+{self.late[0]}.{self.late[1]}@{self.late[2]}"
        return text

    def covers(self, window: int, subject: str) -> bool:
        """Whether (``window``, ``subject``) is at or before the cursor's feed position."""
        return _at_or_before(window, subject, self.window, self.subject)


def _at_or_before(window: int, subject: str, at_window: int, at_subject: str | None) -> bool:
    return window < at_window or (window == at_window
                                  and (at_subject is None or subject <= at_subject))


def parse_feature_cursor(value: str) -> FeatureCursor | None:
    """A ``Last-Event-ID`` of this stream, or ``None`` if it is not one."""
    match = _CURSOR_RE.fullmatch(value.strip())
    if match is None:
        return None
    window, subject = int(match.group(1)), match.group(2)
    upto = None if match.group(3) is None else int(match.group(3))
    late = None
    if match.group(4) is not None:
        late = (int(match.group(4)), str(match.group(5)), int(match.group(6)))
        # late rows are after ``upto`` and at or before the position: anything else was
        # never an id of this stream
        if upto is None or late[2] <= upto or not _at_or_before(late[0], late[1], window,
                                                                 subject):
            return None
    if window < 0:  # before the first window: the whole feed
        return FeatureCursor(-1, None, upto)
    return FeatureCursor(window, subject, upto, late)


def _due(store: EncryptedStore, event_id: str, horizon: datetime | None) -> tuple[int, int]:
    """The last window the crowd step took, and the last the feed could serve now: taken by
    the crowd step (and, in a replay, started by the replay's clock)."""
    with store.session() as session:
        row = session.get(LiveState, event_id)
        stepped = -1 if row is None else int(row.crowd_window)
        if horizon is None or stepped < 0:
            return stepped, stepped
        shown = session.scalar(select(func.max(LiveCrowdWindow.window)).where(
            LiveCrowdWindow.event_id == event_id, LiveCrowdWindow.start_at <= horizon))
    return stepped, -1 if shown is None else min(stepped, int(shown))


@dataclass(frozen=True)
class Polled:
    """What one poll of the feed found: each window object with the cursor after it, and the
    last window the crowd step took."""

    sent: list[tuple[dict[str, Any], str]]
    stepped: int


def _news(store: EncryptedStore, event_id: str, cursor: FeatureCursor, due: int) -> bool:
    """Whether a poll may have something to send: a window taken past the cursor, or a row
    committed since it (read by id, the primary key, so a quiet poll reads a few rows)."""
    if cursor.upto is None or cursor.late is not None:
        return True
    if due > cursor.window or (cursor.subject is not None and due == cursor.window):
        return True
    with store.session() as session:
        rows = session.execute(
            select(LiveWindowRecord.event_id, LiveWindowRecord.window,
                   LiveWindowRecord.score_record_id)
            .where(LiveWindowRecord.id > cursor.upto)
            .order_by(LiveWindowRecord.id).limit(_NEWS)).all()
    return len(rows) == _NEWS or any(
        e == event_id and w <= due and rid is not None for e, w, rid in rows)


def _rows(tx: Any, event_id: str, low: int, high: int, first: int, last: int
          ) -> list[LiveWindowRecord]:
    """The event's scored rows with ids in ``low+1..high``, windows ``first..last``."""
    return list(tx.session.scalars(
        select(LiveWindowRecord)
        .where(LiveWindowRecord.event_id == event_id,
               LiveWindowRecord.id > low, LiveWindowRecord.id <= high,
               LiveWindowRecord.window >= first, LiveWindowRecord.window <= last,
               LiveWindowRecord.score_record_id.is_not(None))))


def feature_events(store: EncryptedStore, event: EventView, key: KeyInfo,
                   cursor: FeatureCursor, now: datetime, horizon: datetime | None,
                   pages: int = PAGES) -> Polled:
    """The feed's windows after ``cursor``, each with the cursor after it (``cursor`` is
    advanced past them): the late rows, then up to ``pages`` pages of windows (module
    docstring). The one implementation behind the stream and the ``cursor`` GET."""
    stepped, due = _due(store, event.id, horizon)
    if not _news(store, event.id, cursor, due):
        return Polled([], stepped)
    bound = store.live_window_watermark()
    ahead = max(cursor.upto or 0, cursor.late[2] if cursor.late is not None else 0)
    if bound is None or ahead > bound:
        return Polled([], stepped)  # writers held the table, or a cursor from past the store
    if cursor.upto is None:
        cursor.upto = bound  # an older cursor: what is committed now counts as sent
    out: list[tuple[dict[str, Any], str]] = []
    with store.transaction(now, actor="console") as tx:
        if cursor.late is not None:  # the rest of the late rows a client went in the middle of
            window, subject, upto = cursor.late
            rows = _rows(tx, event.id, cursor.upto, upto, window, min(cursor.window, due))
            for w in window_objects(tx, key, rows):
                if cursor.covers(w["window"], w["subject"]) \
                        and not _at_or_before(w["window"], w["subject"], window, subject):
                    cursor.late = (w["window"], w["subject"], upto)
                    out.append((w, str(cursor)))
            cursor.upto, cursor.late = upto, None
        # the late rows: committed since the cursor, at or before its position
        rows = _rows(tx, event.id, cursor.upto, bound, 0, min(cursor.window, due))
        for w in window_objects(tx, key, rows):
            if cursor.covers(w["window"], w["subject"]):
                cursor.late = (w["window"], w["subject"], bound)
                out.append((w, str(cursor)))
        cursor.upto, cursor.late = bound, None
        # the windows after the position, committed up to the watermark
        top = min(due, max(cursor.window, -1) + pages * FEED_WINDOWS)
        rows = _rows(tx, event.id, -1, bound, cursor.window, top)
        for w in window_objects(tx, key, rows):
            if not cursor.covers(w["window"], w["subject"]):
                cursor.window, cursor.subject = w["window"], w["subject"]
                out.append((w, str(cursor)))
        if top >= cursor.window:  # every row up to the watermark of windows up to top was sent
            cursor.window, cursor.subject = top, None
    return Polled(out, stepped)


def poll_features(store: EncryptedStore, event: EventView, key: KeyInfo,
                  cursor: FeatureCursor, now: datetime, horizon: datetime | None
                  ) -> list[bytes]:
    """The stream's ``features`` events after ``cursor`` (advanced past them): the frames of
    :func:`feature_events`."""
    polled = feature_events(store, event, key, cursor, now, horizon)
    return [frame("features", w, after) for w, after in polled.sent]


def feature_page(store: EncryptedStore, event: EventView, key: KeyInfo,
                 cursor: FeatureCursor, now: datetime, horizon: datetime | None
                 ) -> dict[str, Any]:
    """One page of the GET feed asked with ``cursor``: the windows :func:`feature_events`
    sends (late rows, then one page of windows), ``next_cursor`` the cursor after them, and
    the ``after`` page's fields (``cursor``: the last window wholly passed)."""
    polled = feature_events(store, event, key, cursor, now, horizon, pages=1)
    passed = cursor.window if cursor.subject is None else cursor.window - 1
    return {"cursor": max(-1, passed), "windows": [w for w, _ in polled.sent],
            "stepped": polled.stepped, "next_cursor": str(cursor)}


def after_page(store: EncryptedStore, event: EventView, key: KeyInfo, after: int,
               now: datetime, horizon: datetime | None) -> dict[str, Any]:
    """The page ``after=W`` asks for, as ever (:func:`~.scorers.feature_windows`), and
    ``next_cursor``: ``C@M``, its ``cursor`` C and the watermark M taken before the page was
    read, so a client that goes on with ``cursor`` skips nothing committed since (a window
    committed while the page was read may come once more); a bare ``C`` while a writer held
    the table."""
    bound = store.live_window_watermark()
    page = feature_windows(store, event, key, after, now, horizon)
    at = page["cursor"]
    page["next_cursor"] = str(at) if bound is None else f"{at}@{bound}"
    return page


def feature_stream(store: EncryptedStore, event: EventView, key: KeyInfo,
                   cursor: FeatureCursor | None, *, now: Callable[[], datetime],
                   horizon: Callable[[], datetime | None],
                   disconnected: Callable[[], Awaitable[bool]], poll: float,
                   keepalive: float, sleep: Callable[[float], Awaitable[None]],
                   on_open: Callable[[], None], on_close: Callable[[], None],
                   key_live: Callable[[], bool]) -> AsyncIterator[bytes]:
    """The stream's bytes (module docstring), on the console's one polling loop."""
    at = cursor if cursor is not None else FeatureCursor(-1, None, 0)

    def step() -> list[bytes]:
        return poll_features(store, event, key, at, now(), horizon())

    return sse_loop(step, disconnected=disconnected, poll=poll, keepalive=keepalive,
                    sleep=sleep, on_open=on_open, on_close=on_close, key_live=key_live)
