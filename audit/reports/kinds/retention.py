"""Retention evidence: per data category, the policy, what is held now, and proof of deletion.

"Raw audio is deleted after 72 hours" is a claim; this report shows it from the record: how
many records each bucket received (audit log), when its key was destroyed (bucket row), which
purge receipt covers it, and a timeline of records held against records destroyed. Verdicts
(deletion overdue, no receipt, log and store disagree) are the findings of named check rules.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from audit.reports import _fmt as f
from audit.reports._build import finish, receipts_table, retention_table
from audit.reports._context import ReportContext
from audit.reports._model import Chart, Facts, Para, Report, Section, Table
from audit.reports._registry import report_kind
from audit.reports._svg import PALETTE, Series, epoch, time_chart
from audit.reports._verdicts import verdicts
from audit.reports.gather import (
    anonymisation_evidence,
    audit_chain,
    bucket_evidence,
    category_stats,
    erasure_receipts,
    event_facts,
    purge_receipts,
    purge_runs,
    timeline,
    writes_per_bucket,
)
from retention.ground.actions import Action

__all__ = ["build", "timeline_chart"]

_TITLES = {"raw_audio": "Raw audio", "metadata": "Metadata"}


def _series(points: list[list[Any]]) -> list[tuple[float, float]]:
    return [(epoch(f.parse_iso(at)), float(value)) for at, value in points]


def timeline_chart(
    category: str,
    line: dict[str, Any],
    event: dict[str, Any],
    now: datetime,
    first_expiry: str | None = None,
) -> Chart:
    """Records held vs destroyed over time for one category, with the projection after now."""
    projected = _series(line["projected"])
    if len(projected) == 1:  # nothing scheduled: held flat for a day past now (indefinite)
        projected.append((epoch(now + timedelta(days=1)), projected[0][1]))
    held = _series(line["held"])
    if held and held[-1][0] < epoch(now):  # held level continues up to the report time
        held.append((epoch(now), held[-1][1]))
    destroyed = _series(line["destroyed"])
    if destroyed and held and held[0][0] < destroyed[0][0]:  # nothing destroyed before then
        destroyed.insert(0, (held[0][0], 0.0))
    series = [
        Series("records held", held, color=PALETTE[0], fill=True),
        Series("records destroyed (cumulative)", destroyed, color=PALETTE[1]),
        Series("held if scheduled purges run", projected, color=PALETTE[0], dashed=True),
    ]
    markers = [
        (epoch(f.parse_iso(event["starts_at"])), "event start"),
        (epoch(f.parse_iso(event["ends_at"])), "event end"),
        (epoch(now), "report"),
    ]
    if first_expiry is not None:
        markers.append((epoch(f.parse_iso(first_expiry)), "retention ends"))
    svg = time_chart(
        series,
        title=f"{_TITLES.get(category, category)}: records held and destroyed",
        y_label="records",
        markers=markers,
    )
    table = Table(
        ["Time", "Records held", "Series"],
        [[f.when(at), f.n(v), "held"] for at, v in line["held"]]
        + [[f.when(at), f.n(v), "destroyed (cumulative)"] for at, v in line["destroyed"]]
        + [[f.when(at), f.n(v), "projected"] for at, v in line["projected"]],
    )
    totals = line["totals"]
    caption = (
        f"{category}: {f.n(totals['written'])} records written (audit log), "
        f"{f.n(totals['destroyed'])} destroyed, {f.n(totals['held'])} held at report time, "
        f"{f.n(totals['scheduled'])} scheduled for destruction, "
        f"{f.n(totals['indefinite'])} kept indefinitely"
    )
    return Chart(svg, caption, table)


def _category_section(
    cat: dict[str, Any],
    line: dict[str, Any],
    buckets: list[dict[str, Any]],
    event: dict[str, Any],
    ctx: ReportContext,
    erasures: dict[str, int],
) -> Section:
    name = cat["category"]
    section = Section(
        f"cat-{name.replace('_', '-')}", f"{_TITLES.get(name, name)} ({name})", "GDPR Art 5(1)(e)"
    )
    rows = [
        ("Retention (policy)", cat["retention"]),
        ("Records stored", f.n(cat["records"])),
        ("Readable now", f.n(cat["readable_now"])),
        ("Expired, awaiting purge (unreadable)", f.n(cat["expired_awaiting_purge"])),
        ("Kept indefinitely", f.n(cat["kept_indefinitely"])),
        ("Ciphertext stored", f.size(cat["ciphertext_bytes"])),
        ("Wristbands with records", f.n(cat["subjects"])),
        ("Oldest record", f.when(cat["oldest_record_at"])),
        ("Newest record", f.when(cat["newest_record_at"])),
        ("Next expiry", f.when(cat["next_expiry_at"])),
    ]
    if name == "raw_audio":
        rows += [
            ("Audio stored", f.seconds(cat["audio_seconds"])),
            ("of which speech", f.seconds(cat["speech_seconds"])),
        ]
    section.add(Facts(rows))
    totals = line["totals"]
    section.add(
        Para(
            f"Audit log and store: {f.n(totals['written'])} written − "
            f"{f.n(totals['destroyed'])} destroyed = {f.n(totals['held'])} held per the log; "
            f"the store holds {f.n(cat['records'])}; erasure receipts in this store deleted "
            f"{f.n(erasures[name])} {name} records on data-subject requests."
        ),
        *verdicts(
            ctx,
            "raw-audio-past-retention" if name == "raw_audio" else "metadata-past-retention",
            *(("indefinite-linkable-metadata",) if name == "metadata" else ()),
            "audit-log-store-mismatch",
            category=name,
        ),
    )
    mine = [b for b in buckets if b["category"] == name]
    expiries = sorted(b["expires_at"] for b in mine if b["expires_at"])
    section.add(timeline_chart(name, line, event, ctx.now, expiries[0] if expiries else None))
    section.add(
        Table(
            [
                "Bucket",
                "Hour (UTC)",
                "Expires",
                "State",
                "Key destroyed",
                "Rows deleted",
                "Records written",
                "Proof (audit entry)",
            ],
            [
                [
                    b["id"],
                    f.short(b["starts_at"]),
                    f.short(b["expires_at"]) if b["expires_at"] else "never",
                    b["state"],
                    f.short(b["shredded_at"]),
                    f.short(b["deleted_at"]),
                    f.n(b["records_written"]),
                    f.n(b["proof_seq"]) if b["proof_seq"] is not None else "-",
                ]
                for b in mine
            ],
            caption="Retention buckets: one key per event, category and hour",
            empty="No bucket: nothing of this category was stored.",
        )
    )
    return section


@report_kind(
    "retention",
    title="Retention evidence",
    description="Per category: policy, data held now, oldest record, purge receipts, timeline",
    order=20,
)
def build(ctx: ReportContext) -> Report:
    p = ctx.policy
    with ctx.session() as s:
        event = event_facts(s, ctx.event_id, p)
        cats = category_stats(s, ctx.event_id, p, ctx.now)
        writes = writes_per_bucket(s, ctx.event_id)
        evidence = bucket_evidence(s, ctx.event_id, ctx.now, writes)
        lines = timeline(s, ctx.event_id, writes, ctx.now)
        receipts = purge_receipts(s, ctx.event_id)
        runs = purge_runs(s)
        chain = audit_chain(s)
        anonymised = anonymisation_evidence(s, ctx.event_id)
        erasures = erasure_receipts(s)
    keys_destroyed = chain["actions"].get(Action.SUBJECT_KEY_DESTROYED, 0)
    policy_rows = {
        "raw_audio": f.dur(p.retention.raw_audio),
        "metadata": f.dur(p.retention.metadata),
        "anonymise_metadata_after": f.dur(p.retention.anonymise_metadata_after),
        "audit_log": f.dur(p.retention.audit_log),
    }
    overview = Section("overview", "Retention policy and what is held now", "GDPR Art 5(1)(e)")
    overview.add(
        Facts(
            [
                ("Raw audio", policy_rows["raw_audio"]),
                ("Metadata", policy_rows["metadata"]),
                ("Metadata linkable to a wristband for", policy_rows["anonymise_metadata_after"]),
                ("Audit log", policy_rows["audit_log"]),
            ]
        ),
        Para(
            "Retention is enforced twice: a read past a record's expiry is refused at once, and "
            "the purge job destroys the bucket's key (every copy of the data becomes "
            "unreadable) and then deletes the ciphertext. Each purge writes a receipt to the "
            "hash-chained audit log."
        ),
        retention_table(cats),
    )
    overview.add(
        Facts(
            [
                ("Buckets of this event expired at report time", f.n(evidence["expired"])),
                (
                    "… destroyed, with an audit entry",
                    f.n(evidence["expired_destroyed_with_receipt"]),
                ),
                ("… still active (key not destroyed)", f.n(evidence["expired_still_active"])),
            ]
        ),
        *verdicts(
            ctx,
            "raw-audio-past-retention",
            "metadata-past-retention",
            "expired-bucket-without-purge-receipt",
        ),
    )
    sections = [overview]
    for cat in cats:
        sections.append(
            _category_section(
                cat, lines[cat["category"]], evidence["buckets"], event, ctx, erasures
            )
        )
    purge = Section("purges", "Purge receipts and runs", "GDPR Art 5(2), Art 17")
    purge.add(
        receipts_table(receipts),
        Facts(
            [
                ("Purge runs (real / dry)", f"{f.n(runs['real_runs'])} / {f.n(runs['dry_runs'])}"),
                ("Last real purge", f.when(runs["last_run_at"])),
                ("Last purge evaluated expiry at", f.when(runs["last_run_as_of"])),
                ("Buckets shredded by purges", f.n(runs["buckets_shredded"])),
                ("Rows deleted by purges", f.n(runs["rows_deleted"])),
                ("Bytes freed by purges", f.size(runs["bytes_freed"])),
                ("Subject keys destroyed (erasure requests)", f.n(keys_destroyed)),
                (
                    "Rows deleted by erasure (raw / metadata, all events)",
                    f"{f.n(erasures['raw_audio'])} / {f.n(erasures['metadata'])}",
                ),
            ]
        ),
    )
    purge.add(*verdicts(ctx, "bucket-destroyed-without-audit-entry"))
    sections.append(purge)
    anon = Section(
        "anonymisation", "Anonymisation of kept metadata", "GDPR Recital 26, Art 5(1)(e)"
    )
    anon.add(
        Para(
            f"When metadata reaches retention.anonymise_metadata_after "
            f"({policy_rows['anonymise_metadata_after']}), its link to the wristband is dropped: "
            "records are aggregated per generalised group of at least k_min wristbands, small "
            "groups are suppressed, and the linkable originals expire at once."
        ),
        Table(
            [
                "Audit entry",
                "Time",
                "Bucket",
                "Linkable records",
                "Wristbands",
                "Aggregates written",
                "Records suppressed",
                "Smallest group (k_min)",
            ],
            [
                [
                    f.n(x["seq"]),
                    f.when(x["at"]),
                    x["bucket"],
                    f.n(x["linkable_records"]),
                    f.n(x["subjects"]),
                    f.n(x["aggregates"]),
                    f.n(x["records_suppressed"]),
                    f"{x['min_group_subjects'] if x['min_group_subjects'] is not None else '-'}"
                    f" ({x['k_min'] if x['k_min'] is not None else '-'})",
                ]
                for x in anonymised["steps"]
            ],
            empty="No anonymisation step has run for this event yet.",
        ),
    )
    sections.append(anon)
    data = {
        "event": event,
        "policy": policy_rows,
        "categories": cats,
        "timeline": lines,
        "buckets": evidence,
        "purge_receipts": receipts,
        "purge_runs": runs,
        "subject_keys_destroyed": keys_destroyed,
        "erasures": erasures,
        "anonymisation": anonymised,
    }
    return finish(
        ctx,
        kind="retention",
        title="Retention and deletion evidence",
        subtitle=f"{event['name']}: what is held, for how long, and proof that it was deleted",
        data=data,
        sections=sections,
        event_label=f"{event['name']} ({ctx.event_id})",
    )
