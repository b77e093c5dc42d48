"""broker-retention reads the live JetStream configuration from a real nats-server and fails
when the broker keeps audio longer than the policy allows."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from audit.checks import run_checks
from flowaudit.runtime import Runtime
from pipeline.live.stream_config import stream_config
from retention.policy import load_policy
from tests.servers import free_port, nats_server

from .scene import EVENT_ID, STARTS, clean_scene

RULE = ["broker-retention"]
CHECK = STARTS


def _make_stream(url: str, config: Any) -> None:
    async def make() -> None:
        import nats

        conn = await nats.connect(url)
        try:
            await conn.jetstream().add_stream(config)
        finally:
            await conn.close()

    asyncio.run(make())


@pytest.fixture
def broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with nats_server(tmp_path / "nats") as server:
        monkeypatch.setenv("FLOWAUDIT_NATS_URL", server.url)
        yield server


@pytest.mark.parametrize("policy", ["privacy-by-default", "apple-music-2025"])
def test_the_gateway_stream_config_passes(
    policy: str, sqlite_runtime: Runtime, broker: Any,
) -> None:
    scene = clean_scene(sqlite_runtime, policy)
    _make_stream(broker.url, stream_config(EVENT_ID, load_policy(policy)))
    assert scene.findings(CHECK, RULE) == []


@pytest.mark.parametrize("policy, change, says", [
    ("privacy-by-default", {"storage": "file"}, "on disk (file storage)"),
    ("privacy-by-default", {"max_age": 0.0}, "no age limit"),
    ("privacy-by-default", {"max_age": 3600.0}, "max_age 3600 s"),
    ("apple-music-2025", {"max_age": 0.0}, "max_age 0 = forever"),
    ("apple-music-2025", {"max_age": 48 * 3600.0}, "longer than the policy's raw audio"),
])
def test_a_broker_keeping_audio_too_long_fails(
    policy: str, change: dict[str, Any], says: str, sqlite_runtime: Runtime, broker: Any,
) -> None:
    from nats.js.api import StorageType

    scene = clean_scene(sqlite_runtime, policy)
    if "storage" in change:
        change = {"storage": StorageType.FILE}
    if change.get("max_age") == 0.0:
        change = {**change, "duplicate_window": 60.0}
    _make_stream(broker.url, stream_config(EVENT_ID, load_policy(policy), **change))
    (finding,) = scene.findings(CHECK, RULE)
    assert finding.severity == "error" and says in finding.message
    assert finding.evidence["event"] == EVENT_ID and finding.evidence["policy"] == policy


def test_the_replay_stream_with_defaults_keeps_pcm_forever(
    sqlite_runtime: Runtime, broker: Any,
) -> None:
    from nats.js.api import StreamConfig

    scene = clean_scene(sqlite_runtime)
    _make_stream(broker.url, StreamConfig(name="FLOWAUDIT_AUDIO", subjects=["flowaudit.audio.>"]))
    _make_stream(broker.url, StreamConfig(name="OTHER", subjects=["other.>"]))  # not ours
    (finding,) = scene.findings(CHECK, RULE)
    assert finding.evidence["stream"] == "FLOWAUDIT_AUDIO" and finding.evidence["event"] is None


def test_without_a_broker_the_rule_reads_nothing_and_an_unreachable_one_is_an_error(
    sqlite_runtime: Runtime, monkeypatch: pytest.MonkeyPatch,
) -> None:
    scene = clean_scene(sqlite_runtime)
    monkeypatch.delenv("FLOWAUDIT_NATS_URL", raising=False)
    assert scene.findings(CHECK, RULE) == []
    monkeypatch.setenv("FLOWAUDIT_NATS_URL", f"nats://127.0.0.1:{free_port()}")
    (finding,) = run_checks(scene.context(CHECK), RULE)
    assert finding.severity == "error" and "could not be evaluated" in finding.message
    assert "unreachable" in finding.message
