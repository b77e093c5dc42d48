"""A NATS JetStream stream as a frame source (the scale-out path of the design).

The WebRTC DataChannel gateway of the article publishes each wristband's audio to a subject
per zone; the pipeline replays the stream window by window. Wire format, one message holding
consecutive frames of one wristband::

    subject   flowaudit.audio.<zone>
    headers   Flowaudit-Serial: <wristband serial>
              Flowaudit-Start:  <ISO 8601 UTC time of the message's first frame>
    payload   k × 960 bytes: 30 ms frames, 16 kHz mono int16 little-endian

Frames are placed on the run's virtual timeline by their start time; a window is handed on once
the stream has moved a full window past it (or is drained), so messages may arrive out of order
by up to one window. In **follow** mode (``run-event --follow``, a live tail) an idle stream is
not the end: a window is also handed on once the wall clock is ``grace`` seconds past its end,
and the source ends when the wall clock passes ``until`` (the event's capture end) or
:meth:`NatsSource.request_stop` is called (SIGTERM). Frames of wristbands that are not on the
roster are counted as ``no_consent`` drops (``Window.unregistered``) and never kept; frames
older than the window being assembled are counted as ``late``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from retention.errors import InputError
from retention.ground.times import parse_utc

from .frames import FRAME_BYTES, FRAME_MS, FRAME_SAMPLES, FrameSource, Window

__all__ = ["NatsSource", "publish", "STREAM", "SUBJECT_PREFIX"]

STREAM = "FLOWAUDIT_AUDIO"
SUBJECT_PREFIX = "flowaudit.audio"
SERIAL_HEADER = "Flowaudit-Serial"
START_HEADER = "Flowaudit-Start"


def _nats() -> Any:
    import nats  # imported lazily: only this source needs the client

    return nats


async def _quiet(_: Exception) -> None:
    """The client's default error callback prints tracebacks; ours stays silent."""


async def _connect(url: str) -> Any:
    """Connect once, failing fast: the client would otherwise retry an absent server forever."""
    target = url.split("://", 1)[-1].rsplit("@", 1)[-1]
    host, _, port = target.partition(":")
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host or "127.0.0.1", int(port or 4222)), timeout=3
        )
        writer.close()
        conn = await asyncio.wait_for(
            _nats().connect(url, connect_timeout=3, allow_reconnect=False,
                            max_reconnect_attempts=0, error_cb=_quiet),
            timeout=10,
        )
    except (OSError, ValueError, TimeoutError) as exc:
        raise InputError(
            f"NATS at {url} is unreachable ({type(exc).__name__}); start the server "
            "or fix the nats: source URL"
        ) from None
    return conn


class NatsSource:
    """Replays a JetStream stream; implements :class:`~pipeline.frames.FrameSource`."""

    def __init__(
        self,
        url: str,
        serials: Sequence[str],
        *,
        stream: str = STREAM,
        subject_prefix: str = SUBJECT_PREFIX,
        idle_timeout: float = 1.0,
        batch: int = 64,
        follow: bool = False,
        until: datetime | None = None,
        grace: float = 2.0,
    ) -> None:
        self.url = url
        self.follow, self.until, self.grace = follow, until, grace
        self._stop = threading.Event()
        self.serials = list(serials)
        self.starts_at: datetime | None = None
        self.stream, self.subject = stream, f"{subject_prefix}.>"
        self.idle_timeout, self.batch = idle_timeout, batch
        self._index = {serial: i for i, serial in enumerate(self.serials)}

    def available_windows(self, frames_per_window: int) -> int | None:
        return None

    def request_stop(self) -> None:
        """End a followed stream after the window being assembled (safe from a signal)."""
        self._stop.set()

    def _live_window_done(self, assembler: _Assembler, index: int) -> bool:
        """Follow mode, stream idle: hand the window on (or end) by the wall clock."""
        now = time.time()
        if self._stop.is_set() or (self.until is not None and now >= self.until.timestamp()):
            assembler.drained = True
            return True
        span = timedelta(milliseconds=FRAME_MS * assembler.fpw)
        return now >= (assembler.start_at + (index + 1) * span).timestamp() + self.grace

    def check(self) -> None:
        """Fail before anything is stored if the server or the stream is not there."""

        async def probe() -> None:
            sub, conn = await self._subscribe()
            await sub.unsubscribe()
            await conn.close()

        asyncio.run(probe())

    def windows(
        self, start_at: datetime, frames_per_window: int, max_windows: int | None
    ) -> Iterator[Window]:
        loop = asyncio.new_event_loop()
        conn = None
        try:
            sub, conn = loop.run_until_complete(self._subscribe())
            self._assembler = assembler = _Assembler(len(self.serials), frames_per_window,
                                                     start_at)
            index = 0
            while max_windows is None or index < max_windows:
                loop.run_until_complete(self._fill(sub, assembler, index))
                if assembler.drained and index > assembler.newest:
                    return
                yield assembler.take(index)
                index += 1
        finally:
            try:
                if conn is not None:
                    loop.run_until_complete(conn.close())
            finally:
                loop.close()

    @property
    def late_frames(self) -> int:
        """Frames that arrived after their window had been handed on (dropped)."""
        assembler = getattr(self, "_assembler", None)
        return assembler.late if assembler is not None else 0

    async def _subscribe(self) -> tuple[Any, Any]:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        conn = await _connect(self.url)
        try:
            js = conn.jetstream()
            config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE)
            sub = await js.pull_subscribe(self.subject, stream=self.stream, config=config)
        except Exception as exc:
            await conn.close()
            raise InputError(
                f"NATS stream {self.stream!r} cannot be read ({type(exc).__name__}); "
                "publish to it first or name another stream"
            ) from None
        return sub, conn

    async def _fill(self, sub: Any, assembler: _Assembler, index: int) -> None:
        """Read until the stream is a full window past ``index`` or has nothing more."""
        while not assembler.drained and assembler.newest <= index:
            if self.follow and self._stop.is_set():
                assembler.drained = True
                return
            try:
                messages = await sub.fetch(self.batch, timeout=self.idle_timeout)
            except TimeoutError:  # nats' own, or the bare one a pull whose time ran out raises
                if not self.follow:
                    assembler.drained = True
                    return
                if self._live_window_done(assembler, index):
                    return
                continue
            for message in messages:
                self._place(message, assembler)

    def _place(self, message: Any, assembler: _Assembler) -> None:
        headers = message.headers or {}
        payload: bytes = message.data
        frames = len(payload) // FRAME_BYTES
        if frames == 0 or len(payload) % FRAME_BYTES:
            raise InputError(
                f"NATS message {message.metadata.sequence.stream} on {message.subject} is not "
                "whole 30 ms frames of 16 kHz int16"
            )
        try:
            start = parse_utc(headers[START_HEADER])
        except (KeyError, ValueError):
            raise InputError(
                f"NATS message {message.metadata.sequence.stream} has no valid {START_HEADER} "
                "header"
            ) from None
        b = self._index.get(headers.get(SERIAL_HEADER, ""))
        pcm = np.frombuffer(payload, "<i2").reshape(frames, FRAME_SAMPLES)
        assembler.place(b, start, pcm)


class _Assembler:
    """Windows under construction, keyed by index on the run's timeline."""

    def __init__(self, wristbands: int, frames_per_window: int, start_at: datetime) -> None:
        self.wristbands, self.fpw, self.start_at = wristbands, frames_per_window, start_at
        self.pending: dict[int, tuple[np.ndarray, np.ndarray, list[int]]] = {}
        self.newest = -1
        self.taken = 0
        self.late = 0
        self.drained = False

    def _window(self, index: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
        if index not in self.pending:
            self.pending[index] = (
                np.zeros((self.wristbands, self.fpw, FRAME_SAMPLES), np.int16),
                np.zeros((self.wristbands, self.fpw), bool),
                [0],
            )
        return self.pending[index]

    def place(self, wristband: int | None, start: datetime, pcm: np.ndarray) -> None:
        first = round((start - self.start_at) / timedelta(milliseconds=FRAME_MS))
        for j in range(pcm.shape[0]):
            frame = first + j
            if frame < 0:
                continue  # before the run started listening
            index, offset = divmod(frame, self.fpw)
            if index < self.taken:
                self.late += 1
                continue
            self.newest = max(self.newest, index)
            frames, present, unregistered = self._window(index)
            if wristband is None:
                unregistered[0] += 1
            else:
                frames[wristband, offset] = pcm[j]
                present[wristband, offset] = True

    def take(self, index: int) -> Window:
        self.taken = index + 1
        frames, present, unregistered = (
            self.pending.pop(index) if index in self.pending else self._empty()
        )
        span = timedelta(milliseconds=FRAME_MS * self.fpw)
        return Window(index=index, start_at=self.start_at + index * span, pcm=frames,
                      present=present, unregistered=unregistered[0])

    def _empty(self) -> tuple[np.ndarray, np.ndarray, list[int]]:
        return (np.zeros((self.wristbands, self.fpw, FRAME_SAMPLES), np.int16),
                np.zeros((self.wristbands, self.fpw), bool), [0])


def publish(
    url: str,
    source: FrameSource,
    zones: Sequence[str],
    *,
    start_at: datetime,
    windows: int,
    frames_per_window: int = 200,
    stream: str = STREAM,
    subject_prefix: str = SUBJECT_PREFIX,
) -> int:
    """Publish ``windows`` windows of a source to JetStream (what the gateway does); return the
    number of messages. Creates the stream if it does not exist."""

    async def run() -> int:
        conn = await _connect(url)
        sent = 0
        try:
            js = conn.jetstream()
            try:
                await js.stream_info(stream)
            except Exception:
                await js.add_stream(name=stream, subjects=[f"{subject_prefix}.>"])
            for window in source.windows(start_at, frames_per_window, windows):
                for b, serial in enumerate(source.serials):
                    frames = np.flatnonzero(window.present[b])
                    if not frames.size:
                        continue
                    first = int(frames[0])
                    at = window.start_at + timedelta(milliseconds=FRAME_MS * first)
                    await js.publish(
                        f"{subject_prefix}.{zones[b]}",
                        window.pcm[b, first : int(frames[-1]) + 1].astype("<i2").tobytes(),
                        headers={SERIAL_HEADER: serial,
                                 START_HEADER: at.isoformat().replace("+00:00", "Z")},
                    )
                    sent += 1
        finally:
            await conn.close()
        return sent

    return asyncio.run(run())
