"""Frames already in memory as a source: replays, benchmarks and constructed test input."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

import numpy as np

from .frames import FRAME_MS, FRAME_SAMPLES, Window

__all__ = ["MemorySource"]


class MemorySource:
    """``pcm`` is int16 ``(wristbands, frames, 480)``; implements ``FrameSource``."""

    def __init__(
        self,
        serials: Sequence[str],
        pcm: np.ndarray,
        *,
        starts_at: datetime | None = None,
        present: np.ndarray | None = None,
    ) -> None:
        if pcm.dtype != np.int16 or pcm.ndim != 3 or pcm.shape[2] != FRAME_SAMPLES:
            raise ValueError("pcm must be int16 with shape (wristbands, frames, 480)")
        if pcm.shape[0] != len(serials):
            raise ValueError("one row of pcm per serial")
        self.serials = list(serials)
        self.starts_at = starts_at
        self.pcm = np.ascontiguousarray(pcm)
        self.present = (
            np.ones(pcm.shape[:2], bool) if present is None else np.asarray(present, bool)
        )

    @classmethod
    def from_signals(
        cls, signals: dict[str, np.ndarray], *, starts_at: datetime | None = None
    ) -> MemorySource:
        """One 1-D int16 signal per serial (16 kHz), padded to whole frames of equal length."""
        longest = max(s.size for s in signals.values())
        frames = -(-longest // FRAME_SAMPLES)
        pcm = np.zeros((len(signals), frames * FRAME_SAMPLES), np.int16)
        present = np.zeros((len(signals), frames), bool)
        for i, signal in enumerate(signals.values()):
            pcm[i, : signal.size] = signal
            present[i, : -(-signal.size // FRAME_SAMPLES)] = True
        return cls(list(signals), pcm.reshape(len(signals), frames, FRAME_SAMPLES),
                   starts_at=starts_at, present=present)

    def available_windows(self, frames_per_window: int) -> int | None:
        return -(-self.pcm.shape[1] // frames_per_window)

    def windows(
        self, start_at: datetime, frames_per_window: int, max_windows: int | None
    ) -> Iterator[Window]:
        total = self.available_windows(frames_per_window) or 0
        if max_windows is not None:
            total = min(total, max_windows)
        span = timedelta(milliseconds=FRAME_MS * frames_per_window)
        for index in range(total):
            lo = index * frames_per_window
            hi = lo + frames_per_window
            pcm = self.pcm[:, lo:hi]
            present = self.present[:, lo:hi]
            if pcm.shape[1] < frames_per_window:  # the last window: pad, mark absent
                pad = frames_per_window - pcm.shape[1]
                pcm = np.concatenate([pcm, np.zeros((pcm.shape[0], pad, FRAME_SAMPLES),
                                                    np.int16)], axis=1)
                present = np.concatenate([present, np.zeros((pcm.shape[0], pad), bool)],
                                         axis=1)
            yield Window(index=index, start_at=start_at + index * span,
                         pcm=np.ascontiguousarray(pcm), present=present.copy())
