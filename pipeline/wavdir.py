"""A directory of WAV files, one per wristband, as a frame source.

The serial is the file name without ``.wav``, unless ``manifest.toml`` in the directory maps
files to serials (and may give the capture start)::

    starts_at = "2026-06-21T19:49:30Z"
    [files]
    "band-01.wav" = "WB-000001"

Every file is checked before anything is processed — mono, 16-bit PCM, 8/16/32/48 kHz, a
readable header and as many samples as the header promises — so a bad file stops the run
before a single row is written: nothing already stored is touched, and nothing half-stored is
left behind. Each problem raises one :class:`InputError` naming the file and the fix.

The files carry no time of their own: without ``--now`` or ``starts_at`` they start at the
event's capture start, and recordings that then end before the set (or start after it) would
lose every frame to the event-window gate; :func:`window_miss` says so before the run.
"""

from __future__ import annotations

import math
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from retention.errors import InputError
from retention.ground.times import coerce_utc, to_utc
from retention.ground.tomlfile import read_toml

from .event import EventSpec
from .frames import FRAME, FRAME_MS, FRAME_SAMPLES, VAD_RATES, Window
from .resample import Resampler

__all__ = ["WavDirectory", "WavInfo", "inspect_wav", "window_miss", "MANIFEST"]

MANIFEST = "manifest.toml"
_CHUNK_FRAMES = 1 << 20


@dataclass(frozen=True)
class WavInfo:
    path: Path
    rate: int
    frames: int  # samples per channel in the file

    @property
    def output_frames(self) -> int:
        """30 ms frames this file yields at 16 kHz."""
        up, down = Resampler(self.rate).up, Resampler(self.rate).down
        return (self.frames * up // down) // FRAME_SAMPLES


def inspect_wav(path: Path) -> WavInfo:
    """Validate one WAV file completely (header and data length) without keeping its audio."""
    name = f"'{path}'"
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width = wav.getnchannels(), wav.getsampwidth()
            rate, frames = wav.getframerate(), wav.getnframes()
            if channels != 1:
                raise InputError(
                    f"{name} has {channels} channels; flowaudit needs mono (one wristband "
                    f"microphone per file): convert with `sox {path.name} -c 1 out.wav`"
                )
            if width != 2:
                raise InputError(
                    f"{name} is {8 * width}-bit; flowaudit reads 16-bit PCM: convert with "
                    f"`sox {path.name} -b 16 out.wav`"
                )
            if rate not in VAD_RATES:
                raise InputError(
                    f"{name} is sampled at {rate} Hz; use 8000, 16000, 32000 or 48000 Hz "
                    f"(`sox {path.name} -r 16000 out.wav`)"
                )
            if frames == 0:
                raise InputError(f"{name} holds no audio")
            got = 0
            while True:
                data = wav.readframes(_CHUNK_FRAMES)
                if not data:
                    break
                got += len(data)
    except InputError:
        raise
    except (wave.Error, EOFError, ValueError) as exc:
        raise InputError(
            f"{name} is not a readable PCM WAV file ({type(exc).__name__}: {exc}); "
            "re-export it as 16-bit mono PCM"
        ) from None
    except OSError as exc:
        raise InputError(f"{name} cannot be read ({exc.strerror or type(exc).__name__})") from None
    if got != frames * 2:
        raise InputError(
            f"{name} is truncated: its header promises {frames} samples but it holds "
            f"{got // 2}; re-copy or re-record the file"
        )
    return WavInfo(path=path, rate=rate, frames=frames)


def _read_manifest(directory: Path) -> tuple[dict[str, str] | None, datetime | None]:
    path = directory / MANIFEST
    if not path.exists():
        return None, None
    data = read_toml(path, what=f"'{path}'")
    extra = sorted(set(data) - {"starts_at", "files"})
    if extra:
        raise InputError(f"'{path}': unknown key {extra[0]!r}; allowed: starts_at, files")
    raw_starts = data.get("starts_at")
    starts = None
    if raw_starts is not None:
        try:
            starts = coerce_utc(raw_starts)
        except ValueError:
            raise InputError(
                f"'{path}': starts_at = {raw_starts!r} is not an ISO 8601 time"
            ) from None
    files = data.get("files")
    if files is None:
        return None, starts
    if not isinstance(files, dict) or not all(
        isinstance(v, str) and v.strip() for v in files.values()
    ):
        raise InputError(f"'{path}': [files] must map file names to serial strings")
    return {k: v.strip() for k, v in files.items()}, starts


class WavDirectory:
    """One WAV file per wristband; implements :class:`~pipeline.frames.FrameSource`."""

    def __init__(self, directory: str | Path) -> None:
        directory = Path(directory)
        if not directory.is_dir():
            raise InputError(f"wav source '{directory}' is not a directory")
        mapping, self.starts_at = _read_manifest(directory)
        files = sorted(p for p in directory.iterdir() if p.suffix.lower() == ".wav")
        if not files:
            raise InputError(f"wav source '{directory}' holds no .wav files")
        if mapping is not None:
            for name in mapping:
                if not (directory / name).is_file():
                    raise InputError(f"'{directory / MANIFEST}' lists '{name}', which is missing")
            unlisted = [p for p in files if p.name not in mapping]
            if unlisted:
                raise InputError(
                    f"'{unlisted[0]}' is not listed in '{directory / MANIFEST}'; "
                    "add it to [files] or move it out of the directory"
                )
        self.infos = [inspect_wav(p) for p in files]  # everything checked before any use
        self.serials = [mapping[p.name] if mapping else p.stem for p in files]
        if len(set(self.serials)) != len(self.serials):
            raise InputError(
                f"wav source '{directory}': two files map to the same wristband; "
                "each wristband needs exactly one file"
            )
        self.directory = directory

    def available_windows(self, frames_per_window: int) -> int | None:
        longest = max(info.output_frames for info in self.infos)
        return -(-longest // frames_per_window)

    def span(
        self, start_at: datetime, frames_per_window: int, max_windows: int | None = None
    ) -> tuple[datetime, datetime]:
        """The virtual time the files cover when a run of ``max_windows`` starts at ``start_at``."""
        frames = max(info.output_frames for info in self.infos)
        if max_windows is not None:
            frames = min(frames, max_windows * frames_per_window)
        return start_at, start_at + frames * FRAME

    def windows(
        self, start_at: datetime, frames_per_window: int, max_windows: int | None
    ) -> Iterator[Window]:
        total = self.available_windows(frames_per_window) or 0
        if max_windows is not None:
            total = min(total, max_windows)
        span = timedelta(milliseconds=FRAME_MS * frames_per_window)
        handles = []
        try:
            for info in self.infos:
                handles.append((wave.open(str(info.path), "rb"), Resampler(info.rate), info))
            for index in range(total):
                pcm = np.zeros((len(handles), frames_per_window, FRAME_SAMPLES), np.int16)
                present = np.zeros((len(handles), frames_per_window), bool)
                for b, (wav, resampler, info) in enumerate(handles):
                    samples = self._read(wav, resampler, frames_per_window, info)
                    whole = samples.size // FRAME_SAMPLES
                    if whole:
                        frames = samples[: whole * FRAME_SAMPLES].reshape(whole, FRAME_SAMPLES)
                        pcm[b, :whole] = frames
                        present[b, :whole] = True
                yield Window(index=index, start_at=start_at + index * span, pcm=pcm,
                             present=present)
        finally:
            for wav, _, _ in handles:
                wav.close()

    @staticmethod
    def _read(
        wav: wave.Wave_read, resampler: Resampler, frames: int, info: WavInfo
    ) -> np.ndarray:
        want = resampler.input_samples(frames * FRAME_SAMPLES)
        try:
            data = wav.readframes(want)
        except (wave.Error, EOFError, OSError) as exc:
            raise InputError(f"'{info.path}' became unreadable during the run ({exc})") from None
        raw = np.frombuffer(data, dtype="<i2")
        out = resampler.process(raw)
        return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def window_miss(
    source: WavDirectory,
    event: EventSpec,
    start_at: datetime,
    *,
    placed_by: str,
    duration: timedelta | None = None,
) -> str | None:
    """One line when every frame would fall outside the event window, saying how to fix it.

    ``placed_by`` says where ``start_at`` came from (``--now``, the manifest, the event's
    capture start); ``None`` means the files overlap the window.
    """
    windows = None if duration is None else math.ceil(duration / event.window)
    first, end = source.span(start_at, event.frames_per_window, windows)
    if end > event.starts_at and first < event.ends_at:
        return None
    before = end <= event.starts_at
    where = "before the event window opens" if before else "after the event window closes"
    return (
        f"the WAV files in '{source.directory}' cover {_span(first, end)} (placed by "
        f"{placed_by}), {where} ({_span(event.starts_at, event.ends_at)}): every frame will "
        f"be dropped as outside_window; give the recording's start with --now or starts_at in "
        f"'{source.directory / MANIFEST}'"
    )


def _span(first: datetime, end: datetime) -> str:
    """``2026-06-21 19:51:00 to 19:51:04 UTC``: to the second, the date once if it is one day."""
    a, b = to_utc(first), to_utc(end)
    tail = f"{b:%H:%M:%S}" if a.date() == b.date() else f"{b:%Y-%m-%d %H:%M:%S}"
    return f"{a:%Y-%m-%d %H:%M:%S} to {tail} UTC"
