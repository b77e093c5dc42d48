"""Wristbands stream over the DataChannel and the WebSocket; the right windows reach
JetStream, with pseudonyms and Msg-Ids, and a reconnect neither loses nor repeats a window."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pytest
from conftest import CONSENTING, OPTED_OUT, GatewayProcess, aligned_t0_ms, stream_messages

from pipeline.event import EventSpec
from pipeline.frames import FRAME_SAMPLES
from pipeline.live.client import WristbandClient
from pipeline.live.wire import (
    MSG_ID_HEADER,
    WRISTBAND_HEADER,
    decode_window,
    partition_of,
    stream_name,
)
from pipeline.synth import SyntheticCrowd
from tests.servers import NatsServer


def crowd(spec: EventSpec, wristbands: int, windows: int, seed: int = 11) -> np.ndarray:
    """``(wristbands, samples)`` of synthetic crowd, ``windows`` event windows long."""
    source = SyntheticCrowd([f"x{i}" for i in range(wristbands)], ["front"] * wristbands,
                            event_starts=spec.starts_at, event_ends=spec.ends_at,
                            script="steady", seed=seed)
    fpw = spec.frames_per_window
    parts = [w.pcm.reshape(wristbands, fpw * FRAME_SAMPLES)
             for w in source.windows(spec.starts_at + timedelta(minutes=1), fpw, windows)]
    return np.concatenate(parts, axis=1)


def _by_wristband(messages: list, pseudonym: str) -> list:
    return [m for m in messages if m.headers[WRISTBAND_HEADER] == pseudonym]


@pytest.mark.parametrize("transport", ["websocket", "webrtc"])
def test_windows_reach_jetstream_with_pseudonyms(
    transport: str, gateway: GatewayProcess, jetstream: NatsServer, live_spec: EventSpec,
    issue_token: Callable[[str], str], pseudonym_of: Callable[[str], str],
) -> None:
    serial = CONSENTING[0] if transport == "websocket" else CONSENTING[1]
    windows = 3
    audio = crowd(live_spec, 1, windows)[0]
    t0 = aligned_t0_ms(live_spec)
    client = WristbandClient(gateway.url, issue_token(serial), audio, t0_ms=t0,
                             transport=transport)

    async def run() -> None:
        await client.connect()
        await client.stream()
        await client.wait(published=client.frames - 1)
        await client.close()

    asyncio.run(run())
    pseudonym = pseudonym_of(serial)
    mine = _by_wristband(stream_messages(jetstream.url, stream_name(live_spec.id)), pseudonym)
    decoded = sorted((decode_window(m) for m in mine), key=lambda w: w.window)
    first = (t0 - int(live_spec.capture_starts.timestamp() * 1000)) // (
        live_spec.frames_per_window * 30)
    assert [w.window for w in decoded] == list(range(first, first + windows))
    assert [m.headers[MSG_ID_HEADER] for m in mine] == [f"{pseudonym}:{w.window}"
                                                        for w in decoded]
    for window, message in zip(decoded, mine, strict=True):
        assert window.frames_received == live_spec.frames_per_window
        assert window.frames_processed > 0 and window.features["level_dbfs"] < 0
        assert message.subject.endswith(f".{window.zone}.{partition_of(pseudonym)}")
        assert serial.encode() not in message.data + str(message.headers).encode()
        # this policy keeps raw audio but not speech: every gated-in frame is one or the other
        assert len(window.pcm_frames) + window.drops["speech"] == window.frames_processed


def _espeak_16k(text: str) -> np.ndarray:
    """Real speech from espeak-ng (Debian package; `make system-deps`), at 16 kHz."""
    import io
    import shutil
    import subprocess
    import wave

    binary = shutil.which("espeak-ng")
    if binary is None:
        pytest.fail("espeak-ng is not installed (`make system-deps` installs it)")
    data = subprocess.run([binary, "-v", "fr", "-s", "150", "--stdout", text], check=True,
                          capture_output=True, timeout=60).stdout
    with wave.open(io.BytesIO(data)) as wav:
        rate = wav.getframerate()
    samples = np.frombuffer(data[44:], "<i2").astype(np.float64)
    n = int(round(samples.size * 16000 / rate))
    return np.interp(np.arange(n) * rate / 16000, np.arange(samples.size), samples)


def _frames(pcm: np.ndarray) -> list[bytes]:
    whole = pcm[: pcm.size // FRAME_SAMPLES * FRAME_SAMPLES].astype("<i2")
    return [f.tobytes() for f in whole.reshape(-1, FRAME_SAMPLES)]


def _store_bytes(store_dir) -> bytes:  # type: ignore[no-untyped-def]
    return b"".join(p.read_bytes() for p in store_dir.rglob("*") if p.is_file())


def test_broker_disk_holds_no_serial_no_speech_no_non_consenting_audio(
    gateway: GatewayProcess, jetstream: NatsServer, live_spec: EventSpec,
    issue_token: Callable[[str], str],
) -> None:
    """A speaker, a wristband that opted out (a distinctive tone) and a quiet murmur stream in;
    then every file of the broker's store is searched for their bytes (raw and base64)."""
    import base64


    rng = np.random.default_rng(3)
    fpw = live_spec.frames_per_window
    speech = _espeak_16k("Bonjour, je m'appelle Camille, mon numéro est zéro six douze "
                         "trente-quatre cinquante-six.")
    speech = speech / np.abs(speech).max() * 12000
    total = -(-(speech.size + 2 * fpw * FRAME_SAMPLES) // (fpw * FRAME_SAMPLES)) * (
        fpw * FRAME_SAMPLES)
    murmur = np.convolve(rng.standard_normal(total), np.ones(4) / 4, "same")
    murmur = murmur / murmur.std() * 60  # about -55 dBFS: webrtcvad leaves it alone
    talker = murmur.copy()
    lead = fpw * FRAME_SAMPLES // 2
    talker[lead : lead + speech.size] += speech
    talker = np.clip(np.round(talker), -32768, 32767).astype(np.int16)
    quiet = np.clip(np.round(murmur * 1.01), -32768, 32767).astype(np.int16)
    tone = (8000 * np.sin(2 * np.pi * 1234.5 * np.arange(total) / 16000)).astype(np.int16)
    clean = np.zeros(total)
    clean[lead : lead + speech.size] = speech
    energy = (clean.reshape(-1, FRAME_SAMPLES) ** 2).mean(axis=1)
    spoken = [f for f, loud in zip(_frames(talker), energy > 0.05 * energy[energy > 0].mean(),
                                   strict=True) if loud]
    assert len(spoken) > 50

    t0 = aligned_t0_ms(live_spec, seconds_ago=60)
    clients = [WristbandClient(gateway.url, issue_token(serial), pcm, t0_ms=t0)
               for serial, pcm in ((CONSENTING[2], talker), (OPTED_OUT, tone),
                                   (CONSENTING[3], quiet))]

    async def run() -> None:
        for client in clients:
            await client.connect()
        await asyncio.gather(*(c.stream() for c in clients))
        await asyncio.gather(*(c.wait(published=c.frames - 1) for c in clients))
        for client in clients:
            await client.close()

    asyncio.run(run())
    disk = _store_bytes(jetstream.store_dir)

    def on_disk(frame: bytes) -> bool:
        return frame in disk or base64.b64encode(frame) in disk

    quiet_frames = _frames(quiet)
    assert sum(on_disk(f) for f in quiet_frames) > len(quiet_frames) // 2  # the search works
    assert not [f for f in spoken if on_disk(f)], "speech PCM reached the broker's disk"
    assert not [f for f in _frames(tone) if on_disk(f)], "opted-out audio reached the broker"
    roster = [w.serial for w in live_spec.wristbands]
    assert not [s for s in roster if s.encode() in disk], "a serial reached the broker"


@pytest.mark.parametrize("transport", ["websocket", "webrtc"])
def test_a_dropped_wristband_reconnects_without_losing_or_repeating_a_window(
    transport: str, gateway: GatewayProcess, jetstream: NatsServer, live_spec: EventSpec,
    issue_token: Callable[[str], str], pseudonym_of: Callable[[str], str],
) -> None:
    serial = CONSENTING[4] if transport == "websocket" else CONSENTING[5]
    fpw, windows = live_spec.frames_per_window, 4
    audio = crowd(live_spec, 1, windows, seed=5)[0]
    client = WristbandClient(gateway.url, issue_token(serial), audio,
                             t0_ms=aligned_t0_ms(live_spec, seconds_ago=90), transport=transport)
    before = gateway.stats()

    async def run() -> None:
        await client.connect()
        await client.stream(until=fpw + fpw // 2)  # half-way through the second window
        await client.wait(held=fpw + fpw // 2 - 1, published=fpw - 1)
        await client.drop()
        await client.connect()  # resends from the newest published frame + 1
        assert client.position == fpw
        await client.stream(until=3 * fpw + 30)
        await client.drop()
        await client.connect()
        await client.stream()
        await client.wait(published=client.frames - 1)
        await client.close()

    asyncio.run(run())
    pseudonym = pseudonym_of(serial)
    mine = _by_wristband(stream_messages(jetstream.url, stream_name(live_spec.id)), pseudonym)
    ids = [m.headers[MSG_ID_HEADER] for m in mine]
    assert len(ids) == len(set(ids)) == windows
    decoded = [decode_window(m) for m in mine]
    assert [w.frames_received for w in decoded] == [fpw] * windows
    assert sum(w.drops["late"] for w in decoded) == 0
    after = gateway.stats()
    assert after["frames_duplicate"] > before["frames_duplicate"]  # resent frames were ignored
    assert after["windows_published"] - before["windows_published"] == windows
