"""`flowaudit demo-audio`: write the synthetic crowd as WAV files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from pipeline.event import default_event_file, load_event
from pipeline.sources import MAX_SYNTH, synthetic_for
from pipeline.wavout import write_wavs
from retention.errors import InputError
from retention.ground.durations import parse_finite_duration
from retention.ground.times import parse_time

__all__ = ["register", "demo_audio"]


def demo_audio(
    out: Annotated[Path, typer.Option("--out", help="Directory to write <serial>.wav files to.")],
    event: Annotated[
        Path | None,
        typer.Option("--event", help="Event file whose roster and script to use "
                     "(default: the bundled demo event)."),
    ] = None,
    wristbands: Annotated[
        int, typer.Option("--wristbands", help="How many wristbands (files) to write.")
    ] = 16,
    duration: Annotated[
        str, typer.Option("--duration", help="Length of every file, e.g. 4m.")
    ] = "4m",
    start: Annotated[
        str | None,
        typer.Option("--start", help="Capture start (ISO 8601; default: 30 s before the "
                     "event starts)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed (default: the event file's).")
    ] = None,
    script: Annotated[
        str | None, typer.Option("--script", help="Crowd script: dip or steady "
                                 "(default: the event file's).")
    ] = None,
) -> None:
    """Write the seeded synthetic crowd as one 16 kHz mono WAV per wristband, plus a manifest.

    Replay it with `flowaudit run-event --source wav:DIR`.
    """
    spec = load_event(event or default_event_file())
    if not 1 <= wristbands <= MAX_SYNTH:
        raise InputError(f"--wristbands {wristbands}; use 1 to {MAX_SYNTH}")
    if script is not None and script not in ("dip", "steady"):
        raise InputError(f"--script {script!r}; use dip or steady")
    length = parse_finite_duration(duration, "--duration")
    begin = parse_time(start, "--start") if start else spec.starts_at - timedelta(seconds=30)
    source = synthetic_for(spec, wristbands, seed=seed, script=script)
    paths = write_wavs(source, out, start_at=begin, duration=length,
                       frames_per_window=spec.frames_per_window)
    typer.echo(f"wrote {len(paths)} WAV files ({duration} each from {begin.isoformat()}) to {out}")


def register(app: typer.Typer) -> None:
    app.command("demo-audio")(demo_audio)
