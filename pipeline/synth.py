"""A synthetic crowd: N wristbands in zones, seeded and reproducible, for demos, tests and bench.

The crowd follows a *script* over the event window: warm-up, build, peak, a sing-along, a
**dip** (music down, people chatting: sentiment falls below the Adaptive Flow threshold),
recovery and finale. Before the event the wristbands hear arrival chatter; after it they keep
listening to people leaving (the article's "always listening" wristband), which the event-window
gate must drop. The ``steady`` script keeps the crowd engaged throughout (no dip).

Sounds are built once per source as 8-second banks (cheering, clapping, PA music, crowd singing,
talk/babble, noise floor); each window mixes them per zone and gives every wristband its own
offset and gain, so wristbands are decorrelated without generating fresh noise per frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from .frames import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE, Window

__all__ = ["SyntheticCrowd", "SCRIPTS", "SOUNDS", "mix_at"]

SOUNDS = ("cheer", "clap", "music", "sing", "talk", "floor")
SILENT = -120.0

#: script -> list of (fraction of the event window where the phase starts, phase, dBFS mix)
SCRIPTS: dict[str, list[tuple[float, str, dict[str, float]]]] = {
    "dip": [
        (0.00, "warm-up", {"music": -23, "cheer": -30, "clap": -33, "talk": -36}),
        (0.10, "build", {"music": -22, "cheer": -25, "clap": -29, "talk": -40}),
        (0.30, "peak", {"music": -20, "cheer": -18, "clap": -24, "sing": -24}),
        (0.45, "sing-along", {"music": -22, "sing": -17, "cheer": -26, "clap": -32}),
        (0.55, "dip", {"music": -38, "talk": -31, "cheer": -60}),
        (0.70, "recovery", {"music": -22, "cheer": -20, "clap": -24, "sing": -30}),
        (0.85, "finale", {"music": -19, "cheer": -16, "clap": -21, "sing": -22}),
    ],
    "steady": [
        (0.00, "steady", {"music": -21, "cheer": -22, "clap": -27, "sing": -28}),
    ],
}
_BEFORE = {"talk": -34, "music": -46}  # arrivals chatting before the set
_AFTER = {"talk": -31, "music": -55, "cheer": -52}  # leaving: the wristband still listens
_FLOOR = -60.0
_FADE_S = 12.0
#: zone -> dB offset per sound (front is loud and engaged, the bar chats)
_ZONES: dict[str, dict[str, float]] = {
    "front": {"cheer": 3, "clap": 3, "sing": 3, "music": 3, "talk": -4},
    "centre": {},
    "bar": {"cheer": -5, "clap": -6, "sing": -5, "music": -4, "talk": 4},
    "back": {"cheer": -4, "clap": -4, "sing": -4, "music": -3, "talk": 0},
}


def mix_at(script: str, t: float, length: float) -> tuple[str, dict[str, float]]:
    """Phase name and dBFS mix at ``t`` seconds after the event start (crossfaded)."""
    if t < 0:
        return "before", dict(_BEFORE)
    if t >= length:
        return "after", dict(_AFTER)
    phases = SCRIPTS[script]
    idx = max(i for i, (start, _, _) in enumerate(phases) if start * length <= t)
    _, name, mix = phases[idx]
    if idx == 0:
        return name, dict(mix)
    since = t - phases[idx][0] * length
    a = min(1.0, since / _FADE_S)
    prev = phases[idx - 1][2]
    blended = {}
    for sound in sorted(set(prev) | set(mix)):  # crossfade amplitudes, not decibels
        before, after = prev.get(sound, SILENT), mix.get(sound, SILENT)
        amp = (1 - a) * 10 ** (before / 20) + a * 10 ** (after / 20)
        blended[sound] = 20 * float(np.log10(max(amp, 1e-6)))
    return name, blended


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


def _band(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[(f < lo) | (f > hi)] = 0
    return np.fft.irfft(spectrum, n)


def _envelope(rng: np.random.Generator, n: int, rate_hz: float, depth: float) -> np.ndarray:
    step = int(SAMPLE_RATE / rate_hz)
    knots = 1 + depth * rng.standard_normal(n // step + 2)
    return np.clip(np.interp(np.arange(n), np.arange(knots.size) * step, knots), 0.05, None)


def _banks(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """One unit-RMS bank per sound; a few hundred ms of numpy at source construction."""
    t = np.arange(n) / SAMPLE_RATE
    banks: dict[str, np.ndarray] = {}
    banks["cheer"] = _band(rng, n, 400, 5000) * _envelope(rng, n, 3, 0.45)
    clap = np.zeros(n)
    hits = np.cumsum(rng.exponential(SAMPLE_RATE / 9.0, int(n / SAMPLE_RATE * 18) + 16))
    burst = np.exp(-np.arange(160) / 25.0)
    for i in hits.astype(int)[hits < n - 160]:
        clap[i : i + 160] += rng.standard_normal(160) * burst * rng.uniform(0.5, 1.5)
    banks["clap"] = np.diff(clap, prepend=0.0)
    beat = (t * 124 / 60) % 1
    music = sum(0.3 * np.sin(2 * np.pi * f0 * t + rng.uniform(0, 6)) for f0 in (110, 220, 277))
    music = music + 2 * np.sin(2 * np.pi * 55 * t) * np.exp(-beat * 12)
    hats = _band(rng, n, 6000, 7900) * np.exp(-((2 * t * 124 / 60) % 1) * 30)
    banks["music"] = music + 0.5 * hats
    notes = rng.choice([220.0, 247.0, 262.0, 294.0, 330.0], size=int(n / SAMPLE_RATE * 2) + 2)
    f0 = np.repeat(notes, SAMPLE_RATE // 2)[:n] * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0 / SAMPLE_RATE)
    voices = sum(np.sin(k * phase) / k**1.2 for k in range(1, 16))
    banks["sing"] = voices + 0.3 * _band(rng, n, 300, 3000)
    banks["talk"] = _babble(rng, n, talkers=3)
    banks["floor"] = _band(rng, n, 50, 7000)
    return {name: _unit(x) for name, x in banks.items()}


def _babble(rng: np.random.Generator, n: int, talkers: int) -> np.ndarray:
    """Speech-like talk: glottal harmonics through three formants, syllable rate ~4 Hz."""
    t = np.arange(n) / SAMPLE_RATE
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    formants = sum(np.exp(-(((f - fc) / bw) ** 2)) for fc, bw in ((500, 150), (1500, 200),
                                                                    (2500, 300)))
    out = np.zeros(n)
    for _ in range(talkers):
        pitch = rng.uniform(100, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
        phase = 2 * np.pi * np.cumsum(pitch / SAMPLE_RATE)
        source = sum(np.sin(k * phase) / k for k in range(1, 30))
        voiced = np.fft.irfft(np.fft.rfft(source) * formants, n)
        syllables = np.clip(np.sin(2 * np.pi * rng.uniform(3.5, 5) * t + rng.uniform(0, 6)),
                            0, None) ** 2
        pauses = _envelope(rng, n, 0.7, 1.0) > 0.6
        out += voiced * syllables * pauses
    return out


@dataclass
class _Wearer:
    zone: str
    gain_db: float
    talk_db: float


class SyntheticCrowd:
    """A seeded synthetic crowd; implements :class:`~pipeline.frames.FrameSource`."""

    def __init__(
        self,
        serials: Sequence[str],
        zones: Sequence[str],
        *,
        event_starts: datetime,
        event_ends: datetime,
        script: str = "dip",
        seed: int = 2026,
    ) -> None:
        if len(serials) != len(zones):
            raise ValueError("one zone per serial")
        if script not in SCRIPTS:
            raise ValueError(f"unknown script {script!r}; use {', '.join(SCRIPTS)}")
        self.serials = list(serials)
        self.starts_at: datetime | None = None
        self.event_starts, self.event_ends = event_starts, event_ends
        self.script = script
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._wearers = [
            _Wearer(z, float(self._rng.normal(0, 2.0)), float(self._rng.uniform(-8, 4)))
            for z in zones
        ]
        self._bank_len = 0
        self._banks: dict[str, np.ndarray] = {}

    def available_windows(self, frames_per_window: int) -> int | None:
        return None

    def _ensure_banks(self, samples: int) -> None:
        length = max(8 * SAMPLE_RATE, samples + 2 * SAMPLE_RATE)
        if length <= self._bank_len:
            return
        self._bank_len = length
        banks = _banks(self._rng, length)
        # doubled so any offset can take a contiguous slice of ``length``
        self._banks = {k: np.concatenate([v, v]) for k, v in banks.items()}

    def phase_at(self, at: datetime) -> str:
        """Name of the script phase at an instant (for docs, tests and the summary)."""
        length = (self.event_ends - self.event_starts).total_seconds()
        return mix_at(self.script, (at - self.event_starts).total_seconds(), length)[0]

    def windows(
        self, start_at: datetime, frames_per_window: int, max_windows: int | None
    ) -> Iterator[Window]:
        samples = frames_per_window * FRAME_SAMPLES
        self._ensure_banks(samples)
        length = (self.event_ends - self.event_starts).total_seconds()
        span = timedelta(milliseconds=FRAME_MS * frames_per_window)
        zones = sorted({w.zone for w in self._wearers})
        index = 0
        while max_windows is None or index < max_windows:
            at = start_at + index * span
            middle = (at + span / 2 - self.event_starts).total_seconds()
            _, mix = mix_at(self.script, middle, length)
            zone_mix = {z: self._zone_mix(mix, z) for z in zones}
            talk_db = mix.get("talk", SILENT)
            pcm = np.empty((len(self._wearers), frames_per_window, FRAME_SAMPLES), np.int16)
            offsets = self._rng.integers(0, self._bank_len - samples, (len(self._wearers), 2))
            jitter = self._rng.normal(0, 1.0, len(self._wearers))
            talk = self._banks["talk"]
            for b, wearer in enumerate(self._wearers):
                o1, o2 = offsets[b]
                y = zone_mix[wearer.zone][o1 : o1 + samples]
                y = y * np.float32(10 ** ((wearer.gain_db + jitter[b]) / 20))
                db = talk_db + _ZONES.get(wearer.zone, {}).get("talk", 0) + wearer.talk_db
                if db > -90:
                    y += np.float32(10 ** (db / 20)) * talk[o2 : o2 + samples]
                np.clip(y * 32767, -32768, 32767, out=y)
                pcm[b] = y.astype(np.int16).reshape(frames_per_window, FRAME_SAMPLES)
            present = np.ones((len(self._wearers), frames_per_window), bool)
            yield Window(index=index, start_at=at, pcm=pcm, present=present)
            index += 1

    def _zone_mix(self, mix: dict[str, float], zone: str) -> np.ndarray:
        """Everything but the wearer's own chatter, for one zone, rolled by a random offset."""
        offsets = _ZONES.get(zone, {})
        out = np.zeros(self._bank_len, np.float32)
        for sound in ("cheer", "clap", "music", "sing", "floor"):
            db = _FLOOR if sound == "floor" else mix.get(sound, SILENT) + offsets.get(sound, 0)
            if db <= -90:
                continue
            o = int(self._rng.integers(0, self._bank_len))
            out += np.float32(10 ** (db / 20)) * self._banks[sound][o : o + self._bank_len]
        return out
