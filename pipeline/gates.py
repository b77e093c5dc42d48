"""The capture gates: what may be processed at all, and what may reach the raw store.

Processing gates drop a frame entirely (it feeds neither sentiment nor storage):

1. **consent** — the wristband opted in and the frame is after consent was given and before it
   was withdrawn (``no_consent`` / ``withdrawn``); a wristband missing from the roster has no
   consent;
2. **event window** — the frame lies inside the event's hours (``outside_window``), when
   ``capture.event_window_only``;
3. **staff** — wristbands worn by staff or artists on duty (``staff``), when
   ``capture.drop_staff``: emotion inference on people at work is prohibited (AI Act
   Art 5(1)(f)). Staff frames are dropped before the voice detector runs, so no staff audio
   is analysed at all.

The **voice activity** gate (webrtcvad, aggressiveness from ``capture.vad_aggressiveness``)
runs on what is left. With ``capture.store_speech = false`` every frame webrtcvad marks as voice,
padded by ``HANGOVER_FRAMES`` on each side, is withheld from the raw store (``speech``); it still
contributes aggregate numbers (level, brightness, onset rate) to sentiment, because webrtcvad
marks loud cheering and music as "voice" too and sentiment would otherwise go blind exactly when
the crowd is loudest. Reported drop order: no_consent, withdrawn, outside_window, speech, staff.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import webrtcvad

try:  # the C function behind Vad.is_speech, without its per-call Python wrapper
    from _webrtcvad import process as _vad_process
except ImportError:  # pragma: no cover - another webrtcvad build
    _vad_process = None

from retention.errors import InputError
from retention.policy import Policy

from .event import EventSpec
from .frames import FRAME_BYTES, FRAME_MS, SAMPLE_RATE, Window

__all__ = ["DROP_REASONS", "HANGOVER_FRAMES", "Gates", "GateResult", "VoiceGate", "dilate"]

DROP_REASONS = ("no_consent", "withdrawn", "outside_window", "speech", "staff")
#: frames of padding around detected voice (90 ms): webrtcvad misses soft onsets and tails
HANGOVER_FRAMES = 3
_NEVER = np.iinfo(np.int64).max
_ALWAYS = np.iinfo(np.int64).min


def _ms(at: datetime) -> int:
    return int(round(at.timestamp() * 1000))


@dataclass
class GateResult:
    """Masks and counts of one window; all masks are ``(wristbands, frames)`` bool."""

    processed: np.ndarray  # passed consent, window and staff gates: feeds sentiment
    voiced: np.ndarray  # webrtcvad's raw decision on processed frames
    storable: np.ndarray  # processed and not withheld as speech: may reach the raw store
    drops: dict[str, np.ndarray]  # reason -> frames dropped per wristband

    def totals(self) -> dict[str, int]:
        return {reason: int(per.sum()) for reason, per in self.drops.items()}


def dilate(flags: np.ndarray, frames: int, carry: np.ndarray | None = None) -> np.ndarray:
    """Widen each True run by ``frames`` on both sides (within the window).

    ``carry`` (bool ``(B, frames)``) are the previous window's last flags, so a hangover that
    starts at the end of one window continues into the next.
    """
    if frames <= 0:
        return flags.copy()
    out = flags.copy()
    for s in range(1, frames + 1):
        out[:, s:] |= flags[:, :-s]
        out[:, :-s] |= flags[:, s:]
    if carry is not None:
        for s in range(1, frames + 1):  # a voiced frame s frames before the window start
            out[:, : frames - s + 1] |= carry[:, -s][:, None]
    return out


class VoiceGate:
    """webrtcvad over the processed frames, one C call per frame.

    webrtcvad adapts a noise model as it goes, so every wristband gets its own detector: one
    stream's crowd noise must not shape another's decisions.
    """

    def __init__(self, aggressiveness: int) -> None:
        self.aggressiveness = int(aggressiveness)
        try:
            webrtcvad.Vad(self.aggressiveness)
        except (ValueError, webrtcvad.Error) as exc:  # type: ignore[attr-defined]
            raise InputError(
                f"vad_aggressiveness {aggressiveness!r} is not accepted by webrtcvad; use 0-3"
            ) from exc
        self._detectors: dict[int, webrtcvad.Vad] = {}

    def _detector(self, wristband: int) -> webrtcvad.Vad:
        vad = self._detectors.get(wristband)
        if vad is None:
            vad = self._detectors[wristband] = webrtcvad.Vad(self.aggressiveness)
        return vad

    def detect(self, pcm: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Voice flags for the frames in ``mask`` (others stay False)."""
        voiced = np.zeros(mask.shape, bool)
        contiguous = np.ascontiguousarray(pcm)
        for b in np.flatnonzero(mask.any(axis=1)).tolist():
            detector = self._detector(b)
            view = memoryview(contiguous[b]).cast("B")
            idx = np.flatnonzero(mask[b])
            if _vad_process is not None:
                handle, process, n = detector._vad, _vad_process, FRAME_BYTES // 2
                flags = [
                    process(handle, SAMPLE_RATE, view[i * FRAME_BYTES : (i + 1) * FRAME_BYTES], n)
                    for i in idx.tolist()
                ]
            else:
                flags = [
                    detector.is_speech(view[i * FRAME_BYTES : (i + 1) * FRAME_BYTES], SAMPLE_RATE)
                    for i in idx.tolist()
                ]
            voiced[b, idx] = flags
        return voiced


class Gates:
    """All gates for one run: built from the policy, the event and the source's serials."""

    def __init__(self, policy: Policy, event: EventSpec, serials: Sequence[str]) -> None:
        capture = policy.capture
        self.require_consent = bool(capture.require_consent)
        self.window_only = bool(capture.event_window_only)
        self.drop_staff = bool(capture.drop_staff)
        self.store_speech = bool(capture.store_speech)
        self.voice = VoiceGate(capture.vad_aggressiveness)
        roster = event.roster()
        n = len(serials)
        self.consent_from = np.full(n, _NEVER, np.int64)
        self.consent_until = np.full(n, _NEVER, np.int64)
        self.is_staff = np.zeros(n, bool)
        self.known = np.zeros(n, bool)
        for i, serial in enumerate(serials):
            wb = roster.get(serial)
            if wb is None:  # not on the roster: nobody consented for this wristband
                if not self.require_consent:
                    self.consent_from[i] = _ALWAYS
                continue
            self.known[i] = True
            self.is_staff[i] = wb.is_staff
            if wb.consent == "opted_out":  # a refusal stops capture under every policy
                continue
            start = wb.consented_from()
            if start is not None and self.require_consent:
                self.consent_from[i] = _ms(start)
            else:
                self.consent_from[i] = _ALWAYS
            if wb.withdrawn_at is not None:
                self.consent_until[i] = _ms(wb.withdrawn_at)
        self.starts = _ms(event.starts_at)
        self.ends = _ms(event.ends_at)
        self._carry: np.ndarray | None = None

    def apply(self, window: Window) -> GateResult:
        t = _ms(window.start_at) + window.frame_times()[None, :]
        mask = window.present.copy()
        drops: dict[str, np.ndarray] = {}

        withdrawn = t >= self.consent_until[:, None]
        consented = (t >= self.consent_from[:, None]) & ~withdrawn
        drops["no_consent"] = (mask & ~consented & ~withdrawn).sum(axis=1)
        drops["withdrawn"] = (mask & withdrawn).sum(axis=1)
        mask &= consented

        if self.window_only:
            inside = (t >= self.starts) & (t < self.ends)
            drops["outside_window"] = (mask & ~inside).sum(axis=1)
            mask &= inside
        else:
            drops["outside_window"] = np.zeros(mask.shape[0], np.int64)

        staff = np.zeros(mask.shape, bool)
        if self.drop_staff:
            staff = mask & self.is_staff[:, None]
            mask &= ~staff

        voiced = self.voice.detect(window.pcm, mask)
        if self.store_speech:
            storable = mask.copy()
            drops["speech"] = np.zeros(mask.shape[0], np.int64)
        else:
            withheld = dilate(voiced, HANGOVER_FRAMES, self._carry) & mask
            storable = mask & ~withheld
            drops["speech"] = withheld.sum(axis=1)
        self._carry = voiced[:, -HANGOVER_FRAMES:].copy() if HANGOVER_FRAMES else None
        drops["staff"] = staff.sum(axis=1)
        ordered = {reason: drops[reason] for reason in DROP_REASONS}
        return GateResult(processed=mask, voiced=voiced, storable=storable, drops=ordered)


def frame_seconds(frames: int) -> float:
    """Seconds of audio in ``frames`` frames."""
    return frames * FRAME_MS / 1000
