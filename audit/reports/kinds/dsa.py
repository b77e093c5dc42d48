"""DSA Art 27 recommender-system statement for the track selector, with its applicability.

The selector is a recommender in the everyday sense; whether DSA Art 27 binds its operator
depends on being an online platform (Art 3(i)) that is not a micro or small enterprise
(Art 19). The statement is published either way: the main parameters and their weights are
read from the recorded decisions, not from a design document. Applicability is the rule the
``decision-without-main-parameters`` check applies (:func:`dsa_art27_applies`); verdicts are
the findings of named check rules.
"""

from __future__ import annotations

from typing import Any

from audit.checks.decision_parameters import EXEMPT_SIZES, dsa_art27_applies
from audit.reports import _fmt as f
from audit.reports._build import finish
from audit.reports._context import ReportContext
from audit.reports._model import Block, Chart, Facts, Items, Para, Report, Section, Table
from audit.reports._registry import report_kind
from audit.reports._svg import PALETTE, Series, epoch, hbar_chart, time_chart
from audit.reports._verdicts import verdicts
from audit.reports.gather import (
    console_options,
    decision_stats,
    event_facts,
    findings,
    population,
)

__all__ = ["build", "applicability", "RATIONALE", "ARTIST_OPTIONS"]

#: why each main parameter matters (plain language for Art 27(2)(b)); unknown names get a
#: generic line, and the weights themselves always come from the decisions.
RATIONALE = {
    "crowd_sentiment": "the crowd's current mood is what the set is meant to follow",
    "sentiment": "the crowd's current mood is what the set is meant to follow",
    "sentiment_trend": "a falling or rising mood calls for a change of energy before it shows",
    "trend": "a falling or rising mood calls for a change of energy before it shows",
    "energy": "keeps the energy of the next track close to what the crowd responds to",
    "energy_match": "keeps the energy of the next track close to what the crowd responds to",
    "valence": "matches the emotional colour of the music to the crowd's mood",
    "bpm": "smooth tempo transitions keep a dance floor together",
    "bpm_continuity": "smooth tempo transitions keep a dance floor together",
    "tempo": "smooth tempo transitions keep a dance floor together",
    "novelty": "avoids repeating recently played tracks",
    "recency": "avoids repeating recently played tracks",
    "repeat_penalty": "avoids repeating recently played tracks",
    "artist_pool": "the artist's pinned tracks are preferred",
    "context": "time in the set (opening, peak, closing) shapes what fits",
    "requests": "attendees' requests for a track or its artist count in its favour",
    "artist_repeat": "a penalty (negative weight): avoids the same artist as one of the last "
    "three tracks",
    "set_context": "time in the set (opening, peak, closing) shapes what fits",
}

ARTIST_OPTIONS = {
    "none": "The artist cannot change the selection: the selector's pick is played.",
    "partial": "The artist can veto tracks and pin a pool of preferred tracks; the selector "
    "picks within those limits.",
    "full": "The artist can override any pick; an override replaces the selector's choice and "
    "is recorded as such.",
}


def applicability(ctx: ReportContext) -> dict[str, Any]:
    """DSA applicability from the policy's classification facts."""
    c = ctx.policy.classification
    platform, size = bool(c.online_platform), str(c.enterprise_size)
    exempt = size in EXEMPT_SIZES
    art27 = dsa_art27_applies(ctx.policy)
    if not platform:
        reason = (
            "The operator does not host and disseminate information to the public at a "
            "recipient's request (classification.online_platform = false), so it is not an "
            "online platform (DSA Art 3(i)); Art 27 does not apply. The statement below is "
            "published voluntarily."
        )
    elif exempt:
        reason = (
            f"The operator is an online platform but a {size} enterprise: Art 19 exempts it "
            "from Section 3 (Arts 20–28), Art 27 included. The statement below is published "
            "voluntarily."
        )
    else:
        reason = (
            f"The operator is an online platform (classification.online_platform = true) and a "
            f"{size} enterprise, so Art 19 does not exempt it: Art 27 applies to the selector "
            "as a recommender system."
        )
    return {
        "online_platform": platform,
        "enterprise_size": size,
        "art19_exempt": exempt if platform else None,
        "art27_applies": art27,
        "vlop_designated": False,
        "reasoning": reason,
    }


def _rationale(name: str) -> str:
    return RATIONALE.get(name, "recorded by the selector with each decision")


def _kinds(kinds: list[str], last: str = "and") -> str:
    if not kinds:
        return "none"
    return kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} {last} {kinds[-1]}"


def _console_blocks(console: dict[str, Any]) -> list[Block]:
    """The DJ console's controls under the event's artist_control, and their use."""
    mode, available = console["artist_control"], console["available"]
    blocks: list[Block] = [
        Para(
            f"During a live event the DJ console and live API (flowaudit console serve) offer "
            f"three controls; under artist_control = {mode} the console "
            + (f"accepts {_kinds(available)}." if available else "refuses all three.")
            + " Each control, accepted or refused, is stored and audited (console.control) "
            "with the key that asked."
        ),
        Table(
            ["Control", "Available", "What it does", "Who may use it", "Limits",
             "Accepted", "Applied", "Refused"],
            [
                [
                    c["kind"],
                    "yes" if c["available"] else f"no: refused ({c['refusal']['code']})",
                    c["effect"],
                    " or ".join(f"{r} key" for r in c["roles"]) + " of this event",
                    c["limits"],
                    f.n(c["accepted"]),
                    f.n(c["applied"]) if c["kind"] == "override" else "-",
                    f.n(c["refused"]),
                ]
                for c in console["controls"]
            ],
            caption="Console controls under the event's policy, and how often each was used",
        ),
        Items(console["limits"]),
    ]
    refusals = {c["refusal"]["code"]: c["refusal"]["message"]
                for c in console["controls"] if c["refusal"]}
    for code, message in refusals.items():
        refused = [c["kind"] for c in console["controls"]
                   if c["refusal"] and c["refusal"]["code"] == code]
        blocks.append(Para(f"Refused under artist_control = {mode} ({_kinds(refused)}): "
                           f"{code}, \"{message}\"."))
    keys = console["keys"]
    rate = console["default_rate_limit"]
    limits = ", ".join(f"{f.num(r['rate_per_second'], 1)}/s burst {f.n(r['burst'])}"
                       for r in keys["rate_limits"])
    reasons = ", ".join(f"{code} {f.n(n)}" for code, n in console["refused_by_reason"].items())
    blocks.append(
        Facts(
            [
                ("Console used for this event", f.yes_no(console["used"])),
                (
                    "Keys issued for this event",
                    f"{f.n(keys['issued'])} ("
                    + ", ".join(f"{role} {f.n(n)}" for role, n in keys["by_role"].items())
                    + f"; {f.n(keys['revoked'])} revoked)",
                ),
                (
                    "Key rate limits",
                    limits or f"default {f.num(rate['rate_per_second'], 1)}/s burst "
                    f"{f.n(rate['burst'])} (no key issued)",
                ),
                ("Controls asked", f.n(console["controls_asked"])),
                ("Controls accepted", f.n(console["accepted"])),
                ("Controls refused", f"{f.n(console['refused'])}" + (f" ({reasons})" if reasons
                                                                     else "")),
            ]
        )
    )
    if not console["used"]:
        blocks.append(
            Para(
                f"The console was not used for this event: no key was issued for it and no "
                f"control was asked. Under its policy ({mode}) the options above "
                f"({_kinds(available)}) were available to an artist key."
                if available
                else "The console was not used for this event: no key was issued for it and "
                "no control was asked. Under its policy (none) it would have refused every "
                "control."
            )
        )
    return blocks


def _console_statement(console: dict[str, Any]) -> str:
    mode, available = console["artist_control"], console["available"]
    if not available:
        return ("The DJ console refuses every control for this event (artist_control = none): "
                "the selector alone decides.")
    said = (f"During the event an artist key can use the DJ console to "
            f"{_kinds(available, 'or')} tracks (artist_control = {mode}); ")
    if not console["used"]:
        return said + "it was not used for this event."
    return (said + f"{f.n(console['accepted'])} controls were accepted and "
            f"{f.n(console['refused'])} refused.")


def _trace_chart(stats: dict[str, Any], threshold: float) -> Chart:
    trace = stats["trace"]
    points = [(epoch(f.parse_iso(at)), s) for at, s, _, _ in trace]
    flow = [(epoch(f.parse_iso(at)), s) for at, s, a, _ in trace if a]
    over = [(epoch(f.parse_iso(at)), s) for at, s, _, o in trace if o]
    series = [Series("crowd sentiment at each decision", points, color=PALETTE[0], step=False)]
    if flow:
        series.append(Series("Adaptive Flow", flow, color=PALETTE[1], dots=True))
    if over:
        series.append(Series("artist override", over, color=PALETTE[3], dots=True))
    svg = time_chart(
        series,
        title="Crowd sentiment at each decision",
        y_label="sentiment (0-100)",
        hline=(threshold, f"Adaptive Flow threshold {threshold:g}"),
        y_max=100,
    )
    table = Table(
        ["Decided at", "Sentiment", "Adaptive Flow", "Artist override"],
        [[f.when(at), f.num(s), f.yes_no(a), f.yes_no(o)] for at, s, a, o in trace],
    )
    return Chart(svg, f"{f.n(stats['decisions'])} decisions of this event", table)


@report_kind(
    "dsa",
    title="DSA Art 27 recommender statement",
    description="Applicability, main parameters and weights, options, decision statistics",
    order=40,
)
def build(ctx: ReportContext) -> Report:
    p = ctx.policy
    with ctx.session() as s:
        event = event_facts(s, ctx.event_id, p)
        stats = decision_stats(s, ctx.event_id)
        pop = population(s, ctx.event_id)
        console = console_options(s, ctx.event_id, p.selection.artist_control)
    checks = findings(ctx)
    dsa_findings = [x for x in checks["findings"] if "DSA" in x["legal_ref"]]
    dsa_rules = ("decision-without-main-parameters", "decision-without-explanation")
    scope = applicability(ctx)
    params = stats["parameters"]
    for item in params:
        item["rationale"] = _rationale(item["name"])
    control = p.selection.artist_control
    threshold = float(p.selection.adaptive_flow_threshold)

    sec_scope = Section("applicability", "Applicability", "DSA Art 3(i), Art 19, Art 27, Art 33")
    sec_scope.add(
        Facts(
            [
                ("Online platform", f.yes_no(scope["online_platform"])),
                ("Enterprise size", scope["enterprise_size"]),
                (
                    "Art 19 micro/small exemption",
                    "-" if scope["art19_exempt"] is None else f.yes_no(scope["art19_exempt"]),
                ),
                ("Art 27 applies", f.yes_no(scope["art27_applies"])),
                ("Very large online platform (Art 33; Arts 38, 40)", "not designated"),
            ]
        ),
        Para(scope["reasoning"]),
    )

    sec_params = Section(
        "parameters", "Main parameters and their relative importance", "DSA Art 27(1), 27(2)(a)–(b)"
    )
    sec_params.add(
        Para(
            "The selector chooses the next track for the DJ. Each parameter below is read from "
            "the parameters recorded with every decision; its weight is the mean over the "
            "decisions of this event. Crowd sentiment enters through the targets the weights "
            "compare each track with (formulas below, as recorded)."
        ),
        Table(
            ["Rank", "Parameter", "Mean weight", "Share", "Range", "Decisions", "Why it matters"],
            [
                [
                    f.n(x["rank"]),
                    x["name"],
                    f.num(x["mean_weight"], 3),
                    f.pct(x["share"]),
                    f"{f.num(x['min_weight'], 3)}–{f.num(x['max_weight'], 3)}",
                    f.n(x["decisions"]),
                    x["rationale"],
                ]
                for x in params
            ],
            empty="No decision with recorded parameters.",
        ),
        Facts(
            [
                (f"target {name}", formula)
                for name, formula in stats["recorded_settings"]["target_formula"].items()
            ]
            or [("targets", "no formula recorded")]
        ),
        Para(
            f"Adaptive Flow: when crowd sentiment falls below {f.num(threshold, 0)} "
            "(selection.adaptive_flow_threshold), a mood-recovery track is inserted regardless "
            "of the weights above, because the purpose is to bring the crowd back."
        ),
    )
    if params:
        sec_params.add(
            Chart(
                hbar_chart(
                    [(x["name"], x["share"] * 100) for x in params],
                    title="Relative importance of the main parameters (% of total weight)",
                    value_label=lambda v: f"{v:.1f} %",
                ),
                "share of each parameter in the total recorded weight",
                Table(["Parameter", "Share"], [[x["name"], f.pct(x["share"])] for x in params]),
            )
        )

    sec_options = Section(
        "options", "Options to modify or influence the selection", "DSA Art 27(1), 27(3)"
    )
    status = pop["consent_by_status"]
    sec_options.add(
        Facts(
            [
                (f"Artists (artist_control = {control})", ARTIST_OPTIONS[control]),
                (
                    "Attendees",
                    "Opt out or withdraw consent at any time (the wristband stops contributing "
                    "from that moment); ask for access to or erasure of their data.",
                ),
                (
                    "Profiling",
                    "None: the selection uses crowd-level sentiment, not a profile of "
                    "any attendee (the option Art 38 asks of very large platforms is the default).",
                ),
            ]
        ),
        *_console_blocks(console),
        Facts(
            [
                ("Attendees who opted out", f.n(status["opted_out"])),
                ("Attendees who withdrew", f.n(status["withdrawn"])),
                ("Decisions the artist overrode", f.n(stats["artist_overrides"])),
            ]
        ),
    )
    sec_options.add(*verdicts(ctx, "artists-without-options"))

    sec_stats = Section("statistics", "Decision statistics", "DSA Art 27; transparency")
    sec_stats.add(
        Facts(
            [
                ("Decisions", f.n(stats["decisions"])),
                (
                    "Adaptive Flow insertions",
                    f"{f.n(stats['adaptive_flow'])} ({f.pct(stats['adaptive_flow_rate'])})",
                ),
                (
                    "Artist overrides",
                    f"{f.n(stats['artist_overrides'])} ({f.pct(stats['artist_override_rate'])})",
                ),
                (
                    "Crowd sentiment min / mean / max",
                    f"{f.num(stats['sentiment_min'])} / {f.num(stats['sentiment_mean'])} / "
                    f"{f.num(stats['sentiment_max'])}",
                ),
                (
                    "Decision latency p50 / p99 / max",
                    f"{f.num(stats['latency_ms_p50'], 3)} / {f.num(stats['latency_ms_p99'], 3)} / "
                    f"{f.num(stats['latency_ms_max'], 3)} ms",
                ),
                ("Decisions without recorded parameters", f.n(stats["without_parameters"])),
                ("Decisions without an explanation", f.n(stats["without_explanation"])),
                (
                    "First / last decision",
                    f"{f.when(stats['first_at'])} / {f.when(stats['last_at'])}",
                ),
            ]
        ),
    )
    if stats["decisions"]:
        sec_stats.add(_trace_chart(stats, threshold))
    else:
        sec_stats.add(Para("No decision has been recorded for this event."))
    sec_stats.add(*verdicts(ctx, *dsa_rules))
    sec_statement = Section("statement", "Statement for the terms and conditions", "DSA Art 27(1)")
    ranked = (
        ", ".join(f"{x['name']} ({f.pct(x['share'], digits=0)})" for x in params)
        or "none recorded"
    )
    sec_statement.add(
        Items(
            [
                f"What is recommended: the next track the DJ plays at {event['name']}.",
                f"Main parameters, most important first: {ranked}.",
                f"Below a crowd sentiment of {f.num(threshold, 0)} a mood-recovery track is "
                "inserted (Adaptive Flow).",
                ARTIST_OPTIONS[control],
                _console_statement(console),
                "Attendees can opt out or withdraw consent at any time; no attendee is profiled.",
            ]
        )
    )
    data = {
        "event": event,
        "applicability": scope,
        "parameters": params,
        "adaptive_flow_threshold": threshold,
        "artist_control": control,
        "options": {
            "artist": ARTIST_OPTIONS[control],
            "attendees_opted_out": status["opted_out"],
            "attendees_withdrawn": status["withdrawn"],
            "console": console,
        },
        "statistics": {k: v for k, v in stats.items() if k not in ("parameters", "trace")},
        "trace": stats["trace"],
        "findings": dsa_findings,
    }
    return finish(
        ctx,
        kind="dsa",
        title="Recommender-system statement (DSA Art 27)",
        subtitle=f"{event['name']}: how the next track is chosen, and how to change it",
        data=data,
        sections=[sec_scope, sec_params, sec_options, sec_stats, sec_statement],
        event_label=f"{event['name']} ({ctx.event_id})",
    )
