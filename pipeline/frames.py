"""The unit the pipeline moves: 16 kHz mono int16 PCM in 30 ms frames, grouped in windows.

A source hands the pipeline one :class:`Window` at a time: every wristband's frames for the same
span of virtual time, as one ``(wristbands, frames, 480)`` int16 array. Working on whole windows
is what lets the gates and features run vectorised over wristbands and frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np

__all__ = [
    "SAMPLE_RATE",
    "FRAME_MS",
    "FRAME_SAMPLES",
    "FRAME_BYTES",
    "FRAME",
    "VAD_RATES",
    "Window",
    "FrameSource",
    "frames_in",
]

SAMPLE_RATE = 16_000
FRAME_MS = 30
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 480
FRAME_BYTES = FRAME_SAMPLES * 2
FRAME = timedelta(milliseconds=FRAME_MS)
#: Sample rates webrtcvad accepts; a WAV at one of these is resampled to 16 kHz on read.
VAD_RATES = (8_000, 16_000, 32_000, 48_000)


def frames_in(span: timedelta) -> int:
    """Whole 30 ms frames in a span (a partial frame at the end is not captured)."""
    return int(span.total_seconds() * 1000) // FRAME_MS


@dataclass
class Window:
    """Every wristband's frames for one span of virtual time.

    ``pcm[b, f]`` is frame ``f`` of wristband ``b`` (``serials[b]``); ``present[b, f]`` is False
    where that wristband sent nothing (its file ended, its stream had a gap).
    """

    index: int
    start_at: datetime
    pcm: np.ndarray = field(repr=False)  # int16 (wristbands, frames, FRAME_SAMPLES)
    present: np.ndarray = field(repr=False)  # bool (wristbands, frames)
    #: frames from wristbands the source could not place (not on its list): no consent
    unregistered: int = 0

    @property
    def n_frames(self) -> int:
        return int(self.pcm.shape[1])

    def frame_times(self) -> np.ndarray:
        """Offsets of each frame from the window start, in milliseconds."""
        return np.arange(self.n_frames, dtype=np.int64) * FRAME_MS


class FrameSource(Protocol):
    """Where audio comes from: a synthetic crowd, a WAV directory, a NATS stream.

    ``serials`` is fixed for the life of the source and gives the wristband order of every
    window. ``starts_at`` is the capture start the source knows of (a WAV manifest), or None.
    """

    serials: list[str]
    starts_at: datetime | None

    def windows(
        self, start_at: datetime, frames_per_window: int, max_windows: int | None
    ) -> Iterator[Window]: ...

    def available_windows(self, frames_per_window: int) -> int | None:
        """How many windows the source can give, or None if it is unbounded."""
        ...

    # Optional: ``check() -> None`` raises InputError before anything is stored if the source
    # cannot deliver (a remote stream that is not there).
