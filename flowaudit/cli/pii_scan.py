"""`flowaudit pii-scan [FILE]`: personal data in free text, offline, French and English."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

# the NLP stack (presidio, spaCy) loads only when a scan runs, not with every command
from audit.pii.defaults import (
    DEFAULT_ENTITIES,
    DEFAULT_THRESHOLD,
    FREE_TEXT_KINDS,
    LANGUAGE_CHOICES,
)
from retention.errors import InputError

if TYPE_CHECKING:
    from audit.pii.scanner import PiiFinding

from ._common import (
    DbOption,
    FormatOption,
    HomeOption,
    NowOption,
    check_format,
    print_json,
    runtime_from,
)

__all__ = ["pii_scan", "register"]


def pii_scan(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="A .csv (with a header) or .jsonl file to scan; without it, the store's "
            "free-text metadata is scanned.",
            show_default=False,
        ),
    ] = None,
    format: FormatOption = "text",
    show: Annotated[
        bool,
        typer.Option(
            "--show", help="Also print the matched text (it is personal data: mind where "
            "the output goes)."
        ),
    ] = False,
    language: Annotated[
        str,
        typer.Option(
            "--language", help="Language of the texts: fr, en, or auto (guessed per text)."
        ),
    ] = "auto",
    field: Annotated[
        list[str] | None,
        typer.Option(
            "--field", help="Scan only this field / column (repeatable; default: all text)."
        ),
    ] = None,
    entity: Annotated[
        list[str] | None,
        typer.Option(
            "--entity",
            help=f"Look only for this entity type (repeatable; default: "
            f"{', '.join(DEFAULT_ENTITIES)}; LOCATION and ORGANIZATION on request).",
        ),
    ] = None,
    threshold: Annotated[
        float,
        typer.Option("--threshold", help="Minimum score (0–1) for a finding to be reported."),
    ] = DEFAULT_THRESHOLD,
    allow_list: Annotated[
        Path | None,
        typer.Option(
            "--allow-list",
            help="File of extra allowed terms (artists, zones …), one per line; they are "
            "added to the built-in event vocabulary.",
        ),
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            help=f"Store only: metadata kind to scan (repeatable; default: "
            f"{', '.join(FREE_TEXT_KINDS)}).",
        ),
    ] = None,
    all_kinds: Annotated[
        bool, typer.Option("--all-kinds", help="Store only: scan every metadata kind.")
    ] = False,
    event: Annotated[
        str | None, typer.Option("--event", help="Store only: scan one event (its id).")
    ] = None,
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Find personal data (names, phones, emails, NIR, IBAN …) in free text, offline.

    Scans FILE (CSV or JSON Lines) or, without FILE, the store's free-text metadata (track
    requests, notes). Prints one finding per entity with its type, field, row and score — the
    matched text only with --show. Exit status: 0 nothing found, 1 personal data found (or an
    error, reported on stderr), 2 a usage error.
    """
    fmt = check_format(format)
    lang = language.lower()
    if lang not in LANGUAGE_CHOICES:
        raise InputError(
            f"--language {language!r} is not supported; use one of {', '.join(LANGUAGE_CHOICES)}"
        )
    if file is not None and (kind or all_kinds or event):
        raise InputError("--kind, --all-kinds and --event apply to the store; drop them with FILE")
    if kind and all_kinds:
        raise InputError("--kind and --all-kinds contradict each other; give one")
    from audit.pii.files import read_records
    from audit.pii.scanner import Scanner
    from audit.pii.store import scan_store
    from audit.pii.vocabulary import read_terms

    scanner = Scanner(
        entities=list(entity) if entity else DEFAULT_ENTITIES,
        score_threshold=threshold,
        allow_list=read_terms(allow_list) if allow_list is not None else (),
    )
    chosen = None if lang == "auto" else lang
    summary: dict[str, Any]
    if file is not None:
        records = read_records(file)
        items = records.items(field, chosen)
        findings = scanner.scan_items(items)
        summary = {
            "source": str(file),
            "rows_scanned": len(records.records),
            "texts_scanned": len(items),
        }
        where = f"{len(items)} text(s) in {len(records.records)} row(s) of {file}"
    else:
        kinds = None if all_kinds else (list(kind) if kind else list(FREE_TEXT_KINDS))
        with runtime_from(home, db, now) as runtime:
            result = scan_store(
                runtime.store,
                now=runtime.now,
                kinds=kinds,
                event_id=event,
                fields=field,
                language=chosen,
                scanner=scanner,
            )
        findings = result.findings
        summary = {
            "source": "store",
            "kinds": kinds,
            "event": event,
            "records_scanned": result.records,
            "texts_scanned": result.texts,
        }
        where = f"{result.texts} text(s) in {result.records} stored record(s)"
    counts = dict(sorted(Counter(f.entity_type for f in findings).items()))
    if fmt == "json":
        print_json(
            {
                **summary,
                "language": lang,
                "score_threshold": threshold,
                "entities": scanner.entities,
                "counts": counts,
                "findings": [f.as_dict(show=show) for f in findings],
            }
        )
    else:
        _print_text(findings, counts, where, show)
    if findings:
        raise typer.Exit(1)


def _print_text(findings: list[PiiFinding], counts: dict[str, int], where: str, show: bool) -> None:
    if not findings:
        typer.echo(f"no personal data found in {where}")
        return
    for f in findings:
        line = (
            f"row {f.row}  field {f.field}  {f.entity_type}  score {f.score:.2f}  "
            f"chars {f.start}-{f.end}"
        )
        if show:
            line += f"  {f.text!r}"
        typer.echo(line)
    listed = ", ".join(f"{t} {n}" for t, n in counts.items())
    typer.echo(f"{len(findings)} finding(s) in {where}: {listed}")


def register(app: typer.Typer) -> None:
    app.command("pii-scan")(pii_scan)
