"""`flowaudit report KIND`: compliance reports as Markdown, self-contained HTML and JSON."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from audit.reports import FORMATS, ReportContext, build_report, get_kind, kind_ids, write_report
from retention.errors import InputError
from retention.ground.durations import parse_duration_option
from retention.ground.times import parse_date_option

from ..clock import pinned_now
from ..reporting import DEFAULT_SOURCE, PROFILES, audit_scope, compare_context
from ._common import DbOption, HomeOption, NowOption, runtime_from

__all__ = ["register", "report"]

ALL = "all"


def _formats(value: str) -> list[str]:
    value = value.lower()
    if value == ALL:
        return list(FORMATS)
    if value not in FORMATS:
        raise InputError(f"--format {value!r}; use one of {', '.join(FORMATS)} or all")
    return [value]


def _as_of(value: str | None) -> date | None:
    return None if value is None else parse_date_option(value, "--as-of")


def _kinds(kind: str) -> list[str]:
    if kind == ALL:
        return kind_ids()
    return [get_kind(kind).id]


def report(
    kind: Annotated[
        str,
        typer.Argument(
            help="gdpr, retention, dpia, dsa, ai-act, compare, or all.", show_default=False
        ),
    ],
    event: Annotated[
        str | None,
        typer.Option("--event", help="Event id in the store (needed when it holds several)."),
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            help="Report against this policy (name or .toml) instead of the one the event "
            "ran under.",
        ),
    ] = None,
    format: Annotated[
        str, typer.Option("--format", help="md, html, json, or all (the three).")
    ] = ALL,
    out: Annotated[
        Path, typer.Option("--out", help="Directory the reports are written to (KIND.EXT).")
    ] = Path("reports"),
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Date the law is evaluated at (YYYY-MM-DD); default: the policy's "
            "classification.as_of, else the date of --now.",
        ),
    ] = None,
    event_file: Annotated[
        Path | None,
        typer.Option(
            "--event-file", help="compare: event file to run (default: the bundled demo event)."
        ),
    ] = None,
    source: Annotated[
        str,
        typer.Option("--source", help="compare: crowd to run, synth, synth:N or wav:DIR."),
    ] = DEFAULT_SOURCE,
    duration: Annotated[
        str | None,
        typer.Option("--duration", help="compare: capture length such as 10m (default: all)."),
    ] = None,
    profiles: Annotated[
        str,
        typer.Option("--profiles", help="compare: comma-separated policy profiles to run."),
    ] = ",".join(PROFILES),
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Write compliance reports built from the store and the audit log.

    KIND is gdpr (Art 30 record), retention (deletion evidence), dpia (Art 35), dsa (Art 27
    statement), ai-act (classification and Art 50 notice), compare (the same event under
    each platform profile, run afresh in temporary stores) or all. Each is written as
    OUT/KIND.md, OUT/KIND.html (one self-contained file) and OUT/KIND.json (validates against
    the schema shipped in audit/reports/schemas/).
    """
    formats = _formats(format)
    evaluated = _as_of(as_of)
    kinds = _kinds(kind.lower())
    written: list[Path] = []
    store_kinds = [k for k in kinds if k != "compare"]
    if store_kinds:
        with runtime_from(home, db, now) as runtime:
            scope = audit_scope(
                runtime, event_id=event, policy=policy, as_of=evaluated, one_event=True
            )
            ctx = ReportContext(runtime, scope)
            for name in store_kinds:
                written += write_report(build_report(name, ctx), out, formats)
    if "compare" in kinds:
        length = parse_duration_option(duration, "--duration") if duration is not None else None
        names = [p.strip() for p in profiles.split(",") if p.strip()]
        moment = pinned_now(now)  # unpinned: the comparison stands at each run's end
        with compare_context(
            event_file=event_file,
            profiles=names,
            source=source,
            duration=length,
            now=moment,
            as_of=evaluated,
        ) as ctx:
            written += write_report(build_report("compare", ctx), out, formats)
    for path in written:
        typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
