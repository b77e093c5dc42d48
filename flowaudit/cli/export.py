"""`flowaudit export metadata`: the gated way metadata leaves flowaudit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from audit.reid.export_gate import FORMATS, export_metadata
from retention.errors import InputError
from retention.policy import load_policy

from ._common import DbOption, HomeOption, NowOption, runtime_from

__all__ = ["export_app", "register"]

export_app = typer.Typer(
    help="Exports that leave flowaudit, gated by the policy's re-identification thresholds.",
    no_args_is_help=True,
)


@export_app.command("metadata")
def metadata(
    out: Annotated[Path, typer.Option("--out", help="File to write (replaced atomically).")],
    generalise: Annotated[
        bool,
        typer.Option(
            "--generalise",
            help="If the data misses a threshold, recode it along the policy's hierarchies "
            "(least information loss, at most reid.max_suppression of records suppressed).",
        ),
    ] = False,
    file_format: Annotated[
        str, typer.Option("--format", help="File format: csv or json (json adds the figures).")
    ] = "csv",
    event: Annotated[
        str | None, typer.Option("--event", help="Only this event's metadata.")
    ] = None,
    policy: Annotated[
        str | None, typer.Option("--policy", help="Policy to gate with (default: the home's).")
    ] = None,
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Export per-wristband metadata (quasi-identifiers + sentiment band) if it is anonymous enough.

    Refuses with exit 2, naming the figures and the thresholds missed, when k / l / t /
    prosecutor risk miss the policy; --generalise finds the least recoding that passes instead.
    The export (or the refusal) is recorded in the audit log with its figures.
    """
    fmt = file_format.lower()
    if fmt not in FORMATS:
        raise InputError(f"--format {file_format!r}; use one of: {', '.join(FORMATS)}")
    with runtime_from(home, db, now) as runtime:
        chosen = load_policy(policy or runtime.settings.policy)
        result = export_metadata(
            runtime.store,
            chosen,
            out,
            now=runtime.now,
            generalise=generalise,
            fmt=fmt,
            event_id=event,
        )
    report = result.report
    typer.echo(f"wrote {len(result.frame)} records to {out} (policy {chosen.name})")
    typer.echo(f"  {report.summary()}")
    gen = result.generalisation
    if gen is not None:
        typer.echo(
            f"  generalised: {gen.describe()}; suppressed {gen.suppressed} of {gen.records} "
            f"records ({gen.suppressed_share:.1%}); information loss {gen.loss:.2f} "
            f"(0 = none, 1 = all suppressed), precision {gen.precision:.2f}"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
