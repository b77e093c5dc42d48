"""Data protection impact assessment, GDPR Art 35(7)(a)–(d), from the running system.

(a) what is processed and why; (b) necessity and proportionality, with the minimisation the
pipeline measured (frames dropped by reason, audio captured vs stored, speech stored);
(c) risks, each with the measured indicator that shows whether it materialised, including the
re-identification figures of the kept attributes; (d) the measures, with their evidence.
Each risk names the check rules that measure it, and its level is read from their findings:
the DPIA judges nothing the checks do not.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from audit.reports import _fmt as f
from audit.reports._build import (
    LAWFUL_BASIS_REF,
    findings_section,
    finish,
    retention_table,
    security_measures,
)
from audit.reports._context import ReportContext
from audit.reports._model import (
    FAIL,
    PASS,
    Chart,
    Facts,
    Items,
    Para,
    Report,
    Section,
    Status,
    Table,
)
from audit.reports._registry import report_kind
from audit.reports._svg import PALETTE, hbar_chart
from audit.reports._verdicts import findings_of, verdicts
from audit.reports.gather import (
    audit_chain,
    category_stats,
    chain_verification,
    event_facts,
    findings,
    minimisation,
    population,
    purge_receipts,
    reid_figures,
    run_summaries,
    security_facts,
)
from retention.models import Subject

__all__ = ["build"]


def _criteria(ctx: ReportContext, pop: dict[str, Any], cats: dict[str, Any]) -> list[dict]:
    """EDPB WP248 criteria, each judged from the policy and the store."""
    p = ctx.policy
    return [
        {
            "criterion": "Systematic monitoring of a publicly accessible area",
            "met": True,
            "why": "wristband microphones capture the crowd of a public event continuously",
        },
        {
            "criterion": "Evaluation or scoring",
            "met": True,
            "why": "every wristband window gets a sentiment score (0–100)",
        },
        {
            "criterion": "Innovative use of technology",
            "met": True,
            "why": "emotion inference from crowd audio to steer a live DJ set",
        },
        {
            "criterion": "Large scale",
            "met": pop["wristbands"] >= 100,
            "why": f"{f.n(pop['wristbands'])} wristbands registered for this event "
            "(threshold used: 100)",
        },
        {
            "criterion": "Sensitive or highly personal data",
            "met": bool(p.capture.biometrics or p.capture.store_speech),
            "why": "physiological sensors on (health data)"
            if p.capture.biometrics
            else "speech is stored"
            if p.capture.store_speech
            else "no biometrics and no speech stored",
        },
        {
            "criterion": "Data concerning vulnerable persons",
            "met": bool(cats.get("minors")),
            "why": f"{f.n(cats.get('minors', 0))} wristbands in an age band under 18",
        },
        {
            "criterion": "Automated decision with legal or similar effect",
            "met": False,
            "why": "decisions choose music for the whole crowd, not about a person",
        },
        {
            "criterion": "Matching or combining datasets",
            "met": bool(p.selection.third_party_scorers),
            "why": "third-party scorers receive the audio features"
            if p.selection.third_party_scorers
            else "no dataset is combined with another",
        },
        {
            "criterion": "Prevents exercising a right or using a service",
            "met": not p.capture.require_consent,
            "why": "capture needs consent; opting out leaves the ticket valid"
            if p.capture.require_consent
            else "capture does not depend on consent",
        },
    ]


def _age_bands(ctx: ReportContext) -> dict[str, Any]:
    with ctx.session() as s:
        bands = {
            str(band): int(n)
            for band, n in s.execute(
                select(Subject.age_band, func.count())
                .where(Subject.age_band.is_not(None))
                .group_by(Subject.age_band)
            )
        }
    minors = sum(n for band, n in bands.items() if _is_minor(band))
    return {"age_bands": dict(sorted(bands.items())), "minors": minors}


def _is_minor(band: str) -> bool:
    digits = "".join(c if c.isdigit() else " " for c in band).split()
    return bool(digits) and (band.startswith("<") or int(digits[0]) < 18) and int(digits[-1]) < 18


_REASONS = {
    "no_consent": "dropped: no consent",
    "withdrawn": "dropped: consent withdrawn",
    "outside_window": "dropped: outside the event window",
    "staff": "dropped: staff wristband",
    "speech": "withheld from storage: speech",
}


def _funnel(mini: dict[str, Any]) -> Chart:
    drops = [r for r in mini["dropped"] if r["reason"] != "speech"]
    speech = [r for r in mini["dropped"] if r["reason"] == "speech"]
    rows = [("captured", mini["captured_seconds"])]
    rows += [(_REASONS.get(r["reason"], f"dropped: {r['reason']}"), r["seconds"]) for r in drops]
    rows += [("analysed for sentiment", mini["scored_seconds"])]
    rows += [(_REASONS["speech"], r["seconds"]) for r in speech]
    rows += [
        ("raw audio stored by the pipeline", mini["pipeline_stored_seconds"]),
        ("of which speech", mini["pipeline_speech_seconds"]),
        ("raw audio still held now", mini["stored_seconds"]),
    ]
    colors = (
        [PALETTE[0]]
        + [PALETTE[5]] * len(drops)
        + [PALETTE[2]]
        + [PALETTE[5]] * len(speech)
        + [PALETTE[1], PALETTE[3], PALETTE[4]]
    )
    svg = hbar_chart(
        rows,
        title="Wristband audio captured, dropped, analysed and stored (seconds)",
        value_label=lambda v: f.seconds(v),
        colors=colors,
        label_width=260,
    )
    table = Table(["Stage", "Seconds"], [[label, f.num(value)] for label, value in rows])
    return Chart(svg, "minimisation funnel measured by the pipeline and the store", table)


#: risk -> the rules whose findings show it materialised (level: high on an error finding,
#: medium on a warning, low when they all pass)
RISK_RULES = {
    "speech": ("speech-stored", "speech-stored-by-policy"),
    "reid": ("reid-threshold",),
    "retention": (
        "indefinite-linkable-metadata",
        "raw-audio-past-retention",
        "metadata-past-retention",
        "expired-bucket-without-purge-receipt",
    ),
    "consent": ("data-without-consent", "biometrics-without-explicit-consent"),
    "staff": ("staff-wristbands-processed",),
    "window": ("capture-outside-event-window",),
    "breach": ("sqlite-secure-delete-off", "key-store-in-database", "audit-log-verification"),
}
_RISK_LEVELS = {"error": "high", "warning": "medium"}


def _level(ctx: ReportContext, rule_ids: tuple[str, ...]) -> str:
    severities = {x.severity for x in findings_of(ctx, *rule_ids)}
    for severity, level in _RISK_LEVELS.items():
        if severity in severities:
            return level
    return "low"


def _risks(
    ctx: ReportContext,
    cats: dict[str, dict[str, Any]],
    pop: dict[str, Any],
    mini: dict[str, Any],
    reid: dict[str, Any],
) -> list[dict[str, Any]]:
    """Each risk with its measured indicator, the rules that judge it and their level."""
    raw, meta = cats["raw_audio"], cats["metadata"]
    forever = raw["kept_indefinitely"] + meta["kept_indefinitely"]
    overdue = raw["expired_awaiting_purge"] + meta["expired_awaiting_purge"]
    rows = [
        (
            "speech",
            "Private conversations recorded (Code pénal Art 226-1; bystanders)",
            f"speech stored by the pipeline: {f.seconds(mini['pipeline_speech_seconds'])} "
            f"(still held: {f.seconds(raw['speech_seconds'])}); withheld by the voice-activity "
            f"gate: {f.seconds(mini['speech_dropped_seconds'])}",
        ),
        ("reid", "Re-identification from kept attributes (Recital 26)", reid["summary"]),
        (
            "retention",
            "Data kept longer than necessary (Art 5(1)(e))",
            f"{f.n(forever)} records without an erasure date; "
            f"{f.n(overdue)} past retention awaiting purge",
        ),
        (
            "consent",
            "Processing without consent or after withdrawal (Art 6, Art 7(3))",
            f"{f.n(pop['consent_by_status']['withdrawn'])} withdrawals",
        ),
        (
            "staff",
            "Emotion inference on people at work (AI Act Art 5(1)(f))",
            f"{f.n(pop['staff_with_data'])} staff wristbands with data stored; "
            f"staff frames dropped: {f.seconds(mini['staff_dropped_seconds'])}",
        ),
        (
            "window",
            "Capture beyond the event (the 'always listening' wristband)",
            f"audio dropped outside the event window: {f.seconds(mini['window_dropped_seconds'])}",
        ),
        (
            "breach",
            "Breach of stored audio or metadata (Art 32–34)",
            f"{f.n(raw['records'] + meta['records'])} records, all sealed with "
            "AES-256-GCM under keys held outside the database",
        ),
    ]
    return [
        {
            "risk": risk,
            "indicator": indicator,
            "rule_ids": list(RISK_RULES[key]),
            "level": _level(ctx, RISK_RULES[key]),
        }
        for key, risk, indicator in rows
    ]


@report_kind(
    "dpia",
    title="Data protection impact assessment",
    description="Art 35(7)(a)-(d): description, necessity, risks (incl. re-ID), measures",
    order=30,
)
def build(ctx: ReportContext) -> Report:
    p = ctx.policy
    with ctx.session() as s:
        event = event_facts(s, ctx.event_id, p)
        pop = population(s, ctx.event_id)
        cat_list = category_stats(s, ctx.event_id, p, ctx.now)
        runs = run_summaries(s, ctx.event_id)
        receipts = purge_receipts(s, ctx.event_id)
        security = security_facts(ctx.runtime, s)
        chain = audit_chain(s)
    cats = {c["category"]: c for c in cat_list}
    ages = _age_bands(ctx)
    mini = minimisation(runs, cats["raw_audio"])
    reid = reid_figures(ctx)
    checks = findings(ctx)
    verification = chain_verification(ctx.runtime)
    measures = security_measures(security, chain, receipts, verification)
    criteria = _criteria(ctx, pop, ages)
    risks = _risks(ctx, cats, pop, mini, reid)
    met = sum(1 for c in criteria if c["met"])

    required = Section("requirement", "Why a DPIA is required", "GDPR Art 35(1), 35(3)(c); WP248")
    required.add(
        Table(
            ["Criterion (EDPB WP248)", "Met", "Why"],
            [[c["criterion"], f.yes_no(c["met"]), c["why"]] for c in criteria],
        ),
        Para(
            f"{f.n(met)} of {f.n(len(criteria))} criteria met (the CNIL requires a DPIA from "
            "two); Art 35(3)(c), systematic monitoring of a publicly accessible area on a large "
            "scale, makes it mandatory on its own."
        ),
    )

    a = Section(
        "a-description",
        "Systematic description of the processing and its purposes",
        "GDPR Art 35(7)(a)",
    )
    basis = p.policy.lawful_basis
    a.add(
        Facts(
            [
                ("Controller", p.policy.controller),
                ("Purposes", "; ".join(p.policy.purposes)),
                ("Lawful basis", LAWFUL_BASIS_REF[basis]),
                (
                    "Event",
                    f"{event['name']} ({event['id']}), {f.when(event['starts_at'])} to "
                    f"{f.when(event['ends_at'])}",
                ),
                (
                    "Wristbands",
                    f"{f.n(pop['wristbands'])} registered; "
                    f"{f.n(pop['subjects_with_data'])} with data stored",
                ),
                ("Recipients", "; ".join(p.policy.recipients) or "none outside the controller"),
                ("Transfers outside the EU", p.policy.third_country_transfers),
            ]
        ),
        Items(
            [
                "Capture: wristband microphones, 16 kHz mono, 30 ms frames.",
                "Gates, in order: consent, event window, voice activity (speech frames "
                + ("kept" if p.capture.store_speech else "dropped")
                + "), staff wristbands "
                + ("dropped." if p.capture.drop_staff else "kept."),
                "Sentiment: interpretable audio features to a 0–100 score per wristband window, "
                "aggregated per zone and crowd.",
                f"Selection: next track from crowd sentiment; Adaptive Flow below "
                f"{f.num(p.selection.adaptive_flow_threshold, 0)}; artist control "
                f"{p.selection.artist_control}.",
                f"Storage: raw audio kept {f.dur(p.retention.raw_audio)}, metadata "
                f"{f.dur(p.retention.metadata)}, encrypted per record; audit log "
                f"{f.dur(p.retention.audit_log)}.",
            ]
        ),
        retention_table(cat_list),
    )
    if basis == "legitimate_interests":
        a.add(Para("Legitimate interest pursued (Art 35(7)(a)): " + "; ".join(p.policy.purposes)))

    b = Section(
        "b-necessity", "Necessity and proportionality", "GDPR Art 35(7)(b); Art 5(1)(c), Art 25"
    )
    b.add(
        Para(
            "Minimisation as measured, not as configured: the pipeline counts every frame it "
            "drops and why; the store reports the audio it actually holds."
        ),
        Facts(
            [
                ("Pipeline runs of this event", f.n(mini["runs"])),
                ("Audio captured", f.seconds(mini["captured_seconds"])),
                ("Audio dropped or withheld, total", f.seconds(mini["dropped_seconds"])),
                ("Audio analysed for sentiment", f.seconds(mini["scored_seconds"])),
                ("Speech withheld from storage", f.seconds(mini["speech_dropped_seconds"])),
                ("Raw audio stored by the pipeline", f.seconds(mini["pipeline_stored_seconds"])),
                ("Speech stored by the pipeline", f.seconds(mini["pipeline_speech_seconds"])),
                ("Raw audio still held now", f.seconds(mini["stored_seconds"])),
                ("Speech still held now", f.seconds(mini["speech_seconds"])),
                ("Share of captured audio stored", f.pct(mini["stored_share"])),
            ]
        ),
        _funnel(mini),
        Table(
            ["Data", "Needed for", "Less intrusive option and why (not) used"],
            [
                [
                    "Non-speech crowd sound (features)",
                    "sentiment score",
                    "aggregate-only capture would lose per-zone steering; features are computed "
                    "per window and raw audio is "
                    + (
                        "not kept"
                        if p.retention.raw_audio is not None
                        and p.retention.raw_audio.total_seconds() == 0
                        else f"kept {f.dur(p.retention.raw_audio)}"
                    ),
                ],
                [
                    "Speech",
                    "nothing",
                    "dropped by the voice-activity gate"
                    if not p.capture.store_speech
                    else "stored although no purpose needs it",
                ],
                [
                    "Wristband pseudonym",
                    "consent, withdrawal, access and erasure requests",
                    f"link removed after {f.dur(p.retention.anonymise_metadata_after)}",
                ],
                [
                    "Coarse attributes (zone, age band, ticket, device, arrival)",
                    "per-zone aggregation",
                    "generalised before any export (re-ID gate)",
                ],
            ],
        ),
    )
    b.add(*verdicts(ctx, *RISK_RULES["speech"]))

    c = Section("c-risks", "Risks to the rights and freedoms of data subjects", "GDPR Art 35(7)(c)")
    c.add(
        Para(
            "Each risk's level is read from the findings of the check rules listed with it: "
            "high when one of them has an error finding, medium on a warning, low when they "
            "all pass (the findings are in the last section)."
        ),
        Table(
            ["Risk", "Measured indicator", "Rules", "Level"],
            [[r["risk"], r["indicator"], ", ".join(r["rule_ids"]), r["level"]] for r in risks],
        ),
        Facts(reid["rows"]) if reid["rows"] else Para(reid["summary"]),
    )
    high = [r for r in risks if r["level"] == "high"]
    c.add(Para(f"{f.n(len(high))} of {f.n(len(risks))} risks rated high from the rule findings."))

    d = Section("d-measures", "Measures to address the risks", "GDPR Art 35(7)(d); Art 25, Art 32")
    d.add(
        Table(
            ["Measure", "As configured", "Evidence (measured)"],
            [[m["measure"], m["configured"], m["evidence"]] for m in measures],
        ),
        Items(
            [
                "Consent gate before anything is stored; withdrawal stops capture from that "
                "moment (Art 7(3)).",
                "Event-window gate: nothing before or after the event is processed.",
                "Voice-activity gate: speech frames never reach the raw store.",
                "Staff wristbands dropped (AI Act Art 5(1)(f)).",
                "Re-identification gate on metadata exports (k-anonymity, l-diversity, "
                "prosecutor risk against the policy's thresholds).",
                "Data-subject export and erasure by wristband serial, tracked against Art 12(3).",
            ]
        ),
    )

    review = Section(
        "consultation",
        "Consultation, residual risk and review",
        "GDPR Art 35(2), 35(9), 35(11), Art 36",
    )
    review.add(
        Facts(
            [
                ("DPO advice (Art 35(2))", p.policy.dpo_contact or "no DPO contact in the policy"),
                ("Views of data subjects (Art 35(9))", "to be gathered by the controller"),
                ("Policy version assessed", f"{p.name} sha256 {p.sha256[:16]}…"),
                (
                    "Event ran under",
                    f"{event['policy_name']} sha256 {event['policy_sha256'][:16]}…",
                ),
            ]
        )
    )
    errors = checks["counts"]["error"]
    review.add(
        Status(
            FAIL if errors else PASS,
            f"{f.n(errors)} error findings of the compliance checks: residual high risk, prior "
            "consultation of the CNIL (Art 36) is needed before processing."
            if errors
            else "No error finding of the compliance checks, so no residual high risk "
            "measured; review on any policy or pipeline change (Art 35(11)).",
        ),
        *verdicts(ctx, "policy-changed-since-event"),
    )

    data = {
        "event": event,
        "a_description": {
            "controller": p.policy.controller,
            "purposes": list(p.policy.purposes),
            "lawful_basis": basis,
            "population": pop,
            "categories": cat_list,
            "recipients": list(p.policy.recipients),
        },
        "requirement": {"criteria": criteria, "criteria_met": met, "age_bands": ages},
        "b_necessity": {"minimisation": mini},
        "c_risks": {"risks": risks, "reid": reid, "findings": checks},
        "d_measures": {"measures": measures},
    }
    sections = [required, a, b, c, d, review, findings_section("findings", checks)]
    return finish(
        ctx,
        kind="dpia",
        title="Data protection impact assessment (GDPR Art 35)",
        subtitle=f"{event['name']}: crowd-audio sentiment for live track selection",
        data=data,
        sections=sections,
        event_label=f"{event['name']} ({ctx.event_id})",
    )
