"""Streaming resampling of 8, 32 and 48 kHz PCM to the pipeline's 16 kHz.

webrtcvad accepts 8/16/32/48 kHz, but the features and the stored segments are defined at
16 kHz, so other rates are converted once on read: zero-stuff by L, low-pass with a
Blackman-windowed sinc, keep every M-th sample. The filter carries its history between chunks,
so a file read window by window resamples exactly like the whole file at once.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .frames import SAMPLE_RATE

__all__ = ["Resampler", "RATIOS"]

#: input rate -> (up L, down M) to reach 16 kHz
RATIOS = {8_000: (2, 1), 16_000: (1, 1), 32_000: (1, 2), 48_000: (1, 3)}
_TAPS_PER_PHASE = 24


class Resampler:
    """Converts successive int16 chunks at ``rate`` into float32 chunks at 16 kHz."""

    def __init__(self, rate: int) -> None:
        if rate not in RATIOS:
            raise ValueError(f"cannot resample {rate} Hz; supported: {sorted(RATIOS)}")
        self.rate = rate
        self.up, self.down = RATIOS[rate]
        self.passthrough = rate == SAMPLE_RATE
        factor = max(self.up, self.down)
        taps = 2 * _TAPS_PER_PHASE * factor + 1
        cutoff = 0.45 / factor  # cycles per (upsampled) sample, just under the new Nyquist
        k = np.arange(taps) - (taps - 1) / 2
        h = 2 * cutoff * np.sinc(2 * cutoff * k) * np.blackman(taps)
        self._h = (h / h.sum() * self.up)[::-1].astype(np.float32)
        self._history = np.zeros(taps - 1, np.float32)

    def input_samples(self, output_samples: int) -> int:
        """Input samples that yield ``output_samples`` at 16 kHz (exact for whole frames)."""
        return output_samples * self.down // self.up

    def process(self, chunk: np.ndarray) -> np.ndarray:
        x = chunk.astype(np.float32)
        if self.passthrough:
            return x
        up = np.zeros(x.size * self.up, np.float32)
        up[:: self.up] = x
        buf = np.concatenate([self._history, up])
        self._history = buf[buf.size - self._history.size :].copy()
        frames = sliding_window_view(buf, self._h.size)[:: self.down]
        return np.asarray(frames @ self._h, dtype=np.float32)[: up.size // self.down]
