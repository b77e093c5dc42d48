"""The article's platform comparison, measured: the same event run under each profile.

The article compares Spotify (2026), Apple Music (2025) and TikTok (2026) on sentiment
analysis, latency, artist control and data retention, as claims. Here each profile is a policy
file, the same event and the same synthetic crowd run through the real pipeline under each
(one store per profile), and every cell is read back from that profile's store and audit log.

The caller supplies the runs as ``ctx.peers`` (profile name -> report context of that run);
:mod:`flowaudit.reporting` makes them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from audit.reports import _fmt as f
from audit.reports._build import finish
from audit.reports._context import ReportContext
from audit.reports._model import (
    FAIL,
    PASS,
    WARN,
    Chart,
    Facts,
    Para,
    Report,
    Section,
    Status,
    Table,
)
from audit.reports._registry import report_kind
from audit.reports._svg import PALETTE, hbar_chart
from audit.reports.gather import (
    category_stats,
    decision_stats,
    event_facts,
    findings,
    minimisation,
    readable_at,
    run_summaries,
)
from retention.errors import InputError

__all__ = ["build", "HORIZONS", "PROFILES"]

#: the article's three platforms, then flowaudit's recommended profile
PROFILES = ("spotify-2026", "apple-music-2025", "tiktok-2026", "privacy-by-default")
#: after the end of the event: when is each profile's data still readable?
HORIZONS = (
    ("end of event", timedelta(0)),
    ("+24 h", timedelta(hours=24)),
    ("+72 h", timedelta(hours=72)),
    ("+30 days", timedelta(days=30)),
    ("+1 year", timedelta(days=365)),
)


def _profile(name: str, ctx: ReportContext) -> dict[str, Any]:
    p = ctx.policy
    with ctx.session() as s:
        event = event_facts(s, ctx.event_id, p)
        cats = {c["category"]: c for c in category_stats(s, ctx.event_id, p, ctx.now)}
        stats = decision_stats(s, ctx.event_id)
        runs = run_summaries(s, ctx.event_id)
        ends = f.parse_iso(event["ends_at"])
        horizons = [
            {
                "label": label,
                "at": f.iso(ends + delta),
                **readable_at(s, ctx.event_id, ends + delta),
            }
            for label, delta in HORIZONS
        ]
    checks = findings(ctx)
    raw, meta = cats["raw_audio"], cats["metadata"]
    linked = sum(k["linked_to_wristband"] for k in meta.get("by_kind", []))
    scorers = sorted({str(r["summary"].get("scorer", "")) for r in runs} - {""})
    return {
        "profile": name,
        "policy": {
            "name": p.name,
            "sha256": p.sha256,
            "claim": p.policy.description,
            "raw_audio": f.dur(p.retention.raw_audio),
            "metadata": f.dur(p.retention.metadata),
            "anonymise_metadata_after": f.dur(p.retention.anonymise_metadata_after),
            "store_speech": bool(p.capture.store_speech),
            "artist_control": p.selection.artist_control,
            "third_party_scorers": bool(p.selection.third_party_scorers),
            "lawful_basis": p.policy.lawful_basis,
        },
        "event_id": ctx.event_id,
        "minimisation": minimisation(runs, raw),
        "stored": {
            "raw_records": raw["records"],
            "raw_seconds": raw["audio_seconds"],
            "speech_seconds": raw["speech_seconds"],
            "raw_ciphertext_bytes": raw["ciphertext_bytes"],
            "metadata_records": meta["records"],
            "metadata_linked": linked,
            "metadata_ciphertext_bytes": meta["ciphertext_bytes"],
            "kept_indefinitely": raw["kept_indefinitely"] + meta["kept_indefinitely"],
        },
        "readable": horizons,
        "decisions": {
            k: stats[k]
            for k in (
                "decisions",
                "adaptive_flow",
                "artist_overrides",
                "artist_override_rate",
                "latency_ms_p50",
                "latency_ms_p99",
            )
        },
        "scorers": scorers,
        "findings": {
            "counts": checks["counts"],
            "errors": _rules(checks, "error"),
            "warnings": _rules(checks, "warning"),
        },
    }


def _rules(checks: dict[str, Any], severity: str) -> list[str]:
    return sorted({x["rule_id"] for x in checks["findings"] if x["severity"] == severity})


def _row(label: str, profiles: list[dict[str, Any]], cell: Any) -> list[str]:
    return [label] + [cell(p) for p in profiles]


def _bars(profiles: list[dict[str, Any]], title: str, value: Any, fmt: Any) -> Chart:
    rows = [(p["profile"], float(value(p))) for p in profiles]
    svg = hbar_chart(rows, title=title, value_label=fmt, colors=PALETTE[: len(rows)])
    return Chart(svg, title, Table(["Profile", "Value"], [[n, fmt(v)] for n, v in rows]))


@report_kind(
    "compare",
    title="Platform comparison, measured",
    description="The same event under each profile: data stored, retention, findings, "
    "artist control, latency",
    order=60,
)
def build(ctx: ReportContext) -> Report:
    if not ctx.peers:
        raise InputError(
            "the compare report needs the event run under each profile; use "
            "`flowaudit report compare`, which runs them"
        )
    profiles = [_profile(name, peer) for name, peer in ctx.peers.items()]
    names = [p["profile"] for p in profiles]
    with ctx.session() as s:
        event = event_facts(s, ctx.event_id, ctx.policy)

    def horizon(label: str, category: str) -> Any:
        return lambda p: f.n(next(h[category] for h in p["readable"] if h["label"] == label))

    table = Section("table", "The article's comparison table, measured", "")
    table.add(
        Para(
            "Each column is the same event and the same synthetic crowd (same seed) run through "
            "the real pipeline under one policy profile, into its own store. Every cell below "
            "is read back from that store and its audit log."
        ),
        Table(
            ["Feature", *names],
            [
                _row("Claim (policy description)", profiles, lambda p: p["policy"]["claim"]),
                _row(
                    "Real-time sentiment analysis",
                    profiles,
                    lambda p: (
                        f"scorer {', '.join(p['scorers']) or '-'}; third-party scorers "
                        f"{'open' if p['policy']['third_party_scorers'] else 'closed'}"
                    ),
                ),
                _row(
                    "Latency: decision processing p50 / p99",
                    profiles,
                    lambda p: (
                        f"{f.num(p['decisions']['latency_ms_p50'], 3)} / "
                        f"{f.num(p['decisions']['latency_ms_p99'], 3)} ms"
                    ),
                ),
                _row(
                    "Artist control",
                    profiles,
                    lambda p: (
                        f"{p['policy']['artist_control']}: "
                        f"{f.n(p['decisions']['artist_overrides'])} of "
                        f"{f.n(p['decisions']['decisions'])} decisions overridden"
                    ),
                ),
                _row(
                    "Data retention (policy): raw / metadata",
                    profiles,
                    lambda p: f"{p['policy']['raw_audio']} / {p['policy']['metadata']}",
                ),
                _row(
                    "Raw audio stored (measured)",
                    profiles,
                    lambda p: (
                        f"{f.n(p['stored']['raw_records'])} segments, "
                        f"{f.seconds(p['stored']['raw_seconds'])}"
                    ),
                ),
                _row(
                    "of which speech",
                    profiles,
                    lambda p: f.seconds(p["stored"]["speech_seconds"]),
                ),
                _row(
                    "Metadata stored / linked to a wristband",
                    profiles,
                    lambda p: (
                        f"{f.n(p['stored']['metadata_records'])} / "
                        f"{f.n(p['stored']['metadata_linked'])}"
                    ),
                ),
                _row(
                    "Records without an erasure date",
                    profiles,
                    lambda p: f.n(p["stored"]["kept_indefinitely"]),
                ),
                _row(
                    "Findings: errors / warnings / notes",
                    profiles,
                    lambda p: " / ".join(
                        f.n(p["findings"]["counts"][k]) for k in ("error", "warning", "info")
                    ),
                ),
                _row(
                    "Error rules",
                    profiles,
                    lambda p: ", ".join(p["findings"]["errors"]) or "none",
                ),
            ],
        ),
    )
    retention = Section(
        "retention",
        "Still readable after the event (raw audio / metadata records)",
        "GDPR Art 5(1)(e)",
    )
    retention.add(
        Table(
            ["After the event", *names],
            [
                [label]
                + [
                    f"{horizon(label, 'raw_audio')(p)} / {horizon(label, 'metadata')(p)}"
                    for p in profiles
                ]
                for label, _ in HORIZONS
            ],
        ),
        Para(
            "A record counts as readable at a time if its bucket key still exists and its "
            "retention has not ended: the store refuses every other read, purge or no purge."
        ),
        _bars(
            profiles,
            "Records (raw + metadata) still readable 30 days after the event",
            lambda p: next(
                h["raw_audio"] + h["metadata"] for h in p["readable"] if h["label"] == "+30 days"
            ),
            lambda v: f.n(int(v)),
        ),
    )
    minim = Section("data", "Data captured and stored", "GDPR Art 5(1)(c), Art 25")
    minim.add(
        Table(
            ["Measure", *names],
            [
                _row(
                    "Audio captured",
                    profiles,
                    lambda p: f.seconds(p["minimisation"]["captured_seconds"]),
                ),
                _row(
                    "Audio analysed for sentiment",
                    profiles,
                    lambda p: f.seconds(p["minimisation"]["scored_seconds"]),
                ),
                _row(
                    "Speech withheld from storage",
                    profiles,
                    lambda p: f.seconds(p["minimisation"]["speech_dropped_seconds"]),
                ),
                _row("Raw audio stored", profiles, lambda p: f.seconds(p["stored"]["raw_seconds"])),
                _row(
                    "Raw ciphertext",
                    profiles,
                    lambda p: f.size(p["stored"]["raw_ciphertext_bytes"]),
                ),
                _row(
                    "Metadata ciphertext",
                    profiles,
                    lambda p: f.size(p["stored"]["metadata_ciphertext_bytes"]),
                ),
            ],
        ),
        _bars(
            profiles,
            "Raw audio stored (seconds of wristband audio)",
            lambda p: p["stored"]["raw_seconds"],
            lambda v: f.seconds(v),
        ),
    )
    verdict = Section("verdict", "Findings per profile", "")
    verdict.add(
        _bars(
            profiles,
            "Error-level compliance findings",
            lambda p: p["findings"]["counts"]["error"],
            lambda v: f.n(int(v)),
        )
    )
    for p in profiles:
        errors = p["findings"]["counts"]["error"]
        verdict.add(
            Status(
                FAIL if errors else WARN if p["findings"]["counts"]["warning"] else PASS,
                f"{p['profile']}: {f.n(errors)} errors"
                + (f" ({', '.join(p['findings']['errors'])})" if errors else "")
                + f", {f.n(p['findings']['counts']['warning'])} warnings"
                + (
                    f" ({', '.join(p['findings']['warnings'])})"
                    if p["findings"]["warnings"]
                    else ""
                )
                + ".",
            )
        )
    verdict.add(
        Facts(
            [
                (
                    "Latency note",
                    "The article's latencies are end to end (network, cloud inference); the "
                    "figures here are the selector's processing time per decision.",
                ),
            ]
        )
    )
    data = {
        "event": {k: event[k] for k in ("id", "name", "venue", "starts_at", "ends_at")},
        "horizons": [label for label, _ in HORIZONS],
        "profiles": profiles,
    }
    return finish(
        ctx,
        kind="compare",
        title="Platform comparison, measured",
        subtitle=f"{event['name']} run under {len(profiles)} profiles: the article's table "
        "with numbers from the store",
        data=data,
        sections=[table, retention, minim, verdict],
        event_label=f"{event['name']} ({ctx.event_id}), one store per profile",
    )
