"""The framing and wire parsers never crash on arbitrary input; the gateway stops cleanly on
SIGTERM, flushing what is complete."""

from __future__ import annotations

import asyncio
import math
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from conftest import CONSENTING, aligned_t0_ms, start_gateway, stream_messages
from hypothesis import given, settings
from hypothesis import strategies as st

from flowaudit.config import Settings
from pipeline.event import EventSpec
from pipeline.features import FEATURE_NAMES
from pipeline.frames import FRAME_BYTES, FRAME_SAMPLES
from pipeline.live.client import WristbandClient
from pipeline.live.framing import ChunkRefused, encode_chunk, parse_chunk
from pipeline.live.wire import (
    WRISTBAND_HEADER,
    LiveWindow,
    decode_parts,
    encode_window,
    stream_name,
)
from retention.errors import InputError
from retention.policy import load_policy
from tests.servers import NatsServer


@given(st.binary(max_size=3000) | st.text(max_size=50))
@settings(max_examples=300, deadline=None)
def test_any_message_is_a_chunk_or_one_counted_refusal(message: bytes | str) -> None:
    try:
        chunk = parse_chunk(message)
    except ChunkRefused as refused:
        assert refused.reason in ("not_binary", "oversized", "malformed", "wrong_rate")
    else:
        assert len(chunk.pcm) == chunk.n * FRAME_BYTES


@given(st.integers(0, 2**32 - 51), st.integers(0, 2**63), st.integers(1, 50))
def test_chunks_round_trip(seq: int, t0: int, n: int) -> None:
    pcm = bytes(range(256)) * (n * FRAME_BYTES // 256) + bytes(n * FRAME_BYTES % 256)
    chunk = parse_chunk(encode_chunk(seq, t0, pcm))
    assert (chunk.seq, chunk.t0_ms, chunk.n, chunk.pcm) == (seq, t0, n, pcm)


def _window(**change: object) -> LiveWindow:
    base = dict(event_id="live.set", zone="front bar", pseudonym="a1" * 32, window=7,
                start_at=datetime(2026, 6, 21, 20, tzinfo=UTC), frames_per_window=100,
                frames_received=100, frames_processed=80, frames_voiced=10,
                features={n: (math.nan if n == "clap_rate" else 1.5) for n in FEATURE_NAMES},
                drops={"speech": 12}, sent_at=1.25, pcm=bytes(2 * FRAME_BYTES),
                pcm_frames=(3, 9))
    base.update(change)
    return LiveWindow(**base)  # type: ignore[arg-type]


def test_a_window_round_trips_and_a_tampered_one_is_refused() -> None:
    subject, headers, payload = encode_window(_window())
    back = decode_parts(subject, headers, payload)
    assert back.pcm_frames == (3, 9) and math.isnan(back.features["clap_rate"])
    assert back.drops["speech"] == 12 and back.subject == subject
    with pytest.raises(InputError, match="Nats-Msg-Id"):
        decode_parts(subject, {**headers, "Nats-Msg-Id": "x:7"}, payload)
    with pytest.raises(InputError, match="subject"):
        decode_parts(subject.replace("front_bar", "bar"), headers, payload)
    with pytest.raises(InputError, match="offset"):
        encode_window(_window(pcm_frames=(3,)))


@given(st.binary(max_size=2000))
@settings(max_examples=200, deadline=None)
def test_garbage_payloads_are_one_input_error(data: bytes) -> None:
    _, headers, _ = encode_window(_window())
    try:
        decode_parts("", headers, data)
    except InputError:
        pass


def test_stream_limits_follow_the_policy() -> None:
    from pipeline.live.stream_config import stream_limits

    memory = stream_limits(load_policy("privacy-by-default"))
    assert memory.storage == "memory" and memory.max_age == timedelta(seconds=120)
    assert not memory.carries_pcm
    disk = stream_limits(load_policy("apple-music-2025"))
    assert disk.storage == "file" and disk.max_age == timedelta(hours=1) and disk.carries_pcm


def test_sigterm_flushes_complete_windows_and_exits_cleanly(
    live_home: Settings, live_event: Path, live_spec: EventSpec, jetstream: NatsServer,
    live_dir: Path, issue_token: Callable[[str], str], pseudonym_of: Callable[[str], str],
) -> None:
    gateway = start_gateway(live_home.home, live_event, jetstream.url, live_dir / "sigterm.log")
    fpw = live_spec.frames_per_window
    audio = (np.random.default_rng(2).standard_normal(fpw * 5 // 2 * FRAME_SAMPLES)
             * 300).astype(np.int16)
    client = WristbandClient(gateway.url, issue_token(CONSENTING[3]), audio,
                             t0_ms=aligned_t0_ms(live_spec, seconds_ago=400))

    async def run() -> None:
        await client.connect()
        await client.stream()
        await client.wait(held=client.frames - 1)
        gateway.process.send_signal(signal.SIGTERM)  # with the band still connected
        await asyncio.to_thread(gateway.process.wait, 30)
        await client.drop()

    asyncio.run(run())
    assert gateway.stop(signal.SIGTERM) == 0
    log = gateway.output()
    assert "gateway stopped: " in log and "Traceback" not in log
    mine = [m for m in stream_messages(jetstream.url, stream_name(live_spec.id))
            if m.headers[WRISTBAND_HEADER] == pseudonym_of(CONSENTING[3])]
    # two full windows were published; the half window waits for a resend to the next gateway
    assert len(mine) == 2
