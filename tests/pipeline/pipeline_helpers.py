"""Helpers shared by the pipeline tests (imported as ``pipeline_helpers``)."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from pipeline.event import default_event_file
from pipeline.frames import FrameSource, Window

DEMO_EVENT_DIR = default_event_file().parent  # the demo event shipped in the package
SET_START = datetime(2026, 6, 21, 20, 0, tzinfo=UTC)


def to_toml(doc: dict[str, Any]) -> str:
    """A small TOML writer for the shapes our event and policy files use."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, datetime):
            return v.isoformat().replace("+00:00", "Z")
        if isinstance(v, date):
            return v.isoformat()
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    def table(prefix: str, body: dict[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict) and not (
            isinstance(v, list) and v and isinstance(v[0], dict))}
        if prefix:
            lines.append(f"[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{k} = {value(v)}")
        for k, v in body.items():
            name = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                table(name, v)
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                for item in v:
                    lines.append(f"[[{name}]]")
                    for ik, iv in item.items():
                        lines.append(f"{ik} = {value(iv)}")

    table("", doc)
    return "\n".join(lines) + "\n"


def event_doc(**overrides: Any) -> dict[str, Any]:
    """A small event: a 5-minute set at 20:00Z, 1 min pre-roll, 1 min post-roll."""
    doc: dict[str, Any] = {
        "event": {
            "id": "test-set",
            "name": "Test set",
            "venue": "Test venue",
            "starts": SET_START,
            "ends": SET_START + timedelta(minutes=5),
        },
        "capture": {"pre_roll": "1m", "post_roll": "1m", "window": "6s",
                    "synthetic_script": "dip", "seed": 7},
        "selection": {"catalogue": str(DEMO_EVENT_DIR / "catalogue.csv"), "decision_every": "60s"},
        "artist": {
            "name": "Nova Lumen",
            "veto": str(DEMO_EVENT_DIR / "artist" / "veto.txt"),
            "pinned": str(DEMO_EVENT_DIR / "artist" / "pinned.txt"),
            "overrides": str(DEMO_EVENT_DIR / "artist" / "overrides.toml"),
        },
        "wristbands": {"generate": {"count": 24, "seed": 3, "staff": 0, "opted_out": 0.0,
                                    "withdrawn": 0.0, "late_arrivals": 0.0}},
    }
    for dotted, v in overrides.items():
        *parents, key = dotted.split("__")
        target = doc
        for p in parents:
            target = target.setdefault(p, {})
        if v is None:
            target.pop(key, None)
        else:
            target[key] = v
    return doc



def resample_to_16k(x: np.ndarray, rate: int) -> np.ndarray:
    """Band-limited resampling of a whole clip through the FFT."""
    n = int(round(x.size * 16000 / rate))
    spectrum = np.fft.rfft(x.astype(np.float64))
    keep = min(spectrum.size, n // 2 + 1)
    out = np.zeros(n // 2 + 1, complex)
    out[:keep] = spectrum[:keep]
    return np.fft.irfft(out, n) * n / x.size


def espeak(text: str, voice: str = "fr") -> np.ndarray:
    """Real synthetic speech from espeak-ng, as 16 kHz float samples (int16 scale)."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        pytest.fail("espeak-ng is not installed (`make system-deps` installs it)")
    wav_bytes = subprocess.run(
        [binary, "-v", voice, "-s", "150", "--stdout", text],
        check=True, capture_output=True, timeout=60,
    ).stdout
    with wave.open(io.BytesIO(wav_bytes)) as wav:
        rate = wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    samples = np.frombuffer(raw, "<i2").astype(np.float64)
    if samples.size == 0:  # espeak-ng on a pipe may leave the header's length at 0
        samples = np.frombuffer(wav_bytes[44:], "<i2").astype(np.float64)
    return resample_to_16k(samples, rate)


class CtrlC:
    """A real source that the operator stops with Ctrl-C before window ``at`` (or that fails
    there with ``error``)."""

    def __init__(
        self, inner: FrameSource, at: int, error: type[BaseException] = KeyboardInterrupt
    ) -> None:
        self.inner, self.at, self.error = inner, at, error
        self.serials, self.starts_at = inner.serials, inner.starts_at
        self.seed = getattr(inner, "seed", None)

    def available_windows(self, frames_per_window: int) -> int | None:
        return self.inner.available_windows(frames_per_window)

    def windows(
        self, start_at: datetime, frames_per_window: int, max_windows: int | None
    ) -> Iterator[Window]:
        for window in self.inner.windows(start_at, frames_per_window, max_windows):
            if window.index == self.at:
                raise self.error
            yield window
