"""A simulated wristband: streams 16 kHz int16 audio to the gateway like a real band would.

Used by the tests, the benchmark (``bench/live.py``) and ``make demo-live``. Two transports
with the same chunks (:mod:`pipeline.live.framing`): a WebRTC DataChannel negotiated with one
WHIP POST (aiortc), and the WebSocket fallback. Audio comes from a numpy array or a WAV file,
sent at real time (one 30 ms frame every 30 ms) or as fast as the link takes it.

Frame numbers start at 0 and frame ``k`` is stamped ``t0_ms + 30·k``, so a resend carries the
same numbers and times. The gateway's replies say which frames it holds (``ack``) and which are
in windows the broker has taken (``published``); after :meth:`WristbandClient.drop` and
:meth:`WristbandClient.connect`, streaming resumes from ``published + 1``. ``sent`` records the
send time of every chunk's last frame (for end-to-end latency).
"""

from __future__ import annotations

import asyncio
import json
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

from retention.errors import InputError

from ..frames import FRAME_BYTES, FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE
from .framing import MAX_FRAMES_PER_CHUNK, encode_chunk

__all__ = ["WristbandClient", "Refused", "read_wav_16k", "TRANSPORTS"]

TRANSPORTS = ("webrtc", "websocket")
#: as-fast-as-possible sending pauses while this much is queued on the DataChannel
_HIGH_WATER = 512 * 1024


class Refused(Exception):
    """The gateway refused the connection (HTTP status and its reason)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"gateway refused the wristband: {status} {reason}")
        self.status, self.reason = status, reason


def read_wav_16k(path: str | Path) -> np.ndarray:
    """A 16 kHz mono 16-bit WAV as int16 samples (other formats are refused)."""
    with wave.open(str(path), "rb") as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (SAMPLE_RATE, 1, 2):
            raise InputError(f"'{path}' is not 16 kHz mono 16-bit PCM")
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2").copy()


class WristbandClient:
    """One wristband streaming ``pcm`` (int16 samples; cut to whole 30 ms frames)."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        pcm: np.ndarray,
        *,
        t0_ms: int | None = None,
        transport: str = "websocket",
        chunk_frames: int = 10,
        realtime: bool = False,
    ) -> None:
        if transport not in TRANSPORTS:
            raise InputError(f"transport {transport!r}; use {' or '.join(TRANSPORTS)}")
        if not 1 <= chunk_frames <= MAX_FRAMES_PER_CHUNK:
            raise InputError(f"chunk_frames {chunk_frames}; use 1 to {MAX_FRAMES_PER_CHUNK}")
        self.base_url = base_url.rstrip("/")
        self.token, self.transport = token, transport
        frames = len(pcm) // FRAME_SAMPLES
        self.pcm = np.ascontiguousarray(pcm[: frames * FRAME_SAMPLES], dtype="<i2").tobytes()
        self.frames = frames
        self.t0_ms = int(time.time() * 1000) if t0_ms is None else int(t0_ms)
        self.chunk_frames, self.realtime = chunk_frames, realtime
        self.position = 0  # next frame to send
        self.held = -1
        self.published = -1
        self.errors: list[str] = []
        self.sent: dict[int, float] = {}  # last frame number of a chunk -> unix send time
        self._pc: Any = None
        self._channel: Any = None
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._location: str | None = None
        self._progress = asyncio.Event()
        self._opened = 0.0

    # -- connection -----------------------------------------------------------------------------
    async def connect(self) -> None:
        """Connect (again); sending resumes after the newest frame the broker has."""
        self.position = self.published + 1
        if self.transport == "websocket":
            await self._connect_ws()
        else:
            await self._connect_webrtc()
        self._opened = time.monotonic()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token is not None else {}

    async def _connect_ws(self) -> None:
        import websockets

        url = self.base_url.replace("http", "ws", 1) + "/v1/ws"
        try:
            self._ws = await websockets.connect(url, additional_headers=self._headers(),
                                                max_size=2**20)
        except websockets.InvalidStatus as exc:
            status = exc.response.status_code
            raise Refused(status, _reason(exc.response.body)) from None
        self._reader = asyncio.create_task(self._read_ws())

    async def _read_ws(self) -> None:
        try:
            async for message in self._ws:
                self._on_reply(message)
        except Exception:  # the connection went away: drop() or the gateway stopped
            pass

    async def _connect_webrtc(self) -> None:
        import httpx
        from aiortc import RTCPeerConnection, RTCSessionDescription

        pc = RTCPeerConnection()
        channel = pc.createDataChannel("frames", ordered=True)
        opened = asyncio.Event()
        channel.on("open", opened.set)
        channel.on("message", self._on_reply)
        await pc.setLocalDescription(await pc.createOffer())
        headers = {**self._headers(), "Content-Type": "application/sdp"}
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(self.base_url + "/v1/whip",
                                       content=pc.localDescription.sdp, headers=headers)
        if response.status_code != 201:
            await pc.close()
            raise Refused(response.status_code, _reason(response.content))
        self._location = response.headers["location"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
        await asyncio.wait_for(opened.wait(), 30)
        self._pc, self._channel = pc, channel

    def _on_reply(self, message: Any) -> None:
        try:
            reply = json.loads(message)
        except (TypeError, ValueError):
            return
        if "error" in reply:
            self.errors.append(str(reply["error"]))
        else:
            self.held = max(self.held, int(reply.get("ack", -1)))
            self.published = max(self.published, int(reply.get("published", -1)))
        self._progress.set()

    async def drop(self) -> None:
        """Lose the connection without saying goodbye (a band walking out of coverage)."""
        if self._ws is not None:
            transport = getattr(self._ws, "transport", None)
            if transport is not None:
                transport.abort()  # no close handshake
            await self._ws.close()
            self._ws = None
        if self._pc is not None:
            await self._pc.close()  # no DELETE: the gateway sees the peer fail
            self._pc = self._channel = None
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None

    async def close(self) -> None:
        """Leave properly (WHIP DELETE, WebSocket close)."""
        if self._location is not None and self._pc is not None:
            import httpx

            async with httpx.AsyncClient(timeout=10) as http:
                await http.delete(self.base_url + self._location)
            self._location = None
        await self.drop()

    # -- sending --------------------------------------------------------------------------------
    async def send_raw(self, message: bytes | str) -> None:
        """Send anything (tests of what the gateway refuses)."""
        if self._ws is not None:
            await self._ws.send(message)
        elif self._channel is not None:
            self._channel.send(message)
        else:
            raise InputError("the wristband is not connected")

    async def stream(self, until: int | None = None) -> None:
        """Send frames from ``position`` up to frame ``until`` (exclusive; default: all)."""
        end = self.frames if until is None else min(until, self.frames)
        started, first = time.monotonic(), self.position
        while self.position < end:
            n = min(self.chunk_frames, end - self.position)
            seq = self.position
            body = self.pcm[seq * FRAME_BYTES : (seq + n) * FRAME_BYTES]
            if self.realtime:  # a frame leaves when it has been captured
                due = started + (seq + n - first) * FRAME_MS / 1000
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            await self.send_raw(encode_chunk(seq, self.t0_ms + seq * FRAME_MS, body))
            self.sent[seq + n - 1] = time.time()
            self.position = seq + n
            if self._channel is not None:
                while self._channel.bufferedAmount > _HIGH_WATER:
                    await asyncio.sleep(0.005)
            elif not self.realtime and self.position % 200 == 0:
                await asyncio.sleep(0)

    async def wait(self, *, held: int | None = None, published: int | None = None,
                   replies: int | None = None, timeout: float = 20.0) -> None:
        """Wait until the gateway holds / has published a frame number (or time out)."""
        deadline = time.monotonic() + timeout
        while True:
            if ((held is None or self.held >= held)
                    and (published is None or self.published >= published)):
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"gateway acks: held {self.held}, published {self.published}")
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), min(left, 0.5))
            except TimeoutError:
                if self._ws is None and self._channel is None:
                    continue
                # the published ack only moves with replies: nudge with an empty resend
                if self.position > 0:
                    last = self.position - 1
                    body = self.pcm[last * FRAME_BYTES : (last + 1) * FRAME_BYTES]
                    await self.send_raw(encode_chunk(last, self.t0_ms + last * FRAME_MS, body))


def _reason(body: bytes | bytearray | None) -> str:
    try:
        return str(json.loads(bytes(body or b"{}")).get("error", ""))
    except ValueError:
        return ""
