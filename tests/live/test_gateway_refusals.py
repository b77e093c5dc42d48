"""What the gateway refuses: no, wrong or revoked tokens, tokens of bands not on its roster,
and anything that is not a chunk. Each is counted by reason, nothing is published, the gateway
keeps serving and its log holds no traceback. The token CLI prints a token once, lists none."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import struct
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest
from conftest import CONSENTING, GatewayProcess, aligned_t0_ms, stream_count
from typer.testing import CliRunner

from flowaudit.cli import app
from flowaudit.config import Settings
from pipeline.event import EventSpec, Wristband
from pipeline.frames import FRAME_BYTES, FRAME_SAMPLES
from pipeline.live.client import Refused, WristbandClient
from pipeline.live.framing import HEADER, MAGIC, MAX_FRAMES_PER_CHUNK, encode_chunk
from pipeline.live.tokens import DeviceTokens
from pipeline.live.wire import stream_name
from tests.servers import NatsServer


def _count(jetstream: NatsServer, spec: EventSpec) -> int:
    return stream_count(jetstream.url, stream_name(spec.id))


def _connect(gateway: GatewayProcess, token: str | None, transport: str) -> Refused:
    client = WristbandClient(gateway.url, token, np.zeros(FRAME_SAMPLES * 10, np.int16),
                             transport=transport)
    with pytest.raises(Refused) as refused:
        asyncio.run(client.connect())
    return refused.value


@pytest.mark.parametrize("transport", ["websocket", "webrtc"])
def test_no_wrong_revoked_or_unknown_tokens_get_401_and_are_counted(
    transport: str, gateway: GatewayProcess, jetstream: NatsServer, live_spec: EventSpec,
    tokens: DeviceTokens, issue_token: Callable[[str], str],
) -> None:
    revoked = issue_token(CONSENTING[6])
    tokens.revoke(datetime.now(UTC), serial=CONSENTING[6])
    ghost = dataclasses.replace(live_spec, wristbands=[Wristband(serial="WB-GHOST", zone="x")])
    unknown = DeviceTokens(tokens.store, ghost).issue("WB-GHOST", datetime.now(UTC)).token
    published, before = _count(jetstream, live_spec), gateway.stats()["refused"]
    cases = {None: "no_token", "fwb_" + "A" * 43: "bad_token", "garbage": "bad_token",
             revoked: "revoked_token", unknown: "unknown_wristband"}
    for token, reason in cases.items():
        refused = _connect(gateway, token, transport)
        assert refused.status == 401 and refused.reason == reason
    after = gateway.stats()["refused"]
    for reason in set(cases.values()):
        expected = sum(1 for r in cases.values() if r == reason)
        assert after.get(reason, 0) - before.get(reason, 0) == expected, reason
    assert _count(jetstream, live_spec) == published
    assert "Traceback" not in gateway.output()


def _chunks(t0: int) -> dict[str, bytes | str]:
    frame = np.full(FRAME_SAMPLES, 1000, "<i2").tobytes()
    good = encode_chunk(0, t0, frame * 2)
    return {
        "short": b"FAW1\x00\x01",
        "bad magic": b"XXXX" + good[4:],
        "length mismatch": good[:-7],
        "zero frames": HEADER.pack(MAGIC, 0, t0, 0, 16000),
        "wrong rate": encode_chunk(0, t0, frame * 2, rate=48000),
        "oversized": encode_chunk(0, t0, frame * (MAX_FRAMES_PER_CHUNK + 1)),
        "way oversized": b"FAW1" + bytes(200_000),
        "text": "hello",
        "seq past 2^32": HEADER.pack(MAGIC, 2**32 - 1, t0, 2, 16000) + frame * 2,
        "empty": b"",
    }


EXPECTED = {"short": "malformed", "bad magic": "malformed", "length mismatch": "malformed",
            "zero frames": "malformed", "wrong rate": "wrong_rate", "oversized": "oversized",
            "way oversized": "oversized", "text": "not_binary", "seq past 2^32": "malformed",
            "empty": "malformed"}


@pytest.mark.parametrize("transport", ["websocket", "webrtc"])
def test_bad_chunks_are_refused_by_reason_and_the_gateway_keeps_serving(
    transport: str, gateway: GatewayProcess, jetstream: NatsServer, live_spec: EventSpec,
    issue_token: Callable[[str], str],
) -> None:
    serial = CONSENTING[7]
    t0 = aligned_t0_ms(live_spec, seconds_ago=200 if transport == "webrtc" else 300)
    client = WristbandClient(gateway.url, issue_token(serial),
                             np.zeros(FRAME_SAMPLES, np.int16), t0_ms=t0, transport=transport)
    published, before = _count(jetstream, live_spec), gateway.stats()
    bad = {k: v for k, v in _chunks(t0).items() if not (transport == "webrtc" and k == "empty")}

    async def run() -> None:
        await client.connect()
        for message in bad.values():
            await client.send_raw(message)
        for _ in range(100):  # every refusal is answered
            if len(client.errors) == len(bad):
                break
            await asyncio.sleep(0.05)
        await client.close()

    asyncio.run(run())
    assert client.errors == [EXPECTED[k] for k in bad]
    after = gateway.stats()
    for reason in set(EXPECTED.values()):
        expected = sum(1 for k in bad if EXPECTED[k] == reason)
        assert after["refused"].get(reason, 0) - before["refused"].get(reason, 0) == expected
    assert after["frames_in"] == before["frames_in"]
    assert _count(jetstream, live_spec) == published
    log = gateway.output()
    assert "Traceback" not in log and "Error" not in log
    assert httpx_ok(gateway)


def httpx_ok(gateway: GatewayProcess) -> bool:
    import httpx

    return httpx.get(gateway.url + "/v1/health", timeout=5).json()["status"] == "ok"


def test_the_token_cli_prints_a_token_once_and_lists_none(
    live_home: Settings, live_event: object, tokens: DeviceTokens,
) -> None:
    runner = CliRunner()
    base = ["--home", str(live_home.home), "--event", str(live_event)]
    issued = runner.invoke(app, ["gateway", "token", "issue", CONSENTING[0], *base,
                                 "--format", "json"])
    assert issued.exit_code == 0, issued.output
    token = json.loads(issued.stdout)["token"]
    assert tokens.authenticate(token) == tokens.store.pseudonym(CONSENTING[0])
    listed = runner.invoke(app, ["gateway", "token", "list", *base, "--format", "json"])
    assert listed.exit_code == 0 and token not in listed.stdout
    assert CONSENTING[0] not in listed.stdout
    rows = json.loads(listed.stdout)
    assert any(r["revoked_at"] is None for r in rows)
    revoked = runner.invoke(app, ["gateway", "token", "revoke", CONSENTING[0], *base])
    assert revoked.exit_code == 0 and "revoked 1 token" in revoked.stdout
    with pytest.raises(Exception, match="revoked_token"):
        tokens.authenticate(token)
    unknown = runner.invoke(app, ["gateway", "token", "issue", "WB-NOT-THERE", *base])
    assert unknown.exit_code != 0 and "Traceback" not in unknown.output
    assert unknown.output.count("\n") == 1 and "not on the roster" in unknown.output
    assert "WB-NOT-THERE" not in unknown.output
    # the audit log has the issue and revoke entries, with pseudonyms and no serial or token
    import sqlalchemy as sa

    with tokens.store.session() as session:
        rows = session.execute(sa.text(
            "SELECT action, details FROM audit_log WHERE action LIKE 'device_token.%'")).all()
    assert {r[0] for r in rows} == {"device_token.issue", "device_token.revoke"}
    text = " ".join(str(r[1]) for r in rows)
    assert token not in text and not any(s in text for s in CONSENTING)


def test_frames_bytes_are_what_the_contract_says() -> None:
    chunk = encode_chunk(7, 1_700_000_000_123, bytes(FRAME_BYTES * 3))
    assert chunk[:4] == MAGIC and len(chunk) == 22 + 3 * FRAME_BYTES
    assert struct.unpack(">IQHI", chunk[4:22]) == (7, 1_700_000_000_123, 3, 16000)
