"""`flowaudit status`: what this home is, and what it holds."""

from __future__ import annotations

from collections import Counter
from typing import Any

import typer

from retention import db as dbmod
from retention.inventory import take_inventory
from retention.store import LIVE_RUN_SOURCE, RUN_FINISHED, RunState

from ._common import (
    DbOption,
    FormatOption,
    HomeOption,
    NowOption,
    check_format,
    print_json,
    runtime_from,
)


def _run_dict(run: RunState) -> dict[str, Any]:
    return {
        "run": run.run_id,
        "event": run.event_id,
        "status": run.status,
        "windows_done": run.windows_done,
        "windows": run.windows,
        "started_at": run.started_at.isoformat(),
    }


def _run_line(run: RunState) -> str:
    """One unfinished run, and what to do about it."""
    planned = f" of {run.windows}" if run.windows is not None else ""
    done = f"{run.windows_done}{planned} windows committed"
    if run.plan.get("source") == LIVE_RUN_SOURCE:
        done = f"{run.windows_done}{planned} windows stepped"
        if run.stopped:
            return (f"{run.event_id}: live run {run.status} after {done}: no worker is "
                    "running; start `flowaudit worker` again to go on")
        return f"{run.event_id}: live run {run.status} (workers alive), {done}"
    if run.stopped:
        return (f"{run.event_id}: {run.status} after {done}; continue it with `flowaudit "
                "run-event --resume` (the first run's options) or start another with --new-run")
    return f"{run.event_id}: {run.status}, {done}"


def status(
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
    format: FormatOption = "text",
) -> None:
    """Show the home, database revision, policy, key store, stored counts and event runs.

    A run whose process died without finishing (kill -9, power loss) shows as interrupted. A
    live event's run is running while one of its workers is alive, finished once the capture
    is over and every window is stepped, and interrupted when no worker is left before that.
    """
    fmt = check_format(format)
    with runtime_from(home, db, now) as rt:
        inventory = take_inventory(rt.engine)
        runs = rt.store.runs()
        info = {
            "home": str(rt.settings.home),
            "database": dbmod.redact_url(rt.settings.db_url),
            "revision": dbmod.current_revision(rt.engine),
            "policy": rt.settings.policy,
            "live_bucket_keys": len(rt.keys.bucket_ids()),
            **inventory.as_dict(),
        }
    if fmt == "json":
        print_json({**info, "runs": [_run_dict(r) for r in runs]})
        return
    for key, value in info.items():
        typer.echo(f"{key:18} {value}")
    states = Counter(r.status for r in runs)
    counts = ", ".join(f"{state} {n}" for state, n in sorted(states.items()))
    typer.echo(f"{'runs':18} {len(runs)}" + (f" ({counts})" if counts else ""))
    for run in runs:
        if run.status != RUN_FINISHED:
            typer.echo(f"  {'run ' + str(run.run_id):16} {_run_line(run)}")


def register(app: typer.Typer) -> None:
    app.command("status")(status)
