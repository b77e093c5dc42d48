"""`flowaudit dsr export|erase|list|receive|extend`: data-subject requests (GDPR Art 12-20)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from retention.errors import InputError
from retention.ground.actions import Action
from retention.ground.times import parse_time
from retention.purge import DEFAULT_BATCH
from retention.subject_requests import (
    ERASURE_REASONS,
    EXTENSION_REASONS,
    REQUEST_KINDS,
    erase_subject,
    export_subject,
    extend_request,
    list_requests,
    receive_request,
)

from ._common import (
    DbOption,
    FormatOption,
    HomeOption,
    NowOption,
    check_format,
    print_json,
    runtime_from,
)
from .audit import ReceiptOption, receipt_line, write_receipt_proof

__all__ = ["register"]

dsr_app = typer.Typer(
    help=(
        "Data-subject requests: export (Art 15/20), erase (Art 17), and the one-month "
        "deadline of Art 12(3)."
    ),
    no_args_is_help=True,
)

SerialArg = Annotated[
    str,
    typer.Argument(
        help="Wristband serial, or '-' to read it from stdin (keeps it out of shell history).",
        show_default=False,
    ),
]
ReceivedOption = Annotated[
    str | None,
    typer.Option("--received", help="When the request arrived (ISO 8601; default: now)."),
]


def _serial(value: str) -> str:
    serial = sys.stdin.readline().strip() if value == "-" else value.strip()
    if not serial:
        raise InputError("empty wristband serial; give it as an argument or on stdin with '-'")
    return serial


def _received(value: str | None) -> datetime | None:
    return None if value is None else parse_time(value, "--received")


@dsr_app.command("export")
def export(
    serial: SerialArg,
    out: Annotated[
        Path, typer.Option("--out", help="New or empty directory to write the export into.")
    ],
    received: ReceivedOption = None,
    now: NowOption = None,
    format: FormatOption = "text",
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Export everything held about one wristband, decrypted: JSON manifest, metadata, WAVs."""
    fmt = check_format(format)
    with runtime_from(home, db, now) as runtime:
        result = export_subject(
            runtime.store,
            _serial(serial),
            out,
            now=runtime.now,
            received_at=_received(received),
        )
    summary = {
        "request_id": result.request_id,
        "out": str(result.out_dir),
        "raw_segments": result.raw_segments,
        "metadata_records": result.metadata_records,
        "consents": result.consents,
        "unreadable": result.unreadable,
        "on_time": result.on_time,
    }
    if fmt == "json":
        print_json(summary)
        return
    typer.echo(f"request #{result.request_id} answered: export written to {result.out_dir}")
    typer.echo(
        f"  {result.raw_segments} audio segment(s), {result.metadata_records} metadata "
        f"record(s), {result.consents} consent record(s); {result.unreadable} record(s) past "
        "retention or shredded (unreadable, not exported)"
    )


@dsr_app.command("erase")
def erase(
    serial: SerialArg,
    reason: Annotated[
        str,
        typer.Option(
            "--reason", help=f"Ground for erasure (Art 17(1)): {', '.join(ERASURE_REASONS)}."
        ),
    ] = "request",
    received: ReceivedOption = None,
    batch: Annotated[
        int, typer.Option("--batch", min=1, help="Rows deleted per transaction.")
    ] = DEFAULT_BATCH,
    receipt: ReceiptOption = None,
    now: NowOption = None,
    format: FormatOption = "text",
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Erase one wristband: destroy its key, delete its rows, keep a receipt without identity.

    Safe to rerun: an interrupted erasure is finished, a finished one is confirmed (its request
    number and receipt are shown again, exit 0). --receipt FILE writes the inclusion proof of
    the erasure receipt entry against the checkpoint signed at the end.
    """
    fmt = check_format(format)
    with runtime_from(home, db, now) as runtime:
        result = erase_subject(
            runtime.store,
            _serial(serial),
            now=runtime.now,
            reason=reason,
            received_at=_received(received),
            batch=batch,
        )
    proof = None
    if receipt is not None:  # the closing checkpoint is signed now: prove the receipt against it
        proof = write_receipt_proof(
            home, db, Action.DSR_ERASE, str(result.request_id), receipt
        )
    if fmt == "json":
        print_json(result.receipt if proof is None else {**result.receipt, "receipt_proof": proof})
        return
    r = result.receipt
    if result.confirmed:
        typer.echo(
            f"request #{result.request_id} was already done at {r['completed_at']}: wristband "
            f"erased (reason: {r['reason']})"
        )
    else:
        typer.echo(f"request #{result.request_id} done: wristband erased (reason: {r['reason']})")
    typer.echo(
        f"  subject key destroyed; deleted {r['raw_segments_deleted']} audio segment(s), "
        f"{r['metadata_records_deleted']} metadata record(s), {r['consents_deleted']} consent(s)"
    )
    if proof is not None:
        typer.echo(receipt_line(proof))


@dsr_app.command("list")
def list_cmd(
    open_only: Annotated[
        bool, typer.Option("--open", help="Only requests not yet answered.")
    ] = False,
    now: NowOption = None,
    format: FormatOption = "text",
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """List requests: received, deadline (one month, or the extension), done; flag overdue ones."""
    fmt = check_format(format)
    with runtime_from(home, db, now) as runtime:
        rows = list_requests(runtime.store, now=runtime.now, open_only=open_only)
    if fmt == "json":
        print_json([r.as_dict() for r in rows])
        return
    if not rows:
        typer.echo("no data-subject requests")
        return
    table = Table("#", "kind", "status", "received", "deadline", "done", "flag")
    for r in rows:
        flag = "OVERDUE" if r.overdue else ("late" if r.late else "")
        if r.extended_to is not None:
            flag = (flag + " extended").strip()
        table.add_row(
            str(r.id),
            r.kind,
            r.status,
            f"{r.received_at:%Y-%m-%d}",
            f"{r.deadline:%Y-%m-%d}",
            f"{r.completed_at:%Y-%m-%d}" if r.completed_at else "-",
            flag,
        )
    Console(width=100).print(table)
    overdue = sum(r.overdue for r in rows)
    if overdue:
        typer.echo(f"{overdue} request(s) overdue (GDPR Art 12(3))")


@dsr_app.command("receive")
def receive(
    serial: SerialArg,
    kind: Annotated[str, typer.Option("--kind", help=f"Request kind: {', '.join(REQUEST_KINDS)}.")],
    received: ReceivedOption = None,
    now: NowOption = None,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Log a request when it arrives, so its one-month deadline is tracked until answered."""
    with runtime_from(home, db, now) as runtime:
        request_id = receive_request(
            runtime.store, _serial(serial), kind, now=runtime.now, received_at=_received(received)
        )
    typer.echo(f"request #{request_id} ({kind}) received")


@dsr_app.command("extend")
def extend(
    request_id: Annotated[int, typer.Argument(help="Request number from `flowaudit dsr list`.")],
    reason: Annotated[
        str, typer.Option("--reason", help=f"Why (Art 12(3)): {', '.join(EXTENSION_REASONS)}.")
    ],
    now: NowOption = None,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Extend an open request's deadline by two further months (once, within the first month)."""
    with runtime_from(home, db, now) as runtime:
        status = extend_request(runtime.store, request_id, now=runtime.now, reason=reason)
    typer.echo(f"request #{status.id} extended to {status.deadline:%Y-%m-%d}")


def register(app: typer.Typer) -> None:
    app.add_typer(dsr_app, name="dsr")
