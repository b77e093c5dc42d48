"""Per-wristband window assembly in the gateway: chunks in, gated :class:`LiveWindow` out.

Frames are placed on the event timeline by their time (``t0_ms + 30 ms · j``): slot
``round((t - capture_starts) / 30 ms)``, window ``slot // frames_per_window``. A window is
*final* once a frame of a later window arrives, once all its frames are in, or once its
wristband has sent nothing for it for ``grace`` seconds (gone quiet or away). Final windows
are gated (consent, event window, staff, voice activity — :class:`pipeline.gates.Gates`, one
per wristband so webrtcvad's noise model and hangover follow that wristband) and their
features extracted, in window order.

Frame numbers (``seq``) make resends harmless: a frame at or below the newest frame of a final
window is a ``duplicate`` and ignored, as is a second frame for a slot already filled; a frame
whose window is already final but that was never in it is ``late`` (counted in the next
window's drops). Frames outside the capture span (before the pre-roll, after the post-roll) are
counted as ``outside_capture`` and never kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from retention.policy import Policy

from ..event import EventSpec, Wristband
from ..features import FEATURE_NAMES, extract
from ..frames import FRAME_MS, FRAME_SAMPLES, Window
from ..gates import Gates
from .framing import Chunk
from .wire import DEFAULT_PARTITIONS, LiveWindow

__all__ = ["Placed", "Final", "WristbandWindows"]


def _ms(at: datetime) -> int:
    return int(round(at.timestamp() * 1000))


@dataclass
class Placed:
    """What one chunk did: frames kept, and those ignored by reason."""

    kept: int = 0
    duplicate: int = 0
    late: int = 0
    outside_capture: int = 0


@dataclass
class _Buffer:
    pcm: np.ndarray = field(repr=False)  # int16 (frames, 480)
    present: np.ndarray = field(repr=False)  # bool (frames,)
    max_seq: int = -1
    last_frame_ms: int = 0
    received_at: float = 0.0


@dataclass
class Final:
    """A final window and the newest frame number it holds (what the ack may move to)."""

    window: LiveWindow
    max_seq: int


class WristbandWindows:
    """The windows of one wristband being assembled; lives as long as the gateway, so a
    reconnecting wristband continues where it was."""

    def __init__(
        self,
        pseudonym: str,
        wristband: Wristband,
        event: EventSpec,
        policy: Policy,
        *,
        partitions: int = DEFAULT_PARTITIONS,
        grace_seconds: float = 2.0,
    ) -> None:
        self.pseudonym, self.zone, self.event = pseudonym, wristband.zone, event
        self.partitions = partitions
        self.gates = Gates(policy, event, [wristband.serial])
        raw = policy.retention.raw_audio
        self.keep_raw = raw is None or raw > timedelta(0)
        self.fpw = event.frames_per_window
        self.capture_ms = _ms(event.capture_starts)
        self.slots = (_ms(event.capture_ends) - self.capture_ms) // FRAME_MS
        self.window_ms = self.fpw * FRAME_MS
        self.grace_seconds = grace_seconds
        self.pending: dict[int, _Buffer] = {}
        self.next_index = 0  # windows below this are final
        self.held_seq = -1  # newest frame number received
        self.final_seq = -1  # newest frame number in a final window
        self.published_seq = -1  # newest frame number in a window the broker acknowledged
        self._late = 0

    def ack(self) -> dict[str, int]:
        return {"ack": self.held_seq, "published": self.published_seq}

    def add(self, chunk: Chunk, received_at: float) -> Placed:
        placed = Placed()
        first = (chunk.t0_ms - self.capture_ms) / FRAME_MS
        for j in range(chunk.n):
            seq = chunk.seq + j
            if seq <= self.final_seq:
                placed.duplicate += 1
                continue
            slot = int(round(first + j))
            if not 0 <= slot < self.slots:
                placed.outside_capture += 1
                continue
            index, offset = divmod(slot, self.fpw)
            if index < self.next_index:
                placed.late += 1
                continue
            buf = self.pending.get(index)
            if buf is None:
                buf = self.pending[index] = _Buffer(
                    np.zeros((self.fpw, FRAME_SAMPLES), np.int16), np.zeros(self.fpw, bool))
            if buf.present[offset]:
                placed.duplicate += 1
                continue
            buf.pcm[offset] = np.frombuffer(chunk.frame(j), "<i2")
            buf.present[offset] = True
            buf.max_seq = max(buf.max_seq, seq)
            buf.last_frame_ms = chunk.frame_ms(j)
            buf.received_at = received_at
            placed.kept += 1
        self.held_seq = max(self.held_seq, chunk.last)
        self._late += placed.late
        return placed

    def take_final(self, now: float, *, flush_all: bool = False) -> list[Final]:
        """Gate and return every window that is final at gateway time ``now`` (unix seconds),
        oldest first (``flush_all``: the newest too, complete or not)."""
        if not self.pending:
            return []
        newest = max(self.pending)
        out = []
        for index in sorted(self.pending):
            buf = self.pending[index]
            quiet = now - buf.received_at > self.grace_seconds
            if not (index < newest or flush_all or bool(buf.present.all()) or quiet):
                break
            del self.pending[index]
            self.next_index = index + 1
            self.final_seq = max(self.final_seq, buf.max_seq)
            out.append(Final(self._gate(index, buf), buf.max_seq))
        return out

    def _gate(self, index: int, buf: _Buffer) -> LiveWindow:
        start = self.event.capture_starts + index * self.event.window
        window = Window(index=index, start_at=start, pcm=buf.pcm[None], present=buf.present[None])
        gated = self.gates.apply(window)
        features = extract(window.pcm, gated.processed, gated.voiced)
        drops = {reason: int(per[0]) for reason, per in gated.drops.items()}
        drops["late"], self._late = self._late, 0
        pcm, speech = b"", 0
        offsets: tuple[int, ...] = ()
        if self.keep_raw:
            keep = np.flatnonzero(gated.storable[0])
            if keep.size:
                pcm = buf.pcm[keep].astype("<i2").tobytes()
                offsets = tuple(int(i) for i in keep)
                speech = int((gated.voiced[0] & gated.storable[0]).sum())
        return LiveWindow(
            event_id=self.event.id,
            zone=self.zone,
            pseudonym=self.pseudonym,
            window=index,
            start_at=start,
            frames_per_window=self.fpw,
            frames_received=int(buf.present.sum()),
            frames_processed=int(gated.processed[0].sum()),
            frames_voiced=int(gated.voiced[0].sum()),
            features={name: float(getattr(features, name)[0]) for name in FEATURE_NAMES},
            drops=drops,
            sent_at=buf.received_at,
            last_frame_ms=buf.last_frame_ms,
            pcm=pcm,
            pcm_frames=offsets,
            speech_frames=speech,
            partitions=self.partitions,
        )
