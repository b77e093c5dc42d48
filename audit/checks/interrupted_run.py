"""A pipeline run that stopped midway leaves a record of processing that ends mid-event.

Its committed windows are stored with their audit entries, but the run has no closing entry
(`pipeline.run_finish` with its totals), and the data covers only part of the event: figures
built from it (sentiment, drops, decisions) describe an event that did not end there. The
controller must be able to show what was processed (GDPR Art 5(2)) and the system's logs must
cover its operation (AI Act Art 12(1)). A run is *interrupted* when its process ended without
finishing (kill -9, power loss, Ctrl-C) — also when it still says ``running`` but no live process
holds its run lock (a live event's run: while none of its workers, which hold it shared, is
alive before its capture ended and every window was stepped). A run resumed to its end is not
a finding; one left behind by
``--new-run`` stays one, so the partial run remains visible.
"""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._common import iso
from audit.checks._registry import WARNING, CheckContext, rule
from retention.store import LIVE_RUN_SOURCE, RUN_INTERRUPTED

__all__ = ["interrupted_run"]


@rule(
    "interrupted-run",
    title="A pipeline run was interrupted and not resumed",
    severity=WARNING,
    legal_ref="GDPR Art 5(2); AI Act Art 12(1)",
)
def interrupted_run(ctx: CheckContext) -> Iterator[tuple[str, dict]]:
    runs = ctx.runtime.store.runs(ctx.event_id)
    for run in runs:
        if run.status != RUN_INTERRUPTED:
            continue
        later = [r.run_id for r in runs if r.event_id == run.event_id and r.run_id > run.run_id]
        planned = f" of {run.windows}" if run.windows is not None else ""
        if later:
            follow = f"run {later[-1]} followed it"
        elif run.plan.get("source") == LIVE_RUN_SOURCE:
            follow = "no live worker is running: start `flowaudit worker` again to go on"
        else:
            follow = ("continue it with `flowaudit run-event --resume`, or start another with "
                      "--new-run")
        yield (
            f"event {run.event_id}: run {run.run_id} stopped after {run.windows_done}{planned} "
            f"windows and never finished; its data covers part of the event ({follow})",
            {
                "event": run.event_id,
                "run": run.run_id,
                "windows_done": run.windows_done,
                "windows_planned": run.windows,
                "started_at": iso(run.started_at),
                "recorded": run.recorded,
                "later_runs": later,
            },
        )
