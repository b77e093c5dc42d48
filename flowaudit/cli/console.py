"""`flowaudit console`: the DJ console and /v1 API, its API keys, its API documents."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer

from flowaudit.config import Settings
from flowaudit.console.keys import DEFAULT_BURST, DEFAULT_RATE, ROLES, ConsoleKeys
from flowaudit.console.serve import ServeOptions, serve_console
from retention.errors import InputError

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

__all__ = ["register"]

console_app = typer.Typer(
    help=(
        "The DJ console (a page at /console/EVENT) and the open /v1 API over a live event: "
        "live sentiment, the next track and why, override/veto/pin under the policy's "
        "artist_control, privacy status, and a gated feature feed for third-party scorers. "
        "Without a subcommand it serves; `key` manages API keys, `docs` the API documents."
    ),
    invoke_without_command=True,
)
key_app = typer.Typer(help="API keys (roles artist, scorer, viewer); only their SHA-256 is "
                      "stored and the key is printed once.", no_args_is_help=True)
console_app.add_typer(key_app, name="key")

EventIdOption = Annotated[str | None, typer.Option("--event-id", help="The event's id (as "
                                                   "the workers registered it).")]


@console_app.callback()
def console_command(
    ctx: typer.Context,
    event_id: EventIdOption = None,
    event: Annotated[Path | None, typer.Option("--event", help="The event file (its id and "
                                               "catalogue); default: --event-id with the "
                                               "demo catalogue.")] = None,
    replay: Annotated[bool, typer.Option("--replay", help="Review a stored event: replay it "
                                         "from its first window, read-only.")] = False,
    speed: Annotated[float | None, typer.Option("--speed", help="Replay speed, times real "
                                                "time (0.1-1000; default 1); only with "
                                                "--replay.")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (loopback by "
                                      "default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8780,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Serve the console for one event until SIGTERM or Ctrl-C (live, or --replay)."""
    if ctx.invoked_subcommand is not None:
        return
    from pipeline.event import load_event

    if speed is not None and not replay:
        raise InputError(f"--speed {speed:g} is the speed of a replay; add --replay, or drop "
                         "--speed to serve the live event")
    spec = load_event(event) if event is not None else None
    chosen = event_id or (spec.id if spec is not None else None)
    if chosen is None:
        raise InputError("name the event: --event-id ID or --event FILE")
    settings = settings_from(home, db)
    options = ServeOptions(chosen, host, port, replay, 1.0 if speed is None else speed, event)
    caught = _serve_until_signal(settings, options)
    typer.echo(f"console stopped ({caught})" if caught else "console stopped")


def _serve_until_signal(settings: Settings, options: ServeOptions) -> str | None:
    """Serve; the name of the signal that stopped it. uvicorn raises a caught SIGTERM or
    SIGINT again once it has shut down, which would end the process by that signal (or as
    "interrupted"); here it only notes which one it was. Before the console is ready a
    signal interrupts the start-up."""
    caught: list[int] = []
    serving: list[bool] = []

    def note(sig: int, _frame: object) -> None:
        if not serving:
            raise KeyboardInterrupt
        caught.append(sig)

    def ready(line: str) -> None:
        typer.echo(line)
        serving.append(True)

    stops = (signal.SIGINT, signal.SIGTERM)
    before = {sig: signal.signal(sig, note) for sig in stops}
    try:
        serve_console(settings, options, ready=ready)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    return signal.Signals(caught[0]).name if caught else None


@key_app.command("issue")
def key_issue(
    role: Annotated[str, typer.Option("--role", help=f"One of {', '.join(ROLES)}.")],
    label: Annotated[str, typer.Option("--label", help="Who holds it, as the audit log names "
                                       "them (a device or team; 1-64 characters).")],
    event_id: Annotated[str, typer.Option("--event", help="The event id the key is for.")],
    rate: Annotated[float, typer.Option("--rate", help="Requests per second (token bucket "
                                        "refill).")] = DEFAULT_RATE,
    burst: Annotated[int, typer.Option("--burst", help="Bucket size (requests at "
                                       "once).")] = DEFAULT_BURST,
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
    format: FormatOption = "text",
) -> None:
    """Issue an API key; it is printed once (stdout) and only its SHA-256 is stored."""
    fmt = check_format(format)
    with runtime_from(home, db, now) as runtime:
        issued = ConsoleKeys(runtime.store).issue(role=role, label=label, event_id=event_id,
                                                  now=runtime.now, rate=rate, burst=burst)
    if fmt == "json":
        print_json({"key": issued.key, "key_id": issued.key_id, "role": issued.role,
                    "label": issued.label, "event": issued.event_id})
        return
    typer.echo(issued.key)
    typer.echo(f"key id {issued.key_id}: {issued.role} for event {issued.event_id} "
               f"({issued.label}); shown once", err=True)


@key_app.command("revoke")
def key_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (see `key list`).")],
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Revoke an API key: its next request is refused (401 revoked_key)."""
    with runtime_from(home, db, now) as runtime:
        info = ConsoleKeys(runtime.store).revoke(key_id, runtime.now)
    typer.echo(f"revoked key {info.key_id} ({info.role}, {info.label})")


@key_app.command("list")
def key_list(
    event_id: Annotated[str | None, typer.Option("--event", help="Only this event's "
                                                 "keys.")] = None,
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
    format: FormatOption = "text",
) -> None:
    """List API keys: id, event, role, label, limits, issued, revoked (never the keys)."""
    fmt = check_format(format)
    with runtime_from(home, db, now) as runtime:
        rows = ConsoleKeys(runtime.store).list(event_id)
    data = [{"key_id": r.key_id, "event": r.event_id, "role": r.role, "label": r.label,
             "rate_per_second": r.rate_per_second, "burst": r.burst,
             "issued_at": r.issued_at.isoformat(),
             "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None} for r in rows]
    print_listing(data, fmt, lambda r: [
        r["key_id"], r["event"], r["role"], r["label"],
        f"{r['rate_per_second']:g}/s burst {r['burst']}", state_of(r["revoked_at"])], "key")


@console_app.command("docs")
def docs_command(
    write: Annotated[bool, typer.Option("--write", help="Rewrite the documents from the "
                                        "code (else: check them).")] = False,
) -> None:
    """Check (or --write) the checked-in OpenAPI 3.1 and AsyncAPI 3.0 documents."""
    from flowaudit.console.documents import drift, write_documents

    if write:
        for path in write_documents():
            typer.echo(f"wrote {path}")
        return
    diffs = drift()
    if diffs:
        typer.echo("".join(diffs), err=True)
        raise InputError("the API documents differ from the code; run "
                         "`flowaudit console docs --write`")
    typer.echo("openapi.json and asyncapi.yaml match the code")


def register(app: typer.Typer) -> None:
    app.add_typer(console_app, name="console")
