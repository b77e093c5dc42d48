"""`flowaudit purge` and `flowaudit anonymise`: enforce retention now, or every N minutes."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console

from audit.log.checkpoints import checkpoint_after_command
from retention.anonymise import AnonymiseReport, anonymise_due
from retention.errors import InputError
from retention.ground.actions import Action
from retention.ground.durations import format_duration, parse_duration, parse_finite_duration
from retention.purge import DEFAULT_BATCH, PurgeReport, purge

from ..clock import running_clock
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

__all__ = ["register", "format_purge", "format_anonymise"]


def _every_seconds(text: str | None) -> float | None:
    if text is None:
        return None
    return parse_finite_duration(text, "--every", positive=True).total_seconds()


@contextlib.contextmanager
def _graceful_stop() -> Iterator[threading.Event]:
    """SIGTERM / SIGINT set a flag: the bucket in hand is finished, then the job exits 0."""
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _progress(console: Console, enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress bar on a terminal; nothing when piped, under cron or in tests."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}
        units = {"anonymise": "anonymise", "shred": "shred", "delete": "delete rows"}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(units.get(phase, phase), total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield update


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{count} B"


def format_anonymise(report: AnonymiseReport) -> list[str]:
    verb = "would anonymise" if report.dry_run else "anonymised"
    lines = [
        f"  {verb:<18}{len(report.buckets)} metadata bucket(s), "
        f"{report.linkable_records:,} linkable record(s)"
    ]
    if not report.dry_run and report.buckets:
        lines.append(
            f"  {'kept':<18}{report.aggregates_written:,} aggregate(s) "
            f"(smallest group {report.min_group_subjects} wristbands), "
            f"{report.records_copied:,} crowd-level record(s); "
            f"{report.records_suppressed:,} record(s) suppressed"
        )
    if report.subjects_coarsened:
        lines.append(
            f"  {'cleared':<18}quasi-identifiers of {report.subjects_coarsened} wristband(s)"
        )
    return lines


def format_purge(report: PurgeReport) -> list[str]:
    """The human-readable summary."""
    head = f"purge run {report.run_id} as of {report.as_of.isoformat()}"
    if report.dry_run:
        plan = report.plan
        assert plan is not None
        lines = [
            f"{head} (dry run: nothing changed)",
            f"  {'would shred':<18}{len(plan.buckets_to_shred)} expired bucket(s)",
            f"  {'would delete':<18}{plan.rows:,} row(s) in {len(plan.buckets_to_delete)} "
            f"bucket(s), {_size(plan.bytes)}",
        ]
    else:
        state = {"done": "", "stopped": " (stopped early; the next run resumes)"}.get(
            report.status, f" ({report.status})"
        )
        lines = [
            f"{head}{state}",
            f"  {'buckets shredded':<18}{len(report.buckets_shredded)} "
            f"({report.keys_destroyed} key(s) destroyed)",
            f"  {'buckets deleted':<18}{len(report.buckets_deleted)}",
            f"  {'rows deleted':<18}{report.rows_deleted:,}",
            f"  {'bytes freed':<18}{_size(report.bytes_freed)}",
        ]
        for run in report.resumed:  # a killed run's work, receipted by this run
            lines.append(
                f"  {'resumed':<18}run {run.run_id} (interrupted): "
                f"{len(run.buckets_shredded)} bucket(s) shredded, {run.rows_deleted:,} row(s) "
                f"deleted, {_size(run.bytes_freed)}"
            )
    if report.anonymised is not None:
        lines += format_anonymise(report.anonymised)
    lines += [f"  warning: {w}" for w in report.warnings]
    return lines


def purge_cmd(
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show what would be shredded and deleted; change nothing."),
    ] = False,
    every: Annotated[
        str | None,
        typer.Option(
            "--every",
            help="Run as a long-lived job, once per interval (e.g. 15m); SIGTERM stops it cleanly.",
        ),
    ] = None,
    batch: Annotated[
        int, typer.Option("--batch", min=1, help="Rows deleted per transaction.")
    ] = DEFAULT_BATCH,
    no_anonymise: Annotated[
        bool,
        typer.Option("--no-anonymise", help="Skip anonymising metadata due for anonymisation."),
    ] = False,
    receipt: ReceiptOption = None,
    now: NowOption = None,
    format: FormatOption = "text",
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Enforce retention: anonymise due metadata, shred expired buckets, delete their rows.

    Writes a purge receipt to the audit log; safe to rerun, interrupt or run on many workers.
    With --every and --now, the first run is at --now and each later one (and the closing
    checkpoint) that much later as real time has passed. --receipt FILE writes the receipt's
    inclusion proof against the checkpoint signed at the end.
    """
    fmt = check_format(format)
    if receipt is not None and every is not None:
        raise InputError("--receipt goes with one run, not --every (prove a run's receipt "
                         "later with `flowaudit audit prove --entry N`)")
    interval = _every_seconds(every)
    console = Console(stderr=True)
    clock = running_clock(now)  # each run is stamped when it happens, not when the job began
    with _graceful_stop() as stop, runtime_from(home, db, now) as runtime:
        while True:
            moment = clock()
            with _progress(console, console.is_terminal and fmt == "text") as progress:
                report = purge(
                    runtime.store,
                    now=moment,
                    dry_run=dry_run,
                    batch=batch,
                    anonymise=not no_anonymise,
                    progress=progress,
                    should_stop=stop.is_set,
                )
            if fmt == "json" and interval is not None:
                typer.echo(_json_line(report.as_dict()))  # one JSON object per line and run
            elif fmt == "json" and receipt is None:
                print_json(report.as_dict())
            elif fmt == "text":
                for line in format_purge(report):
                    typer.echo(line)
            sys.stdout.flush()
            if interval is not None:  # a long-lived job signs each run's receipt as it goes
                checkpoint_after_command(runtime, now=clock(), appended_only=True)
            if interval is None or stop.is_set() or stop.wait(interval):
                break
        if interval is not None and fmt == "text":
            typer.echo(f"stopped (ran every {format_duration(parse_duration(every))})")
        runtime.now = clock()  # the closing checkpoint is signed at the time it is written
    if receipt is not None:  # the closing checkpoint is signed now: prove the receipt against it
        proof = write_receipt_proof(
            home, db, Action.PURGE_RECEIPT, str(report.run_id), receipt
        )
        if fmt == "json":
            print_json({**report.as_dict(), "receipt_proof": proof})
        else:
            typer.echo(receipt_line(proof))


def _json_line(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data, sort_keys=True, default=str)


def anonymise_cmd(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what is due; change nothing.")
    ] = False,
    now: NowOption = None,
    format: FormatOption = "text",
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Anonymise metadata past anonymise_metadata_after: aggregate to k-anonymous groups.

    The linkable originals expire at once; `flowaudit purge` (which also runs this step)
    shreds and deletes them.
    """
    fmt = check_format(format)
    with runtime_from(home, db, now) as runtime:
        report = anonymise_due(runtime.store, now=runtime.now, dry_run=dry_run)
    if fmt == "json":
        print_json(report.as_dict())
        return
    typer.echo(f"anonymise as of {runtime.now.isoformat()}" + (" (dry run)" if dry_run else ""))
    for line in format_anonymise(report):
        typer.echo(line)
    for warning in report.warnings:
        typer.echo(f"  warning: {warning}")


def register(app: typer.Typer) -> None:
    app.command("purge")(purge_cmd)
    app.command("anonymise")(anonymise_cmd)
