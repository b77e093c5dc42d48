"""`make demo`: one event, two policies, side by side.

Runs the bundled demo event (a 10-minute DJ set, 200 synthetic wristbands, 12 virtual minutes
of capture) under ``privacy-by-default`` and then under ``spotify-2026``, in one data home, and
prints both summaries. Each run is stored under its own event id
(``fete-2026-republique-<policy>``), so reports can compare them; running the demo again on the
same home reuses the stored runs instead of capturing twice.

    .venv/bin/python examples/demo.py --home demo-home [--wristbands N]

Later steps (reports, audit) are meant to be appended to :func:`main` as small functions that
take the home's settings and the list of summaries.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audit.log.checkpoints import attach_signer, checkpoint_after_command  # noqa: E402
from flowaudit.config import CONFIG_NAME, Settings, resolve_settings  # noqa: E402
from flowaudit.runtime import initialise_home, open_runtime, pii_text_filter  # noqa: E402
from pipeline import EventSpec, RunSummary, load_event, run_event, synthetic_for  # noqa: E402
from retention.models import EventRun  # noqa: E402
from retention.policy import load_policy  # noqa: E402

EVENT_FILE = ROOT / "examples" / "fete-2026.toml"
POLICIES = ("privacy-by-default", "spotify-2026")


def ensure_home(home: Path) -> Settings:
    """Create the data home on first use; reuse it afterwards."""
    if (home / CONFIG_NAME).exists():
        return resolve_settings(home)
    print(f"creating data home {home}")
    return initialise_home(home)


def stored_summary(settings: Settings, event_id: str) -> RunSummary | None:
    """The summary of an earlier run of this event id in the home, if there is one."""
    runtime = open_runtime(settings, load_event(EVENT_FILE).capture_ends)
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
               wristbands: int | None) -> RunSummary:
    """Capture the event under one policy (or reuse the stored run)."""
    event_id = f"{event.id}-{policy_name}"
    earlier = stored_summary(settings, event_id)
    if earlier is not None:
        print(f"{event_id}: already captured in this home, showing the stored summary")
        return earlier
    policy = load_policy(policy_name)
    print(f"capturing {event.name} under {policy_name} ...", flush=True)
    runtime = open_runtime(settings, event.capture_ends)
    try:
        attach_signer(runtime)
        summary = run_event(
            runtime.store, event, policy, synthetic_for(event, wristbands),
            text_filter=pii_text_filter(policy), event_id=event_id,
            source_label=f"synth:{wristbands or len(event.wristbands)}",
        )
        checkpoint_after_command(runtime)
    finally:
        runtime.close()
    return summary


def print_summaries(summaries: list[RunSummary]) -> None:
    for summary in summaries:
        print()
        print("\n".join(summary.lines()))


def write_reports(settings: Settings, event: EventSpec, wristbands: int | None) -> list[Path]:
    """Every compliance report for both runs, then the platform comparison (its own stores)."""
    from audit.reports import ReportContext, build_report, kind_ids, write_report
    from flowaudit.reporting import compare_context

    out, formats = settings.home / "reports", ["md", "html", "json"]
    written: list[Path] = []
    print("\nwriting compliance reports ...", flush=True)
    runtime = open_runtime(settings, event.capture_ends)
    try:
        for name in POLICIES:
            ctx = ReportContext.open(runtime, now=runtime.now, event_id=f"{event.id}-{name}")
            for kind in kind_ids():
                if kind != "compare":
                    written += write_report(build_report(kind, ctx), out / name, formats)
    finally:
        runtime.close()
    print("running the event under each platform profile for the comparison ...", flush=True)
    with compare_context(source=f"synth:{min(wristbands or 40, 40)}") as ctx:
        written += write_report(build_report("compare", ctx), out, formats)
    return written


def main(argv: list[str] | None = None) -> list[RunSummary]:
    parser = argparse.ArgumentParser(description="Run the demo event under two policies.")
    parser.add_argument("--home", type=Path, default=Path("demo-home"), help="data home")
    parser.add_argument("--wristbands", type=int, default=None,
                        help="synthetic wristbands (default: the event's roster)")
    args = parser.parse_args(argv)
    tick = time.monotonic()
    settings = ensure_home(args.home)
    event = load_event(EVENT_FILE)
    summaries = [run_policy(settings, event, name, args.wristbands) for name in POLICIES]
    print_summaries(summaries)
    reports = write_reports(settings, event, args.wristbands)
    print(f"\n{len(reports)} report files in {settings.home / 'reports'}:")
    for path in reports:
        if path.suffix == ".html":
            print(f"  {path}")
    print(f"\ndemo home: {settings.home}  ({time.monotonic() - tick:.0f} s)")
    return summaries


if __name__ == "__main__":
    main()
