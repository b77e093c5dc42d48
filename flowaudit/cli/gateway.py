"""`flowaudit gateway`: the live ingest gateway and the wristbands' device tokens."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from pipeline.event import default_event_file, load_event
from pipeline.live.gateway import Gateway
from pipeline.live.http import serve
from pipeline.live.stream_config import stream_limits
from pipeline.live.tokens import DeviceTokens
from pipeline.live.wire import DEFAULT_PARTITIONS, stream_name
from retention.errors import InputError
from retention.policy import load_policy

from ._common import (
    DbOption,
    FormatOption,
    HomeOption,
    NowOption,
    check_format,
    print_json,
    runtime_from,
    settings_from,
)
from ._tables import print_listing, state_of

__all__ = ["register", "NATS_URL_ENV"]

NATS_URL_ENV = "FLOWAUDIT_NATS_URL"

gateway_app = typer.Typer(
    help=(
        "The live ingest gateway: wristbands stream 30 ms frames over a WebRTC DataChannel "
        "(WHIP-shaped POST /v1/whip) or a WebSocket (/v1/ws) with a device token; consent, "
        "event-window, staff and voice gates run here, and one JetStream message per wristband "
        "and window goes to the broker. Speech and non-consenting audio never reach it."
    ),
    no_args_is_help=True,
)
token_app = typer.Typer(
    help="Device tokens, issued at pick-up for a wristband on the event's roster; only their "
    "SHA-256 is stored.",
    no_args_is_help=True,
)
gateway_app.add_typer(token_app, name="token")

EventOption = Annotated[
    Path | None,
    typer.Option("--event", help="Event file (TOML) with the roster; default: the bundled "
                 "demo event."),
]


@gateway_app.command("serve")
def serve_command(
    event: EventOption = None,
    policy: Annotated[
        str | None,
        typer.Option("--policy", help="Policy name or .toml file (default: the home's)."),
    ] = None,
    nats: Annotated[
        str | None,
        typer.Option("--nats", help=f"NATS server with JetStream (default: ${NATS_URL_ENV} or "
                     "nats://127.0.0.1:4222)."),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (loopback by default; give "
                          "the venue network's address to take wristbands).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (0: any free one).")] = 8765,
    partitions: Annotated[
        int, typer.Option("--partitions", help="Subject partitions per zone (workers share "
                          "them).")
    ] = DEFAULT_PARTITIONS,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option("--cors-origin", help="A web origin allowed to POST /v1/whip from a "
                     "browser (repeatable); none by default."),
    ] = None,
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Run the gateway until SIGTERM or Ctrl-C.

    Creates or updates the event's JetStream stream from the policy (memory storage and
    seconds of age when raw audio is kept 0 h; file storage and at most the raw retention
    otherwise). Refused and counted (GET /v1/stats): no, wrong or revoked token (401), tokens
    of wristbands not on the roster, malformed chunks, a sample rate other than 16 kHz,
    oversized messages. On SIGTERM the finished windows are flushed and the peers closed.
    """
    spec = load_event(event or default_event_file())
    settings = settings_from(home, db)
    chosen = load_policy(policy or settings.policy)
    url = nats or os.environ.get(NATS_URL_ENV) or "nats://127.0.0.1:4222"
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port}; use 0 to 65535")
    if not 1 <= partitions <= 1024:
        raise InputError(f"--partitions {partitions}; use 1 to 1024")
    limits = stream_limits(chosen)
    with runtime_from(home, db, now) as runtime:
        gateway = Gateway(runtime.store, spec, chosen, nats_url=url, partitions=partitions)

        def ready(bound: int) -> None:
            typer.echo(f"gateway for event {spec.id} listening on http://{host}:{bound} "
                       f"(stream {stream_name(spec.id)}, {limits.storage} storage, max_age "
                       f"{limits.max_age.total_seconds():g} s, policy {chosen.name})")

        serve(gateway, host, port, cors_origin or (), ready=ready)
        totals = gateway.stats.as_dict()
    typer.echo(f"gateway stopped: {totals['windows_published']} windows published, "
               f"{sum(totals['refused'].values())} refused")


@token_app.command("issue")
def issue_command(
    serial: Annotated[str, typer.Argument(help="The wristband's serial (on the roster).")],
    event: EventOption = None,
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
    format: FormatOption = "text",
) -> None:
    """Issue a device token for a wristband at pick-up; it is printed once, never stored.

    A wristband's earlier tokens are revoked (a band handed out again).
    """
    fmt = check_format(format)
    spec = load_event(event or default_event_file())
    with runtime_from(home, db, now) as runtime:
        issued = DeviceTokens(runtime.store, spec).issue(serial, runtime.now)
    if fmt == "json":
        print_json({"token": issued.token, "token_id": issued.token_id,
                    "wristband": issued.pseudonym, "revoked_earlier": issued.revoked_earlier})
        return
    typer.echo(issued.token)
    typer.echo(f"token id {issued.token_id} for wristband {issued.pseudonym[:16]}… "
               f"(shown once; {issued.revoked_earlier} earlier token(s) revoked)", err=True)


@token_app.command("revoke")
def revoke_command(
    serial: Annotated[
        str | None, typer.Argument(help="Revoke every live token of this wristband.")
    ] = None,
    token_id: Annotated[
        str | None, typer.Option("--id", help="Revoke one token by its id (see list).")
    ] = None,
    event: EventOption = None,
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Revoke a lost or returned wristband's tokens; its next connection is refused (401)."""
    spec = load_event(event or default_event_file())
    with runtime_from(home, db, now) as runtime:
        count = DeviceTokens(runtime.store, spec).revoke(runtime.now, serial=serial,
                                                          token_id=token_id)
    typer.echo(f"revoked {count} token(s)")


@token_app.command("list")
def list_command(
    event: EventOption = None,
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
    format: FormatOption = "text",
) -> None:
    """List the event's device tokens: id, wristband pseudonym, issued, revoked (no tokens)."""
    fmt = check_format(format)
    spec = load_event(event or default_event_file())
    with runtime_from(home, db, now) as runtime:
        rows = DeviceTokens(runtime.store, spec).list()
    data = [{"token_id": r.token_id, "wristband": r.pseudonym,
             "issued_at": r.issued_at.isoformat(),
             "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None} for r in rows]
    print_listing(data, fmt, lambda r: [
        r["token_id"], f"{str(r['wristband'])[:16]}…", f"issued {r['issued_at']}",
        state_of(r["revoked_at"])], "token")


def register(app: typer.Typer) -> None:
    app.add_typer(gateway_app, name="gateway")
