"""With store_speech = false, real speech (espeak-ng, French) is detected and never stored."""

from __future__ import annotations

import wave
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from pipeline_helpers import SET_START, event_doc
from sqlalchemy import func, select

from flowaudit.runtime import Runtime
from pipeline import MemorySource, WavDirectory, load_event, run_event
from retention.models import RawSegment
from retention.policy import load_policy

LEAD = 3 * 16000  # 3 s of crowd before the speaker starts


@pytest.fixture(scope="module")
def mixed(french_speech: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crowd murmur with a French speaker in it; and which 30 ms frames hold real speech."""
    rng = np.random.default_rng(5)
    speech = french_speech / np.abs(french_speech).max() * 12000
    total = -(-(LEAD + speech.size + LEAD) // 480) * 480  # whole frames
    bed = np.convolve(rng.standard_normal(total), np.ones(4) / 4, "same")
    bed = bed / bed.std() * 120  # about −49 dBFS of murmur
    signal = bed.copy()
    signal[LEAD : LEAD + speech.size] += speech
    frames = total // 480
    clean = np.zeros(total)
    clean[LEAD : LEAD + speech.size] = speech
    energy = (clean[: frames * 480].reshape(frames, 480) ** 2).mean(axis=1)
    active = energy > 0.05 * energy[energy > 0].mean()  # frames where the words are
    pcm = np.clip(np.round(signal), -32768, 32767).astype(np.int16)
    return pcm, active


def _event(write_event: Callable[..., Path]) -> object:
    doc = event_doc(**{"event__starts": SET_START - timedelta(minutes=1)})
    doc["wristbands"] = {"list": [{"serial": "S-talker", "zone": "bar",
                                   "arrival": SET_START - timedelta(hours=1)}]}
    return load_event(write_event(doc))


def _stored_timeline(runtime: Runtime, frames: int) -> np.ndarray:
    """The stored audio of the wristband laid on the capture timeline (absent = zero)."""
    out = np.zeros(frames * 480, np.int16)
    pseudonym = runtime.store.pseudonym("S-talker")
    for seg in runtime.store.iter_raw(now=SET_START, pseudonym=pseudonym):
        offset = int((seg.start_at - SET_START).total_seconds() * 16000)
        pcm = np.frombuffer(seg.pcm, np.int16)
        out[offset : offset + pcm.size] = pcm
    return out.reshape(frames, 480)


def _speech_frames_column(runtime: Runtime) -> int:
    with runtime.store.session() as session:
        return int(session.scalar(select(func.sum(RawSegment.speech_frames))) or 0)


def test_real_speech_is_detected_and_never_stored(
    mixed: tuple[np.ndarray, np.ndarray], write_event: Callable[..., Path],
    pipeline_runtime: Runtime,
) -> None:
    pcm, active = mixed
    source = MemorySource.from_signals({"S-talker": pcm})
    summary = run_event(pipeline_runtime.store, _event(write_event),
                        load_policy("apple-music-2025"), source, start_at=SET_START)
    assert summary.dropped["speech"] >= active.sum()  # the words, plus padding around them
    assert summary.speech_seconds_stored == 0
    stored = _stored_timeline(pipeline_runtime, active.size)
    leaked = np.flatnonzero(active & np.any(stored != 0, axis=1))
    assert leaked.size == 0, f"speech frames stored: {leaked[:10]}"
    lead = np.zeros(active.size, bool)
    lead[10 : LEAD // 480 - 10] = True  # murmur well before the first word
    kept = np.any(stored[lead] != 0, axis=1).mean()
    assert kept > 0.5  # the crowd murmur around the speaker is still stored
    assert _speech_frames_column(pipeline_runtime) == 0


def test_store_speech_true_keeps_the_words(
    mixed: tuple[np.ndarray, np.ndarray], write_event: Callable[..., Path],
    pipeline_runtime: Runtime,
) -> None:
    pcm, active = mixed
    source = MemorySource.from_signals({"S-talker": pcm})
    summary = run_event(pipeline_runtime.store, _event(write_event),
                        load_policy("spotify-2026"), source, start_at=SET_START)
    assert summary.dropped["speech"] == 0
    stored = _stored_timeline(pipeline_runtime, active.size)
    assert np.array_equal(stored[active], pcm[: active.size * 480].reshape(-1, 480)[active])
    assert _speech_frames_column(pipeline_runtime) >= 0.8 * active.sum()
    assert summary.speech_seconds_stored > 0


@pytest.mark.parametrize("rate", [8000, 48000])
def test_other_vad_rates_are_resampled_and_gated(
    rate: int, mixed: tuple[np.ndarray, np.ndarray], write_event: Callable[..., Path],
    pipeline_runtime: Runtime, tmp_path: Path,
) -> None:
    pcm, active = mixed
    n = int(pcm.size * rate / 16000)
    resampled = np.fft.irfft(np.fft.rfft(pcm.astype(float)), n) * n / pcm.size
    folder = tmp_path / f"wav{rate}"
    folder.mkdir()
    with wave.open(str(folder / "S-talker.wav"), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.clip(np.round(resampled), -32768, 32767).astype("<i2").tobytes())
    summary = run_event(pipeline_runtime.store, _event(write_event),
                        load_policy("apple-music-2025"), WavDirectory(folder), start_at=SET_START)
    assert summary.frames_in == pytest.approx(active.size, abs=1)
    assert summary.dropped["speech"] >= 0.9 * active.sum()
    stored = _stored_timeline(pipeline_runtime, active.size)
    assert not np.any(active & np.any(stored != 0, axis=1))
