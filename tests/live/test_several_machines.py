"""Several machines, no shared filesystem: four homes in four directories share one key store.

Home A is made by ``flowaudit init`` and moved into OpenBao with ``flowaudit keys use-shared``;
homes B, C and D are what other machines hold — a copy of A's ``flowaudit.toml`` and
``signing.key``, no key file — and join with ``flowaudit keys join``. One PostgreSQL schema,
one nats-server, one ``bao`` dev server (KV v2 at ``secret/``, Transit enabled).

A plays the gateway: it computes the wristbands' pseudonyms (the shared pepper) and publishes
their windows in the gateway's wire format. Two ``flowaudit worker`` processes in B and C
commit the live event, creating its bucket and subject keys concurrently. D reads every
sealed record, exports a wristband (``dsr export``) and ``audit verify`` passes. Then an
erasure from C and a purge from B: a process in D that had the keys cached refuses the
records, and no home can open them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowaudit.cli import app
from flowaudit.config import Settings, resolve_settings
from flowaudit.runtime import initialise_home, open_runtime
from retention.errors import RecordShreddedError
from tests.keys._helpers import copy_raw_rows, put_back
from tests.keys._shared import ask, child, joining_home, stop
from tests.keys.conftest import Bao, start_bao
from tests.live.worker_fixtures import (
    LIVE_POLICY,
    READ_AT,
    LiveSetup,
    all_windows,
    nats,
    publish,
    start_worker,
    store_view,
    verified,
)
from tests.pipeline.pipeline_helpers import SET_START, event_doc, to_toml
from tests.servers import NatsServer

__all__ = ["nats"]

pytestmark = pytest.mark.nats
WINDOWS = 5  # × 4 wristbands


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def bao(monkeypatch: pytest.MonkeyPatch) -> Iterator[Bao]:
    server = start_bao()
    monkeypatch.setenv("VAULT_TOKEN", server.token)  # the token: environment only
    try:
        yield server
    finally:
        server.stop()


def _machines(tmp: Path, pg_url: str, bao: Bao, monkeypatch: pytest.MonkeyPatch
              ) -> list[LiveSetup]:
    """Home A (init + use-shared) and B, C, D joining it; one LiveSetup per home."""
    for var in ("FLOWAUDIT_HOME", "FLOWAUDIT_DB_URL", "FLOWAUDIT_MASTER_KEY", "FLOWAUDIT_NOW",
                "FLOWAUDIT_TRANSIT_TOKEN", "FLOWAUDIT_WORKER_FAULT"):
        monkeypatch.delenv(var, raising=False)
    a = initialise_home(tmp / "machine-a", db_url=pg_url, policy=LIVE_POLICY)
    out = cli("keys", "use-shared", "--address", bao.address, "--kv-path", "flowaudit/venue",
              "--home", str(a.home))
    assert "keystore.bin, master.key" in out
    a = resolve_settings(a.home)
    homes: list[Settings] = [a]
    for name in ("machine-b", "machine-c", "machine-d"):
        joined = joining_home(a, tmp / name)
        assert "joined the shared key store" in cli("keys", "join", "--home", str(joined.home))
        homes.append(joined)
    event_file = tmp / "event.toml"  # each machine gets the same event file and policy
    doc = event_doc(**{"event__id": "live-set", "wristbands__generate__count": 4})
    event_file.write_text(to_toml(doc), encoding="utf-8")
    from pipeline.event import load_event
    from retention.policy import load_policy

    event = load_event(event_file)
    runtime = open_runtime(homes[0], SET_START)  # the gateway's pseudonyms
    try:
        pseudonyms = [runtime.store.pseudonym(w.serial) for w in event.wristbands]
    finally:
        runtime.close()
    base = LiveSetup(a.home, a, event_file, event, load_policy(LIVE_POLICY), pseudonyms,
                     [w.zone for w in event.wristbands], tmp)
    return [replace(base, home=h.home, settings=h, workers=[]) for h in homes]


def _unreadable_everywhere(setups: list[LiveSetup], rid: str) -> None:
    for setup in setups:
        runtime = open_runtime(setup.settings, READ_AT)
        try:
            with pytest.raises(RecordShreddedError):
                runtime.store.get_raw(rid, now=READ_AT)
        finally:
            runtime.close()


@pytest.mark.postgres
def test_gateway_two_workers_and_a_reader_on_four_machines_share_one_key_store(
    tmp_path: Path, pg_url: str, bao: Bao, nats: NatsServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    gateway, machine_b, machine_c, machine_d = setups = _machines(tmp_path, pg_url, bao,
                                                                  monkeypatch)
    for setup in setups:
        assert not any((setup.home / n).exists()
                       for n in ("keystore.bin", "master.key", "keystore.transit.json"))
    windows = all_windows(gateway, WINDOWS)
    publish(nats.url, gateway, windows)
    workers = [start_worker(s, nats.url, "--batch", "2", name=s.home.name, idle=4.0)
               for s in (machine_b, machine_c)]
    for worker in workers:
        assert worker.wait() == 0, worker.stderr
    committed = [int(w.metrics().get("windows_committed", 0)) for w in workers]
    assert sum(committed) == len(windows)

    # machine D: every sealed record opens, every window once, the log verifies
    view = store_view(machine_d, readable=True)
    counts = Counter(view.keys)
    assert set(counts) == {(w.pseudonym, w.window) for w in windows} and max(counts.values()) == 1
    assert view.raw_segments == view.score_records == len(windows)
    assert verified(machine_d) == "ok"
    serial = gateway.event.wristbands[0].serial
    victim = gateway.pseudonyms[0]
    export = tmp_path / "export"
    cli("dsr", "export", serial, "--out", str(export), "--home", str(machine_d.home),
        "--now", READ_AT.isoformat())
    manifest = json.loads((export / "manifest.json").read_text())
    assert len(list((export / "raw").glob("*.wav"))) == WINDOWS
    assert serial not in json.dumps(manifest)

    # a long-running process on D caches the keys of two wristbands' records
    runtime = open_runtime(machine_d.settings, READ_AT)
    try:
        rows = copy_raw_rows(runtime)
    finally:
        runtime.close()
    victim_rid = next(r["id"] for r in rows if r["subject_pseudonym"] == victim)
    other_rid = next(r["id"] for r in rows if r["subject_pseudonym"] == gateway.pseudonyms[1])
    reader = child("reader", str(machine_d.home), READ_AT.isoformat())
    try:
        assert ask(reader) == "ready"
        assert ask(reader, f"read {victim_rid}").startswith("ok ")
        assert ask(reader, f"read {other_rid}").startswith("ok ")

        # erasure on machine C; the rows come back from a database backup: only keys decide
        cli("dsr", "erase", serial, "--home", str(machine_c.home), "--now", READ_AT.isoformat())
        runtime = open_runtime(machine_c.settings, READ_AT)
        try:
            put_back(runtime, [r for r in rows if r["subject_pseudonym"] == victim])
        finally:
            runtime.close()
        assert ask(reader, f"read {victim_rid}") == "refused RecordShreddedError"
        assert ask(reader, f"read {other_rid}").startswith("ok ")
        _unreadable_everywhere(setups, victim_rid)

        # the 72 h purge on machine B
        later = (READ_AT + timedelta(hours=80)).isoformat()
        out = cli("purge", "--home", str(machine_b.home), "--now", later)
        assert "shred" in out.lower()
        runtime = open_runtime(machine_b.settings, READ_AT)
        try:
            put_back(runtime, [r for r in rows if r["id"] == other_rid])
        finally:
            runtime.close()
        assert ask(reader, f"read {other_rid}") == "refused RecordShreddedError"
        _unreadable_everywhere(setups, other_rid)
        ask(reader, "quit")
    finally:
        stop(reader)
    assert verified(gateway) == "ok"  # erasure and purge receipts, signed on B and C
