"""`flowaudit reid`: re-identification risk of the store's metadata or of any CSV file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from audit.reid.risk import RiskReport, SearchResult, Thresholds, assess
from audit.reid.risk import suggest as least_generalisation
from audit.reid.source import TABLES, source_frame
from retention.errors import ConfigError, InputError
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

__all__ = ["reid", "read_csv", "register"]


def read_csv(path: Path, what: str = "file") -> pd.DataFrame:
    """Read a user's CSV; any failure becomes one :class:`InputError` line."""
    if not path.exists():
        raise InputError(f"{what} '{path}' does not exist")
    if path.is_dir():
        raise InputError(f"{what} '{path}' is a directory; give a CSV file")
    try:
        frame = pd.read_csv(path, low_memory=False)
    except pd.errors.EmptyDataError:
        raise InputError(f"{what} '{path}' is empty; it needs a header row and records") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{what} '{path}' is not a readable CSV file ({reason})") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} '{path}': {exc.strerror}") from None
    if frame.empty:
        raise InputError(f"{what} '{path}' has a header but no records")
    return frame


def _names(option: str | None) -> list[str] | None:
    if option is None:
        return None
    return [n.strip() for n in option.split(",") if n.strip()]


def _policy(name: str | None, home: Path | None, db: str | None, needs_home: bool) -> Any:
    if name:
        return load_policy(name)
    try:
        return load_policy(settings_from(home, db).policy)
    except ConfigError:
        if needs_home:
            raise
        return load_policy("privacy-by-default")


def _columns(
    frame: pd.DataFrame, chosen: list[str] | None, default: list[str], option: str, source: str
) -> list[str]:
    if chosen is not None:
        return chosen
    missing = [c for c in default if c not in frame.columns]
    if missing:
        available = ", ".join(map(str, frame.columns))
        raise InputError(
            f"{source} has no column {missing[0]!r} (from the policy's reid settings); "
            f"name the columns with {option} (columns: {available})"
        )
    return default


def _row(name: str, value: str, limit: str = "", ok: bool | None = None) -> str:
    verdict = "" if ok is None else ("ok" if ok else "MISSED")
    return f"  {name:<24}{value:<14}{limit:<32}{verdict}".rstrip()


def _print_text(report: RiskReport, source: str, policy_name: str) -> None:
    t = report.thresholds
    missed = {m.metric for m in report.missed()}
    typer.echo(f"re-identification risk of {source} (policy {policy_name})")
    typer.echo(f"  quasi-identifiers: {', '.join(report.quasi_identifiers)}")
    sensitive = ", ".join(s.name for s in report.sensitive) or "none"
    typer.echo(f"  sensitive:         {sensitive}")
    typer.echo(f"  records:           {report.records} in {report.classes} classes")
    typer.echo(_row("k-anonymity", str(report.k), f"k_min {t.k_min}", "k" not in missed))
    for s in report.sensitive:
        label = f" ({s.name})" if len(report.sensitive) > 1 else ""
        kind = "ordered" if s.ordered else "equal-distance"
        typer.echo(
            _row(
                f"distinct l{label}", str(s.distinct_l), f"l_min {t.l_min}", s.distinct_l >= t.l_min
            )
        )
        typer.echo(_row(f"entropy l{label}", f"{s.entropy_l:.2f}"))
        typer.echo(
            _row(
                f"t-closeness{label}",
                f"{s.t_closeness:.3f}",
                f"t_max {t.t_max:g} ({kind} EMD)",
                s.t_closeness <= t.t_max + 1e-9,
            )
        )
    typer.echo(
        _row(
            "prosecutor risk",
            f"{report.prosecutor_risk:.3f}",
            f"max {t.max_prosecutor_risk:g}",
            "prosecutor_risk" not in missed,
        )
    )
    typer.echo(_row("average risk", f"{report.average_risk:.3f}"))
    pop = "" if report.population is None else f"population {report.population}"
    typer.echo(_row("journalist risk", f"{report.journalist_risk:.3f}", pop))
    typer.echo(_row("marketer risk", f"{report.marketer_risk:.3f}"))
    typer.echo(
        _row("sample uniques", f"{report.sample_uniques} ({report.sample_uniques_share:.1%})")
    )
    typer.echo(
        _row(
            "records at risk",
            f"{report.records_at_risk} ({report.records_at_risk_share:.1%})",
            f"in classes < k_min {t.k_min}",
        )
    )
    if report.meets():
        typer.echo("verdict: meets every threshold")
    else:
        typer.echo("verdict: misses " + "; ".join(str(m) for m in report.missed()))


def _print_suggestion(result: SearchResult) -> None:
    best = result.best
    tried = f"{result.nodes_evaluated} of {result.nodes_total} generalisations evaluated"
    if best is None:
        typer.echo(f"suggestion: no recoding within the policy's hierarchies passes ({tried})")
        return
    typer.echo(
        f"suggestion: {best.describe()}; suppress {best.suppressed} records "
        f"({best.suppressed_share:.1%}); information loss {best.loss:.2f}, precision "
        f"{best.precision:.2f} ({tried})"
    )
    typer.echo(f"  then: {best.report.summary()}")


def reid(
    file: Annotated[
        Path | None,
        typer.Argument(help="A CSV file to measure (default: the store's --table)."),
    ] = None,
    table: Annotated[
        str | None,
        typer.Option("--table", help="Store table to measure: subjects or metadata (default)."),
    ] = None,
    qi: Annotated[
        str | None,
        typer.Option("--qi", help="Comma-separated quasi-identifier columns (default: policy)."),
    ] = None,
    sensitive: Annotated[
        str | None,
        typer.Option(
            "--sensitive",
            help="Comma-separated sensitive columns (default: policy; '' for none).",
        ),
    ] = None,
    k_min: Annotated[int | None, typer.Option("--k-min", help="Override reid.k_min.")] = None,
    l_min: Annotated[int | None, typer.Option("--l-min", help="Override reid.l_min.")] = None,
    t_max: Annotated[float | None, typer.Option("--t-max", help="Override reid.t_max.")] = None,
    max_risk: Annotated[
        float | None,
        typer.Option("--max-risk", help="Override reid.max_prosecutor_risk."),
    ] = None,
    population: Annotated[
        str | None,
        typer.Option(
            "--population",
            help="Population for journalist/marketer risk: a CSV with the same QI columns, "
            "'subjects' (every wristband in the store) or a number of people.",
        ),
    ] = None,
    suggest: Annotated[
        bool,
        typer.Option("--suggest", help="Also find the least generalisation that would pass."),
    ] = False,
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy", help="Policy for defaults (default: the home's, else privacy-by-default)."
        ),
    ] = None,
    event: Annotated[
        str | None, typer.Option("--event", help="Only this event's wristbands (store tables).")
    ] = None,
    format: FormatOption = "text",
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Measure re-identification risk: k-anonymity, l-diversity, t-closeness, attacker risks.

    Works on the store (--table subjects|metadata) or on any CSV a user brings. Exits 1 when a
    threshold is missed, so a script can stop an export that would single people out.
    """
    fmt = check_format(format)
    if file is not None and table is not None:
        raise InputError("give either a CSV FILE or --table, not both")
    if file is not None and event is not None:
        raise InputError("--event selects wristbands in the store; a CSV FILE is measured whole")
    if table is not None and table not in TABLES:
        raise InputError(f"unknown --table {table!r}; use one of: {', '.join(TABLES)}")
    from_store = file is None or population == "subjects"
    chosen = _policy(policy, home, db, needs_home=file is None)
    pop: pd.DataFrame | int | None = None
    if file is not None:
        frame, source = read_csv(file), f"'{file}'"
    if from_store:
        with runtime_from(home, db, now) as runtime:
            if file is None:
                table = table or "metadata"
                frame = source_frame(runtime.store, table, now=runtime.now, event_id=event)
                source = f"the {table} table" + (f" of event {event}" if event else "")
            if population == "subjects":
                pop = source_frame(runtime.store, "subjects", now=runtime.now, event_id=event)
    if frame.empty:
        raise InputError(f"{source} has no records to measure")
    if population is not None and population != "subjects":
        pop = _population(population)
    qis = _columns(frame, _names(qi), list(chosen.reid.quasi_identifiers), "--qi", source)
    default_sas = [] if file is None and table == "subjects" else list(chosen.reid.sensitive)
    sas = _columns(frame, _names(sensitive), default_sas, "--sensitive", source)
    thresholds = Thresholds.from_policy(
        chosen, k_min=k_min, l_min=l_min, t_max=t_max, max_prosecutor_risk=max_risk
    )
    report = assess(frame, qis, sas, thresholds=thresholds, population=pop)
    result = None
    if suggest and not report.meets():
        result = least_generalisation(frame, chosen, qis, sas, thresholds)
    if fmt == "json":
        data: dict[str, Any] = {"source": source, "policy": chosen.name, **report.as_dict()}
        if result is not None:
            data["suggestion"] = result.as_dict()
        print_json(data)
    else:
        _print_text(report, source, chosen.name)
        if result is not None:
            _print_suggestion(result)
    if not report.meets():
        raise typer.Exit(1)


def _population(option: str) -> pd.DataFrame | int:
    text = option.strip().replace("_", "")
    if text.isdigit():
        if int(text) < 1:
            raise InputError("--population must be at least 1")
        return int(text)
    return read_csv(Path(option), "population file")


def register(app: typer.Typer) -> None:
    app.command("reid")(reid)
