"""Data protection impact assessment, GDPR Art 35(7)(a)–(d), from the running system.

(a) what is processed and why; (b) necessity and proportionality, with the minimisation the
pipeline measured (frames dropped by reason, audio captured vs stored, speech stored);
(c) risks, each with the measured indicator that shows whether it materialised, including the
re-identification figures of the kept attributes; (d) the measures, with their evidence.
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
    WARN,
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


def _risks(
    ctx: ReportContext,
    cats: dict[str, dict[str, Any]],
    pop: dict[str, Any],
    mini: dict[str, Any],
    reid: dict[str, Any],
    checks: dict[str, Any],
) -> list[dict[str, str]]:
    """Each risk with its measured indicator; level is high when the indicator shows harm."""
    p = ctx.policy
    raw, meta = cats["raw_audio"], cats["metadata"]
    by_rule: dict[str, int] = {}
    for item in checks["findings"]:
        if item["severity"] == "error":
            by_rule[item["rule_id"]] = by_rule.get(item["rule_id"], 0) + 1

    def level(bad: bool, residual: str = "low") -> str:
        return "high" if bad else residual

    reid_bad = reid["available"] and not reid["meets_policy"]
    forever = raw["kept_indefinitely"] + meta["kept_indefinitely"]
    overdue = raw["expired_awaiting_purge"] + meta["expired_awaiting_purge"]
    return [
        {
            "risk": "Private conversations recorded (Code pénal Art 226-1; bystanders)",
            "indicator": f"speech stored by the pipeline: "
            f"{f.seconds(mini['pipeline_speech_seconds'])} (still held: "
            f"{f.seconds(raw['speech_seconds'])}); withheld by the voice-activity gate: "
            f"{f.seconds(mini['speech_dropped_seconds'])}",
            "level": level(max(raw["speech_seconds"], mini["pipeline_speech_seconds"]) > 0),
        },
        {
            "risk": "Re-identification from kept attributes (Recital 26)",
            "indicator": reid["summary"],
            "level": level(reid_bad),
        },
        {
            "risk": "Data kept longer than necessary (Art 5(1)(e))",
            "indicator": f"{f.n(forever)} records without an erasure date; "
            f"{f.n(overdue)} past retention awaiting purge",
            "level": level(
                bool(raw["kept_indefinitely"] or meta["kept_indefinitely"])
                or bool(by_rule.get("raw-audio-past-retention")),
                "low",
            ),
        },
        {
            "risk": "Processing without consent or after withdrawal (Art 6, Art 7(3))",
            "indicator": f"{f.n(pop['consent_by_status']['withdrawn'])} withdrawals; "
            f"consent-rule errors: {f.n(sum(v for k, v in by_rule.items() if 'consent' in k))}",
            "level": level(any("consent" in k for k in by_rule)),
        },
        {
            "risk": "Emotion inference on people at work (AI Act Art 5(1)(f))",
            "indicator": f"{f.n(pop['staff_with_data'])} staff wristbands with data stored; "
            f"staff frames dropped: {f.seconds(mini['staff_dropped_seconds'])}",
            "level": level(pop["staff_with_data"] > 0),
        },
        {
            "risk": "Capture beyond the event (the 'always listening' wristband)",
            "indicator": f"audio dropped outside the event window: "
            f"{f.seconds(mini['window_dropped_seconds'])}; window-rule errors: "
            f"{f.n(sum(v for k, v in by_rule.items() if 'window' in k))}",
            "level": level(any("window" in k for k in by_rule) or not p.capture.event_window_only),
        },
        {
            "risk": "Breach of stored audio or metadata (Art 32–34)",
            "indicator": f"{f.n(raw['records'] + meta['records'])} records, all sealed with "
            "AES-256-GCM under keys held outside the database",
            "level": "low",
        },
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
    risks = _risks(ctx, cats, pop, mini, reid, checks)
    met = sum(1 for c in criteria if c["met"])

    required = Section("requirement", "Why a DPIA is required", "GDPR Art 35(1), 35(3)(c); WP248")
    required.add(
        Table(
            ["Criterion (EDPB WP248)", "Met", "Why"],
            [[c["criterion"], f.yes_no(c["met"]), c["why"]] for c in criteria],
        ),
        Status(
            FAIL if met < 2 else PASS,
            f"{f.n(met)} of {f.n(len(criteria))} criteria met: a DPIA is mandatory "
            "(CNIL: two or more criteria), and Art 35(3)(c) applies on its own.",
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
    speech = max(mini["pipeline_speech_seconds"], mini["speech_seconds"])
    if speech > 0 and not p.capture.store_speech:
        b.add(Status(FAIL, "Speech was stored although capture.store_speech = false."))
    elif speech > 0:
        b.add(
            Status(
                WARN,
                f"{f.seconds(speech)} of speech were stored (capture.store_speech = "
                "true): no purpose needs speech, and bystanders cannot consent.",
            )
        )
    else:
        b.add(Status(PASS, "No speech was ever written to the raw store."))

    c = Section("c-risks", "Risks to the rights and freedoms of data subjects", "GDPR Art 35(7)(c)")
    c.add(
        Table(
            ["Risk", "Measured indicator", "Level"],
            [[r["risk"], r["indicator"], r["level"]] for r in risks],
        ),
        Facts(reid["rows"]) if reid["rows"] else Para(reid["summary"]),
    )
    high = [r for r in risks if r["level"] == "high"]
    c.add(
        Status(FAIL if high else PASS, f"{f.n(len(high))} risks rated high from the measurements.")
    )

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
            FAIL if high or errors else PASS,
            "Residual high risk: prior consultation of the CNIL (Art 36) is needed before "
            "processing."
            if high or errors
            else "No residual high risk measured; review on any policy or pipeline change "
            "(Art 35(11)).",
        )
    )
    if not event["policy_matches"]:
        review.add(Status(WARN, "The policy changed since the event ran: review this DPIA."))

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
