"""Write a source's audio as WAV files, one per wristband (``flowaudit demo-audio``).

The directory gets ``<serial>.wav`` files (16 kHz mono 16-bit) and a ``manifest.toml`` with the
capture start, so ``flowaudit run-event --source wav:DIR`` replays them on the same clock.
"""

from __future__ import annotations

import wave
from datetime import datetime, timedelta
from pathlib import Path

from retention.errors import InputError

from .frames import SAMPLE_RATE, FrameSource, frames_in
from .wavdir import MANIFEST

__all__ = ["write_wavs"]


def write_wavs(
    source: FrameSource, out: Path, *, start_at: datetime, duration: timedelta,
    frames_per_window: int = 200,
) -> list[Path]:
    """Render ``duration`` of ``source`` from ``start_at`` into ``out``; return the files."""
    total = frames_in(duration)
    if total <= 0:
        raise InputError("--duration must be at least one 30 ms frame, e.g. 2m")
    out.mkdir(parents=True, exist_ok=True)
    if any(out.glob("*.wav")) or (out / MANIFEST).exists():
        raise InputError(f"'{out}' already holds WAV files or a manifest; pick an empty directory")
    paths = [out / f"{serial}.wav" for serial in source.serials]
    if len(set(paths)) != len(paths) or any("/" in s or s.startswith(".") for s in source.serials):
        raise InputError("wristband serials cannot be used as file names")
    writers = []
    try:
        for path in paths:
            writer = wave.open(str(path), "wb")
            writer.setnchannels(1)
            writer.setsampwidth(2)
            writer.setframerate(SAMPLE_RATE)
            writers.append(writer)
        windows = -(-total // frames_per_window)
        written = 0
        for window in source.windows(start_at, frames_per_window, windows):
            take = min(frames_per_window, total - written)
            for b, writer in enumerate(writers):
                writer.writeframes(window.pcm[b, :take].astype("<i2").tobytes())
            written += take
    finally:
        for writer in writers:
            writer.close()
    stamp = start_at.isoformat().replace("+00:00", "Z")
    (out / MANIFEST).write_text(
        "# written by `flowaudit demo-audio`: the capture start of every file\n"
        f'starts_at = "{stamp}"\n',
        encoding="utf-8",
    )
    return paths
