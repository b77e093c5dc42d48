"""The console's one multiplexed stream (server-sent events) of a live or replayed event.

Each poll (every ``poll`` seconds, no busy loop) reads what was committed since the stream's
cursor and sends, in this order: ``sentiment`` per crowd window, ``control`` per control
stored, ``decision`` per decision (then ``adaptive_flow`` when it was one, and ``control``
with status ``applied`` when it was a console override), and ``privacy`` when its counts
changed (read at most every ``privacy_every`` seconds). A ``: keep-alive`` comment goes out
after ``keepalive`` quiet seconds.

Controls go before decisions: a control is stored before the decision that applies it, and
its row reads ``accepted`` until a later crowd step marks it applied, so a poll that first
sees both must send the stored control first and its ``applied`` last, or a client would
end on ``accepted``.

The cursor is ``W.D.C``: the last crowd window, decision id and control id sent; each event's
``id:`` is the cursor after it, so ``Last-Event-ID`` resumes exactly after the last event the
client saw. A new stream without one starts with the last ``BACKLOG`` crowd windows and the
last decision (what the chart needs). The generator ends when the client goes: it checks
before each poll, and :class:`EventStreamResponse` closes it however the response ends (its
``finally`` calls ``on_close`` at once, not whenever the garbage collector gets to it).
That loop is :func:`sse_loop`; the scorer feature stream (:mod:`.feature_stream`) runs it too.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Send

from .reader import EventView, Reader

__all__ = ["Cursor", "BACKLOG", "EventStreamResponse", "event_stream", "parse_cursor", "frame",
           "sse_loop"]

BACKLOG = 100
_CURSOR_RE = re.compile(r"(-?\d{1,12})\.(\d{1,15})\.(\d{1,15})")


@dataclass
class Cursor:
    window: int
    decision: int
    control: int

    def __str__(self) -> str:
        return f"{self.window}.{self.decision}.{self.control}"


def parse_cursor(value: str) -> Cursor | None:
    """A ``Last-Event-ID`` cursor, or ``None`` if it is not one."""
    match = _CURSOR_RE.fullmatch(value.strip())
    if match is None:
        return None
    w, d, c = (int(g) for g in match.groups())
    return Cursor(max(w, -1), d, c)


def frame(kind: str, data: dict[str, Any], cursor: object | None) -> bytes:
    """One server-sent event; ``cursor`` (any cursor, as text) is its ``id:``."""
    head = f"id: {cursor}\n" if cursor is not None else ""
    body = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return f"{head}event: {kind}\ndata: {body}\n\n".encode()


def start_cursor(reader: Reader, event_id: str, horizon: datetime | None) -> Cursor:
    """Where a new stream starts: the chart's backlog, the last decision, new controls."""
    crowd = reader.last_crowd(event_id, horizon)
    decision = reader.last_decision(event_id, horizon)
    controls = reader.controls(event_id, horizon=horizon, limit=100000)
    return Cursor(-1 if crowd is None else max(-1, crowd["window"] - BACKLOG),
                  0 if decision is None else decision["id"] - 1,
                  controls[-1]["id"] if controls else 0)


def _poll(reader: Reader, event: EventView, cursor: Cursor, horizon: datetime | None
          ) -> list[bytes]:
    out: list[bytes] = []
    for row in reader.crowd_windows(event.id, cursor.window, horizon):
        cursor.window = row["window"]
        out.append(frame("sentiment", row, cursor))
    for control in reader.controls(event.id, cursor.control, horizon):
        cursor.control = control["id"]
        out.append(frame("control", control, cursor))
    for decision in reader.decisions(event.id, cursor.decision, horizon):
        cursor.decision = decision["id"]
        out.append(frame("decision", decision, cursor))
        if decision["adaptive_flow"]:
            out.append(frame("adaptive_flow", {
                "at": decision["at"], "decision_id": decision["id"],
                "sentiment": decision["crowd_sentiment"],
                "threshold": decision["parameters"].get("adaptive_flow_threshold"),
                "track_id": decision["track_id"]}, cursor))
        if decision["artist_override"]:
            applied = _applied(reader, event.id, decision)
            if applied is not None:
                out.append(frame("control", applied, cursor))
    return out


def _applied(reader: Reader, event_id: str, decision: dict[str, Any]) -> dict[str, Any] | None:
    """The console override a decision applied (its explanation names the control)."""
    match = re.search(r"console #(\d+)", decision.get("explanation") or "")
    if match is None:
        return None
    rows = reader.controls(event_id, int(match.group(1)) - 1, limit=1)
    if not rows:
        return None
    return {**rows[0], "status": "applied", "decision_id": decision["id"],
            "applied_at": decision["at"]}


def _privacy_key(snapshot: dict[str, Any]) -> str:
    """The snapshot without its countdowns: a change worth sending."""
    stored = [{k: v for k, v in s.items() if k != "expires_in_seconds"}
              for s in snapshot["stored"]]
    return json.dumps({**snapshot, "stored": stored}, sort_keys=True)


def event_stream(reader: Reader, event: EventView, cursor: Cursor | None, *,
                 horizon: Callable[[], datetime | None],
                 privacy: Callable[[EventView, datetime | None], dict[str, Any]],
                 disconnected: Callable[[], Awaitable[bool]],
                 poll: float, keepalive: float, sleep: Callable[[float], Awaitable[None]],
                 on_open: Callable[[], None], on_close: Callable[[], None],
                 key_live: Callable[[], bool] = lambda: True,
                 privacy_every: float = 2.0) -> AsyncIterator[bytes]:
    """The stream's bytes (module docstring)."""
    state: dict[str, Any] = {"cursor": cursor, "privacy": "", "privacy_at": 0.0}

    def step() -> list[bytes]:
        at = horizon()
        if state["cursor"] is None:
            state["cursor"] = start_cursor(reader, event.id, at)
        frames = _poll(reader, event, state["cursor"], at)
        now = time.monotonic()
        if now - state["privacy_at"] >= privacy_every:
            state["privacy_at"] = now
            snapshot = privacy(event, at)
            key = _privacy_key(snapshot)
            if key != state["privacy"]:
                state["privacy"] = key
                frames.append(frame("privacy", snapshot, state["cursor"]))
        return frames

    return sse_loop(step, disconnected=disconnected, poll=poll, keepalive=keepalive,
                    sleep=sleep, on_open=on_open, on_close=on_close, key_live=key_live)


async def sse_loop(step: Callable[[], list[bytes]], *,
                   disconnected: Callable[[], Awaitable[bool]], poll: float,
                   keepalive: float, sleep: Callable[[float], Awaitable[None]],
                   on_open: Callable[[], None], on_close: Callable[[], None],
                   key_live: Callable[[], bool] = lambda: True) -> AsyncIterator[bytes]:
    """The polling loop every stream of the console runs: ``step`` (in a worker thread, it
    reads the store) gives the frames of one poll; a keep-alive comment after ``keepalive``
    quiet seconds; ``poll`` seconds between polls (no busy loop); until the client goes or
    ``key_live`` says the key that opened the stream was revoked (asked before each poll).
    ``on_open`` / ``on_close`` bracket it (closed by :class:`EventStreamResponse`)."""
    on_open()
    try:
        yield b"retry: 2000\n\n"
        last_sent = time.monotonic()
        while not await disconnected():
            if not await run_in_threadpool(key_live):
                return
            frames = await run_in_threadpool(step)
            now = time.monotonic()
            for chunk in frames:
                yield chunk
            if frames:
                last_sent = now
            elif now - last_sent >= keepalive:
                last_sent = now
                yield b": keep-alive\n\n"
            await sleep(poll)
    finally:
        on_close()


class EventStreamResponse(StreamingResponse):
    """A streaming response that closes its generator on every way out.

    When the client goes, Starlette cancels the response; if that lands while a chunk is being
    sent (the socket's buffer full), the generator is left suspended at its ``yield`` and its
    ``finally`` would run only when the garbage collector finalises it."""

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()
