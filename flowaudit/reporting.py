"""Composition for audits: resolve the scope of a check or report, and run the comparison.

:func:`audit_scope` is how ``flowaudit audit check`` and ``flowaudit report`` both turn their
options into an :class:`audit.scope.AuditScope`, so a report states the same findings as the
check run with the same options.

``compare`` needs the same event run under several policy profiles. Each run goes into its own
temporary data home (own database, keys and audit log), so the profiles cannot see or mix each
other's buckets; the homes are deleted when the context closes.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

from audit.reports import ReportContext
from audit.reports.kinds.compare import PROFILES
from audit.scope import AuditScope
from pipeline.event import EventSpec, default_event_file, load_event
from pipeline.run import run_event
from pipeline.sources import open_source
from retention.errors import InputError
from retention.policy import load_policy

from .runtime import Runtime, initialise_home, open_runtime, pii_text_filter, signing

__all__ = ["audit_scope", "compare_context", "run_profile", "PROFILES", "DEFAULT_SOURCE"]

#: the crowd each profile hears: the first 40 wristbands of the event's roster (seeded)
DEFAULT_SOURCE = "synth:40"


def audit_scope(
    runtime: Runtime,
    *,
    event_id: str | None = None,
    policy: str | None = None,
    as_of: date | None = None,
    one_event: bool = False,
) -> AuditScope:
    """The scope of a command on a home: at the runtime's ``now``, the home's default policy
    when neither ``--policy`` nor an event says otherwise (``one_event`` for a report)."""
    return AuditScope.resolve(
        runtime.store,
        now=runtime.now,
        event_id=event_id,
        policy=policy,
        default_policy=runtime.settings.policy,
        as_of=as_of,
        one_event=one_event,
    )


def run_profile(
    home: Path,
    profile: str,
    event: EventSpec,
    *,
    source: str = DEFAULT_SOURCE,
    duration: timedelta | None = None,
    seed: int | None = None,
) -> Runtime:
    """Initialise ``home``, run ``event`` under ``profile`` into it; return its open runtime."""
    policy = load_policy(profile)
    frames = open_source(source, event, seed=seed)  # a fresh, identically seeded crowd per run
    settings = initialise_home(home, policy=profile)
    runtime = open_runtime(settings, event.capture_starts)
    try:
        with signing(runtime):  # signed checkpoints, as `flowaudit run-event` writes them
            run_event(
                runtime.store,
                event,
                policy,
                frames,
                duration=duration,
                text_filter=pii_text_filter(policy),
                source_label=source,
            )
    except BaseException:
        runtime.close()
        raise
    return runtime


@contextlib.contextmanager
def compare_context(
    *,
    event_file: Path | None = None,
    profiles: Sequence[str] = PROFILES,
    source: str = DEFAULT_SOURCE,
    duration: timedelta | None = None,
    seed: int | None = None,
    now: datetime | None = None,
    as_of: date | None = None,
    workdir: Path | None = None,
) -> Iterator[ReportContext]:
    """Run the event under each profile and yield a context whose ``peers`` are those runs.

    The context itself is the last profile's run (``privacy-by-default`` by default), so the
    report's header names a real store.
    """
    if not profiles:
        raise InputError("no profile to compare; give --profiles a,b,...")
    for name in profiles:
        load_policy(name)  # fail before any run if one is unknown
    event = load_event(event_file or default_event_file())
    moment = now or event.capture_ends
    runtimes: list[Runtime] = []
    with contextlib.ExitStack() as stack:
        base = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fa-cmp-")))
        try:
            peers: dict[str, ReportContext] = {}
            for name in profiles:
                runtime = run_profile(
                    base / name, name, event, source=source, duration=duration, seed=seed
                )
                runtimes.append(runtime)
                peers[name] = ReportContext.open(
                    runtime, now=moment, event_id=event.id, as_of=as_of
                )
            ctx = peers[profiles[-1]]
            ctx.peers = peers
            yield ctx
        finally:
            for runtime in runtimes:
                runtime.close()
