"""Wristband → gateway chunks: the same bytes on a WebRTC DataChannel and on a WebSocket.

One binary message is one chunk of consecutive 30 ms frames of one wristband::

    magic  b"FAW1"                      4 bytes
    seq    uint32 big-endian            frame number of the chunk's first frame (stable
                                        across reconnects: a wristband resends from its
                                        last acknowledged frame)
    t0_ms  uint64 big-endian            UTC unix milliseconds of frame ``seq``
    n      uint16 big-endian            frames in the chunk, 1..MAX_FRAMES_PER_CHUNK
    rate   uint32 big-endian            sample rate; must be 16000
    pcm    n × 960 bytes                16 kHz mono int16 little-endian

Anything else is refused with one of :data:`REFUSALS` — counted by the gateway, answered to the
wristband, never a traceback and never published. The gateway answers an accepted chunk with
``{"ack": <newest frame held>, "published": <newest frame whose window is published>}``; a
wristband that reconnects resends from ``published + 1`` (the gateway ignores frames it holds).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from retention.errors import InputError

from ..frames import FRAME_BYTES, FRAME_MS, SAMPLE_RATE

__all__ = [
    "MAGIC",
    "HEADER",
    "MAX_FRAMES_PER_CHUNK",
    "MAX_CHUNK_BYTES",
    "REFUSALS",
    "Chunk",
    "ChunkRefused",
    "parse_chunk",
    "encode_chunk",
]

MAGIC = b"FAW1"
HEADER = struct.Struct(">4sIQHI")
MAX_FRAMES_PER_CHUNK = 50
MAX_CHUNK_BYTES = HEADER.size + MAX_FRAMES_PER_CHUNK * FRAME_BYTES
_MAX_SEQ = 2**32 - 1

#: why a chunk is refused; the gateway's ``/v1/stats`` counts each
REFUSALS = {
    "not_binary": "a text message where a binary chunk was expected",
    "oversized": f"more than {MAX_CHUNK_BYTES} bytes ({MAX_FRAMES_PER_CHUNK} frames)",
    "malformed": "short, bad magic, a frame count out of range or a length that does not "
                 "match it",
    "wrong_rate": f"a sample rate other than {SAMPLE_RATE}",
}


class ChunkRefused(InputError):
    """A chunk that is not in the framing above; ``reason`` is one of :data:`REFUSALS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"chunk refused ({reason}): {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Chunk:
    """One parsed chunk; ``pcm`` holds ``n`` frames of 960 bytes."""

    seq: int
    t0_ms: int
    n: int
    pcm: bytes = field(repr=False)

    @property
    def last(self) -> int:
        return self.seq + self.n - 1

    def frame_ms(self, j: int) -> int:
        """UTC unix milliseconds of frame ``seq + j``."""
        return self.t0_ms + j * FRAME_MS

    def frame(self, j: int) -> bytes:
        return self.pcm[j * FRAME_BYTES : (j + 1) * FRAME_BYTES]


def parse_chunk(message: bytes | bytearray | memoryview | str) -> Chunk:
    """Validate one message; raise :class:`ChunkRefused` with the reason if it is not a chunk."""
    if isinstance(message, str):
        raise ChunkRefused("not_binary", "send chunks as binary messages")
    data = bytes(message)
    if len(data) > MAX_CHUNK_BYTES:
        raise ChunkRefused("oversized", f"{len(data)} bytes; send at most "
                                        f"{MAX_FRAMES_PER_CHUNK} frames per chunk")
    if len(data) < HEADER.size:
        raise ChunkRefused("malformed", f"{len(data)} bytes is shorter than the "
                                        f"{HEADER.size}-byte header")
    magic, seq, t0_ms, n, rate = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ChunkRefused("malformed", "the chunk does not start with FAW1")
    if rate != SAMPLE_RATE:
        raise ChunkRefused("wrong_rate", f"{rate} Hz; resample to {SAMPLE_RATE} Hz mono int16")
    if not 1 <= n <= MAX_FRAMES_PER_CHUNK:
        raise ChunkRefused("malformed", f"{n} frames; send 1 to {MAX_FRAMES_PER_CHUNK}")
    if len(data) != HEADER.size + n * FRAME_BYTES:
        raise ChunkRefused("malformed", f"{len(data) - HEADER.size} PCM bytes for {n} frames "
                                        f"of {FRAME_BYTES}")
    if seq + n - 1 > _MAX_SEQ:
        raise ChunkRefused("malformed", "frame numbers run past 2^32")
    return Chunk(seq=seq, t0_ms=t0_ms, n=n, pcm=data[HEADER.size :])


def encode_chunk(seq: int, t0_ms: int, pcm: bytes, rate: int = SAMPLE_RATE) -> bytes:
    """The chunk of frames ``seq..`` starting at ``t0_ms`` (what a wristband sends)."""
    n, rest = divmod(len(pcm), FRAME_BYTES)
    if rest:
        raise InputError(f"{len(pcm)} PCM bytes are not whole 30 ms frames of {FRAME_BYTES}")
    return HEADER.pack(MAGIC, seq, t0_ms, n, rate) + bytes(pcm)
