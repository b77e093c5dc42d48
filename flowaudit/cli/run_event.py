"""`flowaudit run-event`: run the capture pipeline over an event and print its summary."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from pipeline.event import EventSpec, default_event_file, load_event
from pipeline.frames import FrameSource
from pipeline.nats_source import NatsSource
from pipeline.run import SPEEDS, capture_start, run_event
from pipeline.sources import open_source
from pipeline.wavdir import MANIFEST, WavDirectory, window_miss
from retention.errors import InputError
from retention.ground.durations import parse_finite_duration
from retention.policy import load_policy

from ..clock import pinned_now
from ..runtime import pii_text_filter
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

__all__ = ["register", "run_event_command"]

EventOption = Annotated[
    Path | None,
    typer.Option("--event", help="Event file (TOML); default: the bundled demo event."),
]
PolicyOption = Annotated[
    str | None,
    typer.Option("--policy", help="Policy name or .toml file (default: the home's policy)."),
]
SeedOption = Annotated[
    int | None,
    typer.Option("--seed", help="Seed of the synthetic crowd (default: the event file's)."),
]


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on a terminal; nothing when piped or under test."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]capturing"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} windows"),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("run", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def run_event_command(
    event: EventOption = None,
    policy: PolicyOption = None,
    source: Annotated[
        str,
        typer.Option("--source", help="synth (one stream per roster wristband), synth:N, "
                     "wav:DIR (one WAV per wristband) or nats:HOST:PORT (JetStream replay)."),
    ] = "synth",
    duration: Annotated[
        str | None,
        typer.Option("--duration", help="Capture length such as 10m (default: the event's "
                     "pre-roll + set + post-roll, or the WAV files' length)."),
    ] = None,
    speed: Annotated[
        str, typer.Option("--speed", help="max (as fast as possible) or realtime.")
    ] = "max",
    seed: SeedOption = None,
    event_id: Annotated[
        str | None,
        typer.Option("--event-id", help="Store the run under this event id (to run one event "
                     "file under several policies in one home)."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the event's interrupted run after its last "
                     "committed window (give the first command's other options again)."),
    ] = False,
    new_run: Annotated[
        bool,
        typer.Option("--new-run", help="Leave the event's interrupted run as it is and start "
                     "a new run id for the event."),
    ] = False,
    follow: Annotated[
        bool,
        typer.Option("--follow", help="With --source nats:…, follow the stream live until the "
                     "event's capture end passes or SIGTERM, then finish the run."),
    ] = False,
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
    format: FormatOption = "text",
) -> None:
    """Run an event through capture gates, sentiment and track selection into the store.

    The virtual clock starts at --now (default: the event's capture start, or the WAV
    manifest's starts_at). Raw audio, window scores, decisions and the audit trail are written
    as the policy allows; the summary lists frames in, drops by reason, what was stored,
    sentiment, decisions and latency. A run that was killed is shown as interrupted; go on
    with --resume (same run id, no window stored twice) or --new-run.
    """
    fmt = check_format(format)
    if speed not in SPEEDS:
        raise InputError(f"--speed {speed!r}; use max or realtime")
    if resume and new_run:
        raise InputError("give --resume or --new-run, not both")
    mode = "resume" if resume else "new-run" if new_run else "start"
    spec = load_event(event or default_event_file())
    settings = settings_from(home, db)
    chosen = load_policy(policy or settings.policy)
    length = parse_finite_duration(duration, "--duration") if duration is not None else None
    frames = open_source(source, spec, seed=seed)
    if follow:
        _follow(frames, spec)
    start = pinned_now(now)  # a pinned time starts the virtual clock; else the source/event do
    if chosen.capture.event_window_only:
        _warn_if_outside_window(frames, spec, start, length)
    with runtime_from(home, db, now) as runtime:
        show = fmt == "text" and sys.stdout.isatty()
        with _progress(show) as progress:
            summary = run_event(
                runtime.store,
                spec,
                chosen,
                frames,
                start_at=start,
                duration=length,
                speed=speed,
                text_filter=pii_text_filter(chosen),
                event_id=event_id,
                source_label=source,
                progress=progress,
                mode=mode,
            )
    if fmt == "json":
        print_json(summary.to_dict())
        return
    for line in summary.lines():
        typer.echo(line)


def _follow(frames: FrameSource, spec: EventSpec) -> None:
    """Make a NATS source a live tail that SIGTERM ends cleanly (summary, signed log)."""
    if not isinstance(frames, NatsSource):
        raise InputError("--follow needs --source nats:HOST:PORT (a live stream to follow)")
    frames.follow, frames.until = True, spec.capture_ends
    signal.signal(signal.SIGTERM, lambda *_: frames.request_stop())


def _warn_if_outside_window(
    frames: FrameSource, spec: EventSpec, start: datetime | None, length: timedelta | None
) -> None:
    """WAV files carry no time: say so when the gate is about to drop every one of their frames."""
    if not isinstance(frames, WavDirectory):
        return
    if start is not None:
        placed_by = "--now"
    elif frames.starts_at is not None:
        placed_by = f"starts_at in {MANIFEST}"
    else:
        placed_by = "the event's capture start, as neither --now nor a manifest gave one"
    message = window_miss(frames, spec, capture_start(spec, frames, start), placed_by=placed_by,
                          duration=length)
    if message is not None:
        typer.echo(f"flowaudit: warning: {message}", err=True)


def register(app: typer.Typer) -> None:
    app.command("run-event")(run_event_command)
