"""`flowaudit demo`: the bundled event under two policies, then every report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..demo import run_demo

__all__ = ["register", "demo"]


def demo(
    home: Annotated[
        Path,
        typer.Option("--home", help="Data home for the demo, created on first use and reused "
                     "afterwards (default: ./demo-home; the spotify-2026 run stores ~4 GB)."),
    ] = Path("demo-home"),
    wristbands: Annotated[
        int | None,
        typer.Option("--wristbands", help="Synthetic wristbands (default: the event's roster, "
                     "200 plus the artist's own)."),
    ] = None,
) -> None:
    """Run the demo event under privacy-by-default and spotify-2026, then write every report.

    Same crowd, same seed, two policies: compare what each stored, what the checks find and
    the platform comparison, in HOME/reports. A second run on the same home reuses the
    stored captures.
    """
    run_demo(home, wristbands, echo=typer.echo)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
