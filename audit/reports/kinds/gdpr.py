"""GDPR Art 30 record of processing activities, with the evidence behind each field.

Art 30(1)(a)–(g) come from the policy (who, why, to whom, how long) and the store (which data
subjects and data categories actually exist, how the data is secured); lawful basis and the
Art 9 exception per purpose; retention per category with purge receipts; data-subject requests
against the Art 12(3) deadline; Art 32 measures as the running system has them. Every pass /
fail / warn line is a finding (or the pass) of a named check rule on the report's scope.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from audit.reports import _fmt as f
from audit.reports._build import (
    LAWFUL_BASIS_REF,
    findings_section,
    finish,
    receipts_table,
    retention_table,
    security_measures,
    security_section,
)
from audit.reports._context import ReportContext
from audit.reports._model import Facts, Items, Para, Report, Section, Table
from audit.reports._registry import report_kind
from audit.reports._verdicts import verdicts
from audit.reports.gather import (
    audit_chain,
    bucket_evidence,
    category_stats,
    chain_verification,
    event_facts,
    findings,
    population,
    purge_receipts,
    purge_runs,
    security_facts,
    subject_requests,
    writes_per_bucket,
)
from retention.models import Consent, Decision, Subject
from retention.shred_bound import rotation_interval, shred_bound

__all__ = ["build", "ropa"]


def _gather(ctx: ReportContext) -> dict[str, Any]:
    with ctx.session() as s:
        writes = writes_per_bucket(s, ctx.event_id)
        facts = {
            "event": event_facts(s, ctx.event_id, ctx.policy),
            "population": population(s, ctx.event_id),
            "categories": category_stats(s, ctx.event_id, ctx.policy, ctx.now),
            "purge_receipts": purge_receipts(s, ctx.event_id),
            "purge_runs": purge_runs(s),
            "buckets": bucket_evidence(s, ctx.event_id, ctx.now, writes),
            "subject_requests": subject_requests(s, ctx.now),
            "security": security_facts(ctx.runtime, s),
            "shred_bound": _shred_bound(ctx, s),
            "audit_chain": audit_chain(s),
            "consent_records": int(
                s.scalar(select(func.count(Consent.id)).where(Consent.event_id == ctx.event_id))
                or 0
            ),
            "subjects_registered": int(s.scalar(select(func.count(Subject.id))) or 0),
            "decisions": int(
                s.scalar(select(func.count(Decision.id)).where(Decision.event_id == ctx.event_id))
                or 0
            ),
        }
    # outside the session: verification opens connections of its own
    facts["verification"] = chain_verification(ctx.runtime)
    facts["findings"] = findings(ctx)
    return facts


def ropa(ctx: ReportContext, facts: dict[str, Any], measures: list[dict[str, str]]) -> dict:
    """The Art 30(1)(a)–(g) record, every field non-empty (a field that does not apply says so)."""
    p = ctx.policy
    pop = facts["population"]
    cats = {c["category"]: c for c in facts["categories"]}
    raw, meta = cats["raw_audio"], cats["metadata"]
    status = pop["consent_by_status"]
    subjects = [
        {
            "category": "Attendees wearing a wristband",
            "count": pop["wristbands"] - pop["staff_wristbands"],
            "detail": f"opted in {f.n(status['opted_in'])}, opted out {f.n(status['opted_out'])}"
            f", withdrawn {f.n(status['withdrawn'])}; {f.n(pop['subjects_with_data'])} "
            "wristbands have data stored",
        },
        {
            "category": "Bystanders near a wristband microphone",
            "count": None,
            "detail": "not enrolled and not counted; their voices can reach a microphone, so "
            + (
                "speech frames are dropped before storage (capture.store_speech = false)"
                if not p.capture.store_speech
                else "speech is stored (capture.store_speech = true)"
            ),
        },
        {
            "category": "Staff and artists on duty",
            "count": pop["staff_wristbands"],
            "detail": (
                "excluded from capture (capture.drop_staff = true)"
                if p.capture.drop_staff
                else "NOT excluded from capture (capture.drop_staff = false)"
            )
            + f"; staff wristbands with data stored: {f.n(pop['staff_with_data'])}",
        },
    ]
    data_cats = [
        {
            "category": "Wristband pseudonym",
            "detail": "HMAC-SHA256 of the wristband serial; the serial is never stored",
            "records": facts["subjects_registered"],
        },
        {
            "category": "Coarse attributes of the wristband holder",
            "detail": "zone, age band, ticket type, device model, arrival time",
            "records": facts["subjects_registered"],
        },
        {
            "category": "Consent records (Art 7)",
            "detail": "status, time given or withdrawn, notice version",
            "records": facts["consent_records"],
        },
        {
            "category": "Raw audio (raw_audio)",
            "detail": f"encrypted PCM; {f.seconds(raw['audio_seconds'])} stored, of which "
            f"{f.seconds(raw['speech_seconds'])} speech; retention {raw['retention']}",
            "records": raw["records"],
        },
    ]
    for kind in meta.get("by_kind", []):
        data_cats.append(
            {
                "category": f"Derived metadata: {kind['kind']}",
                "detail": f"encrypted JSON; {f.n(kind['linked_to_wristband'])} linked to a "
                f"wristband, {f.n(kind['anonymised'])} anonymised; retention {meta['retention']}",
                "records": kind["records"],
            }
        )
    data_cats.append(
        {
            "category": "Track-selection decisions",
            "detail": "crowd-level sentiment, chosen track and main parameters; no wristband link",
            "records": facts["decisions"],
        }
    )
    if p.capture.biometrics:
        data_cats.append(
            {
                "category": "Heart rate / skin conductance (health data, Art 9)",
                "detail": f"collected under {p.capture.art9_exception}; explicit consents: "
                f"{f.n(pop['biometrics_explicit_consents'])}",
                "records": None,
            }
        )
    limits = [
        {
            "category": c["category"],
            "time_limit": c["retention"],
            "mechanism": "indefinite: no erasure scheduled"
            if c["retention"] == "indefinite"
            else "bucket key destroyed by the purge job when the bucket expires; reads past "
            "expiry refused before that",
        }
        for c in facts["categories"]
    ]
    limits.append(
        {
            "category": "metadata (linkable form)",
            "time_limit": f.dur(p.retention.anonymise_metadata_after),
            "mechanism": "link to the wristband removed and attributes generalised",
        }
    )
    limits.append(
        {
            "category": "audit log",
            "time_limit": f.dur(p.retention.audit_log),
            "mechanism": "pseudonyms and counts only; kept for accountability (AI Act Art 26(6))",
        }
    )
    return {
        "a_controller": {
            "name": p.policy.controller,
            "contact": p.policy.controller_contact or "not stated in the policy",
            "dpo": p.policy.dpo_contact or "none designated in the policy",
            "representative": "not recorded (required only for a controller outside the EU, "
            "Art 27)",
        },
        "b_purposes": list(p.policy.purposes),
        "c_data_subjects": subjects,
        "c_personal_data": data_cats,
        "d_recipients": list(p.policy.recipients) or ["none outside the controller"],
        "e_transfers": p.policy.third_country_transfers or "none",
        "f_erasure_time_limits": limits,
        "g_security_measures": [
            {"measure": m["measure"], "configured": m["configured"]} for m in measures
        ],
    }


def _lawful_basis(ctx: ReportContext, pop: dict[str, Any]) -> list[dict[str, Any]]:
    p = ctx.policy
    basis = p.policy.lawful_basis
    if p.capture.biometrics:
        art9 = (
            "Art 9(2)(a) explicit consent"
            if p.capture.art9_exception == "explicit_consent"
            else "none recorded"
        )
    else:
        art9 = (
            "not applicable: no special-category data (capture.biometrics = false; voice is "
            "not processed to identify anyone, Art 4(14))"
        )
    return [
        {
            "purpose": purpose,
            "basis": basis,
            "article": LAWFUL_BASIS_REF[basis],
            "special_category": bool(p.capture.biometrics),
            "art9_exception": art9,
        }
        for purpose in p.policy.purposes
    ]


def _count(value: int | None) -> str:
    return f.n(value) if value is not None else "not counted"


def _record_section(ctx: ReportContext, record: dict[str, Any]) -> Section:
    a = record["a_controller"]
    section = Section("art30", "Record of processing activities", "GDPR Art 30(1)(a)–(g)")
    section.add(
        Facts(
            [
                (
                    "(a) Controller, contact, representative, DPO",
                    f"{a['name']}; contact: {a['contact']}; DPO: {a['dpo']}; "
                    f"representative: {a['representative']}",
                ),
                ("(b) Purposes of the processing", "; ".join(record["b_purposes"])),
                (
                    "(c) Categories of data subjects",
                    "; ".join(
                        f"{s['category']} ({_count(s['count'])})" for s in record["c_data_subjects"]
                    ),
                ),
                (
                    "(c) Categories of personal data",
                    "; ".join(c["category"] for c in record["c_personal_data"]),
                ),
                ("(d) Categories of recipients", "; ".join(record["d_recipients"])),
                ("(e) Transfers to third countries", record["e_transfers"]),
                (
                    "(f) Time limits for erasure",
                    "; ".join(
                        f"{x['category']}: {x['time_limit']}"
                        for x in record["f_erasure_time_limits"]
                    ),
                ),
                (
                    "(g) Technical and organisational security measures",
                    "; ".join(m["measure"] for m in record["g_security_measures"])
                    + " (detail and evidence in the security section)",
                ),
            ]
        ),
        Table(
            ["Data subjects", "Count", "Detail"],
            [
                [
                    s["category"],
                    f.n(s["count"]) if s["count"] is not None else "not counted",
                    s["detail"],
                ]
                for s in record["c_data_subjects"]
            ],
            caption="(c) Data subjects, counted in the store",
        ),
        Table(
            ["Personal data", "Records", "Detail"],
            [
                [c["category"], f.n(c["records"]) if c["records"] is not None else "-", c["detail"]]
                for c in record["c_personal_data"]
            ],
            caption="(c) Personal data, counted in the store",
        ),
        Table(
            ["Category", "Time limit", "Mechanism"],
            [
                [x["category"], x["time_limit"], x["mechanism"]]
                for x in record["f_erasure_time_limits"]
            ],
            caption="(f) Erasure time limits (from the policy)",
        ),
    )
    section.add(*verdicts(ctx, "no-dpo-contact"))
    return section


def _basis_section(ctx: ReportContext, rows: list[dict[str, Any]], pop: dict) -> Section:
    section = Section(
        "lawful-basis",
        "Lawful basis and Art 9 exception per purpose",
        "GDPR Art 6(1), Art 7, Art 9(2)",
    )
    section.add(
        Table(
            ["Purpose", "Lawful basis", "Special-category data", "Art 9 exception"],
            [
                [r["purpose"], r["article"], f.yes_no(r["special_category"]), r["art9_exception"]]
                for r in rows
            ],
        )
    )
    status = pop["consent_by_status"]
    section.add(
        Facts(
            [
                ("Lawful basis (policy)", LAWFUL_BASIS_REF[ctx.policy.policy.lawful_basis]),
                (
                    "Consent gate (capture.require_consent)",
                    f.yes_no(ctx.policy.capture.require_consent),
                ),
                (
                    "Consent records",
                    f"{f.n(status['opted_in'])} opted in, {f.n(status['opted_out'])} opted out, "
                    f"{f.n(status['withdrawn'])} withdrew (Art 7(3))",
                ),
            ]
        ),
        *verdicts(
            ctx,
            "legitimate-interests-without-balancing-test",
            "data-without-consent",
            "biometrics-without-explicit-consent",
        ),
    )
    section.add(
        Para(
            "Bystanders cannot rely on a wearer's consent; their protection is minimisation: "
            "speech frames are dropped before storage when capture.store_speech is false."
        )
    )
    return section


def _shred_bound(ctx: ReportContext, session: Any) -> dict[str, Any]:
    """The bound after which a shred cannot be undone from an old key-store copy (from data)."""
    settings = ctx.runtime.settings
    interval = rotation_interval(getattr(settings, "key_rotation_interval", None))
    provider = str(getattr(ctx.runtime.keys, "provider_name", "file"))
    return shred_bound(session, provider, interval, ctx.now)


def _retention_section(ctx: ReportContext, facts: dict[str, Any]) -> Section:
    buckets = facts["buckets"]
    runs = facts["purge_runs"]
    section = Section(
        "retention", "Retention per data category and deletion evidence", "GDPR Art 5(1)(e), Art 17"
    )
    section.add(
        retention_table(facts["categories"]),
        Facts(
            [
                ("Buckets of this event expired at report time", f.n(buckets["expired"])),
                (
                    "… destroyed, with an audit entry",
                    f.n(buckets["expired_destroyed_with_receipt"]),
                ),
                ("… still active (key not destroyed)", f.n(buckets["expired_still_active"])),
                (
                    "Destroyed buckets without an audit entry",
                    f.n(buckets["destroyed_without_receipt"]),
                ),
            ]
        ),
        *verdicts(
            ctx,
            "indefinite-linkable-metadata",
            "raw-audio-past-retention",
            "metadata-past-retention",
            "expired-bucket-without-purge-receipt",
            "bucket-destroyed-without-audit-entry",
        ),
    )
    section.add(
        receipts_table(facts["purge_receipts"]),
        Facts(
            [
                ("Purge runs (real / dry)", f"{f.n(runs['real_runs'])} / {f.n(runs['dry_runs'])}"),
                ("Last real purge", f.when(runs["last_run_at"])),
                ("Rows deleted by purges", f.n(runs["rows_deleted"])),
                ("Bytes freed by purges", f.size(runs["bytes_freed"])),
                ("Shred irreversible after", facts["shred_bound"]["statement"]),
            ]
        ),
    )
    return section


def _dsr_section(ctx: ReportContext, dsr: dict[str, Any]) -> Section:
    section = Section(
        "dsr",
        "Data-subject requests against the deadline",
        "GDPR Art 12(3), Art 15, Art 17, Art 20",
    )
    section.add(
        Para(
            "Art 12(3): answer without undue delay and within one month of receipt, extendable "
            "by two further months with reasons given within the first month. Requests are "
            "listed by number only."
        ),
        Facts(
            [
                ("Requests received", f.n(dsr["total"])),
                (
                    "By kind",
                    ", ".join(f"{k} {f.n(v)}" for k, v in dsr["by_kind"].items()) or "none",
                ),
                ("Completed / open", f"{f.n(dsr['completed'])} / {f.n(dsr['open'])}"),
                ("Completed on time / late", f"{f.n(dsr['on_time'])} / {f.n(dsr['late'])}"),
                ("Open and overdue", f.n(dsr["overdue"])),
                ("Extended", f.n(dsr["extended"])),
                (
                    "Median / longest days to complete",
                    f"{f.num(dsr['median_days_to_complete'])} / "
                    f"{f.num(dsr['max_days_to_complete'])}",
                ),
            ]
        ),
        Table(
            ["#", "Kind", "Status", "Received", "Deadline", "Completed", "Days", "Verdict"],
            [
                [
                    f.n(r["id"]),
                    r["kind"],
                    r["status"],
                    f.when(r["received_at"]),
                    f.when(r["deadline"]) + (" (extended)" if r["extended_to"] else ""),
                    f.when(r["completed_at"]),
                    f.num(r["days_to_complete"]),
                    "on time"
                    if r["on_time"]
                    else "late"
                    if r["late"]
                    else "OVERDUE"
                    if r["overdue"]
                    else "open, within deadline",
                ]
                for r in dsr["requests"]
            ],
            empty="No data-subject request has been received.",
        ),
    )
    section.add(*verdicts(ctx, "overdue-subject-request", "subject-request-deadline-beyond-limit"))
    return section


def _scope_section(ctx: ReportContext, facts: dict[str, Any]) -> Section:
    event = facts["event"]
    section = Section("scope", "Event and scope")
    section.add(
        Facts(
            [
                ("Event", f"{event['name']} ({event['id']})"),
                ("Venue", event["venue"] or "-"),
                ("Window", f"{f.when(event['starts_at'])} to {f.when(event['ends_at'])}"),
                (
                    "Ran under policy",
                    f"{event['policy_name']} (sha256 {event['policy_sha256'][:16]}…)",
                ),
                (
                    "Reported against policy",
                    f"{event['report_policy_name']} (sha256 {event['report_policy_sha256'][:16]}…)",
                ),
            ]
        )
    )
    section.add(*verdicts(ctx, "policy-changed-since-event"))
    return section


@report_kind(
    "gdpr",
    title="GDPR record of processing activities",
    description="Art 30 record, lawful basis, retention evidence, requests, Art 32 measures",
    order=10,
)
def build(ctx: ReportContext) -> Report:
    facts = _gather(ctx)
    measures = security_measures(
        facts["security"], facts["audit_chain"], facts["purge_receipts"], facts["verification"]
    )
    record = ropa(ctx, facts, measures)
    basis = _lawful_basis(ctx, facts["population"])
    data = {
        "event": facts["event"],
        "ropa": record,
        "lawful_basis": basis,
        "population": facts["population"],
        "retention": {
            "categories": facts["categories"],
            "purge_receipts": facts["purge_receipts"],
            "purge_runs": facts["purge_runs"],
            "buckets": facts["buckets"],
            "shred_bound": facts["shred_bound"],
        },
        "subject_requests": facts["subject_requests"],
        "security": {**facts["security"], "measures": measures},
        "audit_chain": {**facts["audit_chain"], "verification": facts["verification"]},
        "findings": facts["findings"],
    }
    sections = [
        _scope_section(ctx, facts),
        _record_section(ctx, record),
        _basis_section(ctx, basis, facts["population"]),
        _retention_section(ctx, facts),
        _dsr_section(ctx, facts["subject_requests"]),
        security_section(ctx, "security", "Security of processing", "GDPR Art 32(1)", measures),
        findings_section("findings", facts["findings"]),
    ]
    sections[-1].add(
        Items(
            [
                "Art 30(3)–(4): this record is electronic and can be handed to the CNIL on "
                "request; the JSON version validates against the shipped schema.",
                "Art 30(5): the under-250-employees exemption does not apply (the processing "
                "is not occasional).",
            ]
        )
    )
    return finish(
        ctx,
        kind="gdpr",
        title="Record of processing activities (GDPR Art 30)",
        subtitle=f"{facts['event']['name']}: crowd-audio sentiment for live track selection",
        data=data,
        sections=sections,
        event_label=f"{facts['event']['name']} ({ctx.event_id})",
    )
