"""AI Act: classification of the crowd-sentiment model and the obligations in force at a date.

The model infers emotions (excitement, enjoyment) from wristband audio — an emotion recognition
system (Art 3(39)) on biometric data in the AI Act's wide sense (Art 3(34): no unique-
identification condition). That makes it high-risk (Annex III point 1(c)), prohibited on people
at work (Art 5(1)(f)), and subject to the Art 50(3) notice. Which of these bind on a given day
depends on ``--as-of``: the Act applies in stages, and the Digital Omnibus provisional agreement
(7 May 2026) defers the Annex III date — marked "verify in OJ" until it is published. The
dates are :mod:`audit.legal_dates`, the ones the checks apply; the staff, notice, log and
oversight verdicts are the findings of named check rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from audit.legal_dates import (
    AI_ACT_ANNEX_III,
    AI_ACT_ANNEX_III_ORIGINAL,
    AI_ACT_ENTRY_INTO_FORCE,
    AI_ACT_LOG_RETENTION,
    AI_ACT_PENALTIES,
    AI_ACT_PROHIBITIONS,
    AI_ACT_TRANSPARENCY,
    DIGITAL_OMNIBUS_AGREEMENT,
    in_force,
)
from audit.reports import _fmt as f
from audit.reports._build import finish
from audit.reports._context import ReportContext
from audit.reports._model import Chart, Facts, Notice, Para, Report, Section, Table
from audit.reports._registry import report_kind
from audit.reports._svg import milestones_chart
from audit.reports._verdicts import findings_of, verdicts
from audit.reports.gather import category_stats as _category_stats
from audit.reports.gather import event_facts, minimisation, notice_timing, population, run_summaries

__all__ = ["build", "MILESTONES", "obligations_at", "notice_text", "SIX_MONTHS"]

#: AI Act Art 26(6): deployers keep the system's logs for at least six months
SIX_MONTHS: timedelta = AI_ACT_LOG_RETENTION


@dataclass(frozen=True)
class Milestone:
    """A date from which part of Reg. (EU) 2024/1689 applies."""

    id: str
    applies_from: date
    label: str
    verify: bool = False
    original: date | None = None


MILESTONES = (
    Milestone("entry-into-force", AI_ACT_ENTRY_INTO_FORCE, "entry into force (Art 113)"),
    Milestone("prohibitions", AI_ACT_PROHIBITIONS, "Art 5 prohibitions, Art 4 AI literacy"),
    Milestone("penalties", AI_ACT_PENALTIES, "penalties (Art 99), GPAI rules"),
    Milestone("transparency", AI_ACT_TRANSPARENCY, "Art 50 transparency obligations"),
    Milestone(
        "high-risk-annex-iii",
        AI_ACT_ANNEX_III,
        "Annex III high-risk obligations (deferred; verify in OJ)",
        verify=True,
        original=AI_ACT_ANNEX_III_ORIGINAL,
    ),
)
_BY_ID = {m.id: m for m in MILESTONES}

#: (id, article, obligation, milestone id, who)
_OBLIGATIONS = (
    (
        "art5-1-f",
        "Art 5(1)(f)",
        "No emotion recognition on people at work (staff, artists on duty)",
        "prohibitions",
        "deployer",
    ),
    ("art4", "Art 4", "AI literacy of the staff operating the system", "prohibitions", "deployer"),
    (
        "art99",
        "Art 99(3)",
        "Fines up to EUR 35 M or 7 % of turnover for Art 5 breaches",
        "penalties",
        "all",
    ),
    (
        "art50-3",
        "Art 50(3), 50(5)",
        "Inform people exposed to emotion recognition, at the latest at first exposure",
        "transparency",
        "deployer",
    ),
    (
        "art26",
        "Art 26",
        "Deployer duties: use per instructions, human oversight, monitoring, "
        "logs kept at least six months (26(6)), inform affected persons",
        "high-risk-annex-iii",
        "deployer",
    ),
    (
        "arts9-17",
        "Arts 9–17, 43, 49",
        "Provider duties: risk management, data governance, "
        "technical documentation, logging, transparency, accuracy; conformity assessment; EU "
        "database registration",
        "high-risk-annex-iii",
        "provider",
    ),
)


def obligations_at(as_of: date) -> list[dict[str, Any]]:
    """Each obligation with its date and whether it is in force at ``as_of``."""
    out = []
    for oid, article, text, milestone_id, who in _OBLIGATIONS:
        m = _BY_ID[milestone_id]
        binding = in_force(m.applies_from, as_of)
        if binding:
            status = "in force"
        elif m.original is not None and as_of >= m.original:
            status = "deferred (was due; verify in OJ)"
        else:
            status = "not yet in force"
        out.append(
            {
                "id": oid,
                "article": article,
                "obligation": text,
                "applies_from": m.applies_from.isoformat(),
                "originally_from": m.original.isoformat() if m.original else None,
                "verify_in_oj": m.verify,
                "who": who,
                "in_force": binding,
                "status": status,
            }
        )
    return out


def _kept(value: timedelta | None, lang: str, plural: bool = False) -> str:
    word = "conservés" if plural else "conservé"
    if value is not None and value.total_seconds() == 0:
        return f"non {word}" if lang == "fr" else "not kept"
    return (f"{word} " if lang == "fr" else "kept ") + f.period(value, lang)


def _linked(value: timedelta | None, lang: str) -> str:
    if value is None:
        return (
            "liés à votre bracelet tant qu'ils sont conservés"
            if lang == "fr"
            else ("linked to your wristband for as long as they are kept")
        )
    if value.total_seconds() == 0:
        return "jamais liés à votre bracelet" if lang == "fr" else "never linked to your wristband"
    return ("liés à votre bracelet " if lang == "fr" else "linked to your wristband ") + f.period(
        value, lang
    )


def notice_text(ctx: ReportContext) -> dict[str, list[str]]:
    """The Art 50(3) notice (English and French), filled from the policy."""
    p = ctx.policy
    raw = p.retention.raw_audio
    speech_en = "is recorded" if p.capture.store_speech else "is never recorded"
    speech_fr = "est enregistrée" if p.capture.store_speech else "n'est jamais enregistrée"
    contact = p.policy.dpo_contact or p.policy.controller_contact or p.policy.controller
    window_en = " during the event only" if p.capture.event_window_only else ""
    window_fr = ", pendant l'événement uniquement" if p.capture.event_window_only else ""
    anon = p.retention.anonymise_metadata_after
    staff_en = " Staff wristbands are never analysed." if p.capture.drop_staff else ""
    staff_fr = (
        " Les bracelets du personnel ne sont jamais analysés." if p.capture.drop_staff else ""
    )
    en = [
        "This event uses an AI system that infers the crowd's emotions (such as excitement or "
        "enjoyment) from the sound picked up by the microphone in your wristband, to choose "
        "the music. This is emotion recognition (EU AI Act, Art 50(3)).",
        f"What is captured: crowd sound around your wristband{window_en}. Speech "
        f"{speech_en}. Raw audio is {_kept(raw, 'en')}; scores are "
        f"{_kept(p.retention.metadata, 'en')} and {_linked(anon, 'en')}.",
        f"Controller: {p.policy.controller}. Contact: {contact}. "
        f"Purpose: {'; '.join(p.policy.purposes)}.",
        "You can opt out or withdraw at any time; you can ask for access to or erasure of your "
        "data with your wristband number, and complain to the CNIL." + staff_en,
    ]
    fr = [
        "Cet événement utilise un système d'IA qui déduit les émotions du public (par exemple "
        "l'enthousiasme ou le plaisir) à partir du son capté par le micro de votre bracelet, "
        "pour choisir la musique. Il s'agit de reconnaissance des émotions (règlement européen "
        "sur l'IA, art. 50, par. 3).",
        f"Ce qui est capté : le son de la foule autour de votre bracelet{window_fr}. La parole "
        f"{speech_fr}. L'audio brut est {_kept(raw, 'fr')} ; les scores sont "
        f"{_kept(p.retention.metadata, 'fr', plural=True)} et {_linked(anon, 'fr')}.",
        f"Responsable du traitement : {p.policy.controller}. Contact : {contact}. "
        f"Finalité : {'; '.join(p.policy.purposes)}.",
        "Vous pouvez refuser ou retirer votre consentement à tout moment, demander l'accès à "
        "vos données ou leur effacement avec le numéro de votre bracelet, et saisir la CNIL."
        + staff_fr,
    ]
    return {"en": en, "fr": fr}


def _classification(ctx: ReportContext, staff_with_data: int) -> list[dict[str, Any]]:
    p = ctx.policy
    inputs = "wristband audio" + (
        " and heart rate / skin conductance" if p.capture.biometrics else ""
    )
    return [
        {
            "question": "Biometric data (Art 3(34))",
            "answer": True,
            "why": f"{inputs}: physical, physiological or behavioural characteristics; the AI "
            "Act, unlike GDPR Art 4(14), needs no unique identification",
        },
        {
            "question": "Emotion recognition system (Art 3(39), Recital 18)",
            "answer": True,
            "why": "the sentiment score (0–100) infers emotions such as excitement or "
            "enjoyment from that data; aggregating per crowd does not take it out of scope "
            "(conservative reading: per-wristband scores exist)",
        },
        {
            "question": "Biometric categorisation (Art 3(40))",
            "answer": False,
            "why": "no person is assigned to a category such as age or sex by the model",
        },
        {
            "question": "High-risk (Annex III point 1(c))",
            "answer": True,
            "why": "emotion recognition is listed; the Art 6(3) derogation is not claimed "
            "because per-wristband scores amount to profiling",
        },
        {
            "question": "Prohibited practice in this deployment (Art 5(1)(f))",
            "answer": bool(
                staff_with_data
                or (p.classification.population_includes_staff and not p.capture.drop_staff)
            ),
            "why": "only if the system infers emotions of people at work; staff wristbands are "
            + ("dropped before analysis" if p.capture.drop_staff else "NOT dropped")
            + f" and {f.n(staff_with_data)} staff wristbands have data stored",
        },
    ]


@report_kind(
    "ai-act",
    title="AI Act classification and notice",
    description="Art 3(39), Annex III 1(c), Art 5(1)(f) staff exclusion, Art 50(3) notice",
    order=50,
)
def build(ctx: ReportContext) -> Report:
    p = ctx.policy
    with ctx.session() as s:
        event = event_facts(s, ctx.event_id, p)
        pop = population(s, ctx.event_id)
        runs = run_summaries(s, ctx.event_id)
        cats = {c["category"]: c for c in _category_stats(s, ctx.event_id, p, ctx.now)}
        timing = notice_timing(s, ctx.event_id)
    mini = minimisation(runs, cats["raw_audio"])
    obligations = obligations_at(ctx.as_of)
    classification = _classification(ctx, pop["staff_with_data"])
    notice = notice_text(ctx)
    audit_log = p.retention.audit_log
    logs_ok = not findings_of(ctx, "audit-log-retention-too-short")
    staff = {
        "policy_drop_staff": bool(p.capture.drop_staff),
        "population_includes_staff": bool(p.classification.population_includes_staff),
        "staff_wristbands": pop["staff_wristbands"],
        "staff_with_data": pop["staff_with_data"],
        "staff_dropped_seconds": mini["staff_dropped_seconds"],
    }

    sec_class = Section(
        "classification",
        "Classification of the crowd-sentiment model",
        "AI Act Art 3(34), 3(39), 3(40), Art 6, Annex III 1(c)",
    )
    sec_class.add(
        Table(
            ["Question", "Answer", "Why"],
            [[c["question"], f.yes_no(c["answer"]), c["why"]] for c in classification],
        ),
        Para(
            "Role: the event organiser runs its own model, so it is the deployer and, for the "
            "built-in scorer, also the provider. Third-party scorers "
            + (
                "are enabled: their providers carry the provider duties."
                if p.selection.third_party_scorers
                else "are disabled."
            )
        ),
    )

    sec_dates = Section(
        "obligations",
        f"Obligations in force on {ctx.as_of.isoformat()}",
        "AI Act Art 113; Digital Omnibus (provisional)",
    )
    sec_dates.add(
        Table(
            ["Article", "Obligation", "Applies from", "Who", f"Status on {ctx.as_of.isoformat()}"],
            [
                [
                    o["article"],
                    o["obligation"],
                    o["applies_from"]
                    + (
                        f" (originally {o['originally_from']}; verify in OJ)"
                        if o["verify_in_oj"]
                        else ""
                    ),
                    o["who"],
                    o["status"],
                ]
                for o in obligations
            ],
        ),
        Chart(
            milestones_chart(
                [
                    (m.applies_from, m.label, in_force(m.applies_from, ctx.as_of))
                    for m in MILESTONES
                ],
                marker=(ctx.as_of, f"as of {ctx.as_of.isoformat()}"),
                title="AI Act application dates (filled: in force at the evaluation date)",
            ),
            "application dates of Reg. (EU) 2024/1689 and the evaluation date",
            Table(
                ["Date", "Milestone", "In force"],
                [
                    [
                        m.applies_from.isoformat(),
                        m.label,
                        f.yes_no(in_force(m.applies_from, ctx.as_of)),
                    ]
                    for m in MILESTONES
                ],
            ),
        ),
        Para(
            "The Annex III date follows the Digital Omnibus provisional agreement of "
            f"{DIGITAL_OMNIBUS_AGREEMENT.isoformat()} ({AI_ACT_ANNEX_III_ORIGINAL.isoformat()} "
            f"deferred to {AI_ACT_ANNEX_III.isoformat()}). Verify it against the Official "
            "Journal before relying on it."
        ),
    )

    sec_staff = Section(
        "staff", "Workplace exclusion: staff and artists on duty", "AI Act Art 5(1)(f), Art 99(3)"
    )
    sec_staff.add(
        Facts(
            [
                ("Policy drops staff wristbands", f.yes_no(staff["policy_drop_staff"])),
                (
                    "Population includes staff (policy)",
                    f.yes_no(staff["population_includes_staff"]),
                ),
                ("Staff wristbands registered", f.n(staff["staff_wristbands"])),
                ("Staff audio dropped by the pipeline", f.seconds(staff["staff_dropped_seconds"])),
                ("Staff wristbands with data stored", f.n(staff["staff_with_data"])),
            ]
        )
    )
    sec_staff.add(*verdicts(ctx, "staff-wristbands-processed"))

    sec_notice = Section(
        "notice", "Notice to people exposed", "AI Act Art 50(3), 50(5); GDPR Art 13, Art 14"
    )
    sec_notice.add(
        Notice("Notice (English)", notice["en"]),
        Notice("Avis (français)", notice["fr"]),
        Facts(
            [
                (
                    "Consent records with a notice version",
                    f.n(timing["consents_with_notice_version"]),
                ),
                ("Wristbands with data stored", f.n(timing["subjects_with_data"])),
                ("… with data older than their consent", f.n(timing["data_before_consent"])),
                ("… with no consent record at all", f.n(timing["data_without_consent_record"])),
            ]
        ),
    )
    sec_notice.add(
        *verdicts(ctx, "emotion-recognition-notice"),
        Para(
            "Bystanders cannot be reached through a wristband: Art 14 and Art 50(3) call for "
            "signs at the entrances and around the stage, which flowaudit cannot verify."
        ),
    )

    sec_logs = Section("logs", "Logs and human oversight", "AI Act Art 12, Art 14, Art 26(6)")
    sec_logs.add(
        Facts(
            [
                ("Audit log retention (policy)", f.dur(audit_log)),
                ("At least six months (Art 26(6))", f.yes_no(logs_ok)),
                ("Log contents", "pseudonyms, counts and times; no PCM, no serial"),
                ("Human oversight of selection", f"artist_control = {p.selection.artist_control}"),
            ]
        ),
        *verdicts(ctx, "audit-log-retention-too-short", "no-human-oversight", "interrupted-run"),
    )

    data = {
        "event": event,
        "as_of": ctx.as_of.isoformat(),
        "classification": classification,
        "obligations": obligations,
        "staff_exclusion": staff,
        "notice": {**notice, "timing": timing},
        "logs": {"audit_log_retention": f.dur(audit_log), "at_least_six_months": logs_ok},
    }
    return finish(
        ctx,
        kind="ai-act",
        title="AI Act classification and transparency notice",
        subtitle=f"{event['name']}: the crowd-sentiment model under Reg. (EU) 2024/1689",
        data=data,
        sections=[sec_class, sec_dates, sec_staff, sec_notice, sec_logs],
        event_label=f"{event['name']} ({ctx.event_id})",
    )
