"""Capture stored outside the event window (the article's wristbands that "keep listening").

Raw audio, and metadata tied to a wristband, whose start time lies before the event starts or
at/after it ends (window-level metadata may start up to ``WINDOW_SLACK`` before the event: its
window straddles the start). Crowd-level aggregates (no pseudonym) are not capture. A policy
that allows capture outside the window (``capture.event_window_only = false``) is reported as
a warning even before such records exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from sqlalchemy import or_, select

from audit.checks._common import WINDOW_SLACK, iso, summarise
from audit.checks._registry import ERROR, WARNING, CheckContext, rule
from retention.models import MetadataRecord, RawSegment

__all__ = ["capture_outside_window"]


@rule(
    "capture-outside-event-window",
    title="Capture stored outside the event window",
    severity=ERROR,
    legal_ref="GDPR Art 5(1)(b), Art 5(1)(c), Art 25(2)",
)
def capture_outside_window(ctx: CheckContext) -> Iterator[tuple]:
    with ctx.session() as session:
        for event in ctx.events(session):
            found: list[list[RawSegment | MetadataRecord]] = []
            for model, slack in ((RawSegment, timedelta(0)), (MetadataRecord, WINDOW_SLACK)):
                query = select(model).where(
                    model.event_id == event.id,
                    model.subject_pseudonym.is_not(None),
                    or_(
                        model.start_at < event.starts_at - slack,
                        model.start_at >= event.ends_at,
                    ),
                )
                found.append(list(session.scalars(query)))  # type: ignore[arg-type]
            raw, meta = found
            policy = ctx.policy_for(event)
            if not raw and not meta:
                if not policy.capture.event_window_only:
                    yield (
                        f"event {event.id}: policy {policy.name} allows capture outside the "
                        "event window (capture.event_window_only = false; no such records "
                        "stored yet)",
                        {"event": event.id, "policy": policy.name, "records": 0},
                        WARNING,
                    )
                continue
            rows = raw + meta
            before = sum(1 for r in rows if r.start_at < event.starts_at)
            note = (
                ""
                if policy.capture.event_window_only
                else f" (policy {policy.name} allows it: capture.event_window_only = false)"
            )
            yield (
                f"event {event.id}: {len(raw)} raw segment(s) and {len(meta)} wristband metadata "
                f"record(s) were captured outside {iso(event.starts_at)}..{iso(event.ends_at)}"
                f"{note}",
                {
                    "event": event.id,
                    "policy": policy.name,
                    "event_starts_at": iso(event.starts_at),
                    "event_ends_at": iso(event.ends_at),
                    "raw_segments": len(raw),
                    "metadata_records": len(meta),
                    "before_start": before,
                    "after_end": len(rows) - before,
                    **summarise(rows),
                },
            )
