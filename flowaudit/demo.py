"""The demo behind `flowaudit demo` (and `make demo`): one event, two policies, side by side.

Runs the bundled demo event (a 10-minute DJ set, 200 synthetic wristbands, 12 virtual minutes
of capture) under ``privacy-by-default`` and then under ``spotify-2026``, in one data home,
prints both summaries and writes every compliance report. Each run is stored under its own
event id (``fete-2026-republique-<policy>``), so reports can compare them; running the demo
again on the same home reuses the stored runs instead of capturing twice.

It lives in the installed package, not in a checkout-only script, so a wheel user can run it;
the event comes from :func:`pipeline.event.default_event_file` (package data). Progress and
results go through ``echo`` so the CLI decides where text goes; later steps are meant to be
appended to :func:`run_demo` as small functions that take the home's settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from pipeline import EventSpec, RunSummary, load_event, run_event, synthetic_for
from pipeline.event import default_event_file
from pipeline.sources import MAX_SYNTH
from retention.errors import InputError
from retention.models import EventRun
from retention.policy import load_policy
from retention.store import RUN_FAILED, RUN_INTERRUPTED, RunState

from .config import CONFIG_NAME, Settings, resolve_settings
from .runtime import initialise_home, open_runtime, pii_text_filter, signing

__all__ = ["POLICIES", "DemoResult", "run_demo"]

POLICIES = ("privacy-by-default", "spotify-2026")
Echo = Callable[[str], None]


@dataclass(frozen=True)
class DemoResult:
    """What one demo run left behind: the home, both run summaries, the report files."""

    home: Path
    summaries: list[RunSummary]
    reports: list[Path]
    seconds: float


def ensure_home(home: Path, echo: Echo) -> Settings:
    """Create the data home on first use; reuse it afterwards."""
    if (home / CONFIG_NAME).exists():
        return resolve_settings(home)
    echo(f"creating data home {home}")
    return initialise_home(home)


def stored_summary(settings: Settings, event: EventSpec, event_id: str) -> RunSummary | None:
    """The summary of an earlier finished run of this event id in the home, if there is one."""
    runtime = open_runtime(settings, event.capture_ends)
    try:
        with runtime.store.session() as session:
            run = session.scalars(
                select(EventRun).where(EventRun.event_id == event_id).order_by(EventRun.id)
            ).first()
    finally:
        runtime.close()
    if run is None or run.summary.get("status") != "finished":
        return None
    fields = {k: v for k, v in run.summary.items() if k in RunSummary.__dataclass_fields__}
    return RunSummary(**fields)


def run_policy(settings: Settings, event: EventSpec, policy_name: str,
               wristbands: int | None, echo: Echo) -> RunSummary:
    """Capture the event under one policy (or reuse the stored run)."""
    event_id = f"{event.id}-{policy_name}"
    earlier = stored_summary(settings, event, event_id)
    if earlier is not None:
        echo(f"{event_id}: already captured in this home, showing the stored summary")
        return earlier
    policy = load_policy(policy_name)
    runtime = open_runtime(settings, event.capture_ends)
    try:
        mode = _follow_up(runtime.store.runs(event_id))
        if mode == "resume":
            echo(f"{event_id}: an earlier demo run stopped part-way; resuming it ...")
        else:
            echo(f"capturing {event.name} under {policy_name} ...")
        with signing(runtime):
            summary = run_event(
                runtime.store, event, policy, synthetic_for(event, wristbands),
                text_filter=pii_text_filter(policy), event_id=event_id,
                source_label=f"synth:{wristbands or len(event.wristbands)}", mode=mode,
            )
    finally:
        runtime.close()
    return summary


def _follow_up(runs: list[RunState]) -> str:
    """How the demo goes on: a run killed or stopped part-way is resumed (the demo's crowd is
    seeded, so the rest of the set is the one it would have heard), else it starts."""
    if runs and runs[-1].status in (RUN_INTERRUPTED, RUN_FAILED):
        return "resume"
    return "start"


def write_reports(settings: Settings, event: EventSpec, wristbands: int | None,
                  echo: Echo) -> list[Path]:
    """Every compliance report for both runs, then the platform comparison (its own stores)."""
    from audit.reports import ReportContext, build_report, kind_ids, write_report

    from .reporting import compare_context

    out, formats = settings.home / "reports", ["md", "html", "json"]
    written: list[Path] = []
    echo("\nwriting compliance reports ...")
    runtime = open_runtime(settings, event.capture_ends)
    try:
        for name in POLICIES:
            ctx = ReportContext.open(runtime, now=runtime.now, event_id=f"{event.id}-{name}")
            for kind in kind_ids():
                if kind != "compare":
                    written += write_report(build_report(kind, ctx), out / name, formats)
    finally:
        runtime.close()
    echo("running the event under each platform profile for the comparison ...")
    with compare_context(source=f"synth:{min(wristbands or 40, 40)}") as ctx:
        written += write_report(build_report("compare", ctx), out, formats)
    return written


def run_demo(home: Path, wristbands: int | None = None, *, echo: Echo = print) -> DemoResult:
    """Run the demo into ``home``: both captures, their summaries, then every report."""
    if wristbands is not None and not 1 <= wristbands <= MAX_SYNTH:
        raise InputError(f"--wristbands {wristbands}; use 1 to {MAX_SYNTH}")
    tick = time.monotonic()
    settings = ensure_home(home, echo)
    event = load_event(default_event_file())
    summaries = [run_policy(settings, event, name, wristbands, echo) for name in POLICIES]
    for summary in summaries:
        echo("")
        echo("\n".join(summary.lines()))
    reports = write_reports(settings, event, wristbands, echo)
    echo(f"\n{len(reports)} report files in {settings.home / 'reports'}:")
    for path in reports:
        if path.suffix == ".html":
            echo(f"  {path}")
    seconds = time.monotonic() - tick
    echo(f"\ndemo home: {settings.home}  ({seconds:.0f} s)")
    return DemoResult(settings.home, summaries, reports, seconds)
