"""`flowaudit worker`: commit an event's live windows from JetStream to the store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from pipeline.event import default_event_file, load_event
from pipeline.live.commit import WindowCommitter
from pipeline.live.selector import DEFAULT_SETTLE_SECONDS, CrowdStepper
from pipeline.live.worker import DEFAULT_DURABLE, Worker, WorkerConfig
from pipeline.sentiment import load_scorer
from retention.errors import InputError
from retention.policy import load_policy

from ._common import (
    DbOption,
    FormatOption,
    HomeOption,
    check_format,
    print_json,
    runtime_from,
    settings_from,
)

__all__ = ["register", "worker_command"]

NATS_URL_ENV = "FLOWAUDIT_NATS_URL"


def worker_command(
    event: Annotated[
        Path | None,
        typer.Option("--event", help="Event file (TOML), the same the gateway serves; default: "
                     "the bundled demo event."),
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option("--policy", help="Policy name or .toml file (default: the home's policy); "
                     "every worker and the gateway must use the same one."),
    ] = None,
    nats_url: Annotated[
        str | None,
        typer.Option("--nats", help=f"NATS server URL (default: ${NATS_URL_ENV} or "
                     "nats://127.0.0.1:4222)."),
    ] = None,
    event_id: Annotated[
        str | None,
        typer.Option("--event-id", help="The live event's id if it is not the event file's."),
    ] = None,
    durable: Annotated[
        str, typer.Option("--durable", help="Durable consumer name: workers that give the same "
                          "name share the stream's work.")
    ] = DEFAULT_DURABLE,
    batch: Annotated[int, typer.Option("--batch", help="Messages fetched per pull.")] = 32,
    ack_wait: Annotated[
        float, typer.Option("--ack-wait", help="Seconds before an unacked window is "
                            "redelivered to another worker (used when the consumer is created).")
    ] = 30.0,
    max_deliver: Annotated[
        int, typer.Option("--max-deliver", help="Deliveries of one message before the broker "
                          "gives up on it (used when the consumer is created).")
    ] = 20,
    settle: Annotated[
        float, typer.Option("--settle", help="Seconds after a window's first commit before its "
                            "crowd step runs without waiting for quiet wristbands.")
    ] = DEFAULT_SETTLE_SECONDS,
    exit_when_idle: Annotated[
        float | None,
        typer.Option("--exit-when-idle", help="Exit 0 after this many seconds without a message "
                     "(default: run until SIGTERM or Ctrl-C)."),
    ] = None,
    metrics_file: Annotated[
        Path | None,
        typer.Option("--metrics-file", help="Keep the worker's counts in this JSON file, "
                     "rewritten whenever the stream pauses, and every 0.25 s while it does not."),
    ] = None,
    home: HomeOption = None,
    db: DbOption = None,
    format: FormatOption = "text",
) -> None:
    """Commit an event's live windows from NATS JetStream to the store, idempotently.

    Start as many workers as you like, on one machine or many, with the same --event,
    --policy, --nats, database and --durable: they share one durable pull consumer. Each
    window is scored, its storable PCM (sealed), score and drop counts committed once
    (unique per event, wristband and window), and only then acked; a killed worker's
    unacked windows come back after --ack-wait to another worker. One worker at a time takes
    each window's crowd step and next-track decision. SIGTERM finishes the window in hand
    and exits 0; the counts (windows committed, duplicates skipped, redeliveries, refused by
    reason, latency from Flowaudit-Sent to commit) are printed at the end.
    """
    fmt = check_format(format)
    if batch < 1 or ack_wait <= 0 or max_deliver < 1 or settle < 0:
        raise InputError("--batch and --max-deliver must be 1 or more, --ack-wait positive and "
                         "--settle not negative")
    spec = load_event(event or default_event_file())
    settings = settings_from(home, db)
    chosen = load_policy(policy or settings.policy)
    url = nats_url or os.environ.get(NATS_URL_ENV) or "nats://127.0.0.1:4222"
    config = WorkerConfig(url=url, durable=durable, batch=batch, ack_wait=ack_wait,
                          max_deliver=max_deliver, exit_when_idle=exit_when_idle,
                          metrics_file=metrics_file)
    with runtime_from(home, db, None) as runtime:
        sel = chosen.selection
        scorer = load_scorer(sel.scorer, allow_third_party=bool(sel.third_party_scorers),
                             policy_name=chosen.name)
        committer = WindowCommitter(runtime.store, spec, chosen, scorer, event_id=event_id)
        stepper = CrowdStepper(runtime.store, spec, chosen, dict(scorer.main_parameters()),
                               scorer.name, event_id=event_id, settle=settle)
        stepper.register()
        # held shared by every worker: the live run shows as running while one is alive
        lock = runtime.store.run_lock(committer.event_id, shared=True)
        if not lock.acquire(wait_seconds=2):
            lock.release()
            raise InputError(f"a batch run of event {committer.event_id!r} holds it; wait for "
                             "it to end or give the live event another --event-id")
        try:
            metrics = Worker(committer, stepper, config).run()
        finally:
            lock.release()
    data = metrics.to_dict()
    if fmt == "json":
        print_json(data)
        return
    lat = data["latency_ms"]
    typer.echo(f"worker {committer.worker} on {url} (event {committer.event_id}, "
               f"consumer {durable})")
    typer.echo(f"  windows committed  {data['windows_committed']}  "
               f"({data['windows_per_second']}/s)")
    typer.echo(f"  duplicates skipped {data['duplicates_skipped']}, redeliveries "
               f"{data['redeliveries']}")
    refused = ", ".join(f"{k} {v}" for k, v in data["refused"].items()) or "none"
    typer.echo(f"  refused            {refused}")
    typer.echo(f"  crowd steps        {data['crowd_steps']}, decisions {data['decisions']}")
    if lat["p50"] is not None:
        typer.echo(f"  latency            sent -> committed p50 {lat['p50']:.1f} ms, "
                   f"p99 {lat['p99']:.1f} ms")


def register(app: typer.Typer) -> None:
    app.command("worker")(worker_command)
