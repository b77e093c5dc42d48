"""The export gate: metadata leaves flowaudit only when it meets the policy's re-ID thresholds.

``gate`` measures a table; if it misses a threshold it refuses with
:class:`GateRefusedError` (exit 2) naming the figures and the thresholds missed — unless asked
to *generalise*, in which case it searches the policy's hierarchy lattice for the least
recoding that meets them, suppressing at most ``reid.max_suppression`` of the records
(:mod:`retention.anonymity.lattice`, the search the anonymiser uses too), and reports the
information loss. ``export_metadata`` does the whole job on the store: read, gate, write the
file atomically, and record the export (or the refusal) in the audit log with its figures —
never with the rows themselves.

Exported rows carry the quasi-identifiers and the sensitive attributes only (no pseudonym) and
are sorted, so row order reveals nothing about when or where a record was written.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from audit.reid.risk import RiskReport, Thresholds, assess
from audit.reid.source import metadata_frame
from retention.anonymity import (
    Generalisation,
    Hierarchy,
    SearchResult,
    check_columns,
    find_generalisation,
    hierarchies_from_policy,
)
from retention.errors import GateRefusedError, InputError
from retention.ground.actions import Action

__all__ = [
    "FORMATS",
    "ExportResult",
    "gate",
    "gate_policy",
    "refusal_message",
    "encode_export",
    "write_export",
    "export_metadata",
]

FORMATS = ("csv", "json")


@dataclass(frozen=True)
class ExportResult:
    """What passed the gate: the rows to write, their figures and the recoding applied."""

    frame: pd.DataFrame
    report: RiskReport
    source_records: int
    generalisation: Generalisation | None = None
    search: SearchResult | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": len(self.frame),
            "source_records": self.source_records,
            "figures": self.report.as_dict(),
            "generalisation": None
            if self.generalisation is None
            else self.generalisation.as_dict(),
            "search": None if self.search is None else self.search.as_dict(),
        }


def refusal_message(report: RiskReport, thresholds: Thresholds) -> str:
    """``k = 2 < k_min 10; ...`` with the headline figures."""
    missed = "; ".join(str(m) for m in report.missed(thresholds))
    return (
        f"export refused: {missed} ({report.records} records in {report.classes} classes, "
        f"{report.sample_uniques} unique, {report.records_at_risk_share:.0%} in classes "
        f"smaller than k_min)"
    )


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame.reset_index(drop=True)
    return frame.sort_values(
        list(frame.columns), key=lambda s: s.astype(str), kind="stable", na_position="last"
    ).reset_index(drop=True)


def gate(
    frame: pd.DataFrame,
    *,
    quasi_identifiers: Sequence[str],
    sensitive: Sequence[str],
    thresholds: Thresholds,
    hierarchies: Mapping[str, Hierarchy] | None = None,
    generalise: bool = False,
) -> ExportResult:
    """Pass, generalise, or refuse (:class:`GateRefusedError`)."""
    qis, sas = check_columns(frame, quasi_identifiers, sensitive)
    data = frame[[*qis, *sas]]
    if data.empty:
        raise InputError("nothing to export: the table has no records")
    report = assess(data, qis, sas, thresholds=thresholds)
    if report.meets():
        return ExportResult(_sorted(data), report, len(data))
    if not generalise:
        raise GateRefusedError(
            refusal_message(report, thresholds)
            + "; rerun with --generalise to recode it along the policy's hierarchies"
        )
    result, out = find_generalisation(data, qis, sas, hierarchies or {}, thresholds)
    if result.best is None or out is None:
        top = result.top
        at_top = "" if top is None else f"; fully generalised it still has {top.summary()}"
        raise GateRefusedError(
            f"export refused: no recoding within the policy's hierarchies meets "
            f"{', '.join(str(m) for m in report.missed(thresholds))} with at most "
            f"{thresholds.max_suppression:.0%} of records suppressed ({result.nodes_evaluated} "
            f"of {result.nodes_total} generalisations tried){at_top}; collect more records, "
            "add coarser levels to reid.hierarchies or drop a quasi-identifier"
        )
    final = assess(out, qis, sas, thresholds=thresholds)
    if not final.meets():  # the search measured exactly this table; a mismatch is a bug
        raise GateRefusedError(refusal_message(final, thresholds) + " (after generalisation)")
    return ExportResult(_sorted(out), final, len(data), result.best, result)


def gate_policy(
    frame: pd.DataFrame, policy: Any, *, generalise: bool = False, **overrides: Any
) -> ExportResult:
    """:func:`gate` with the policy's attributes, thresholds and hierarchies."""
    sensitive = [c for c in policy.reid.sensitive if c in frame.columns]
    return gate(
        frame,
        quasi_identifiers=list(policy.reid.quasi_identifiers),
        sensitive=sensitive,
        thresholds=Thresholds.from_policy(policy, **overrides),
        hierarchies=hierarchies_from_policy(policy),
        generalise=generalise,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return None
    return str(value)


def encode_export(
    result: ExportResult, fmt: str, *, header: Mapping[str, Any] | None = None
) -> bytes:
    """The file contents: CSV rows, or JSON with the figures, the recoding and the rows."""
    if fmt not in FORMATS:
        raise InputError(f"export format {fmt!r}; use one of: {', '.join(FORMATS)}")
    if fmt == "csv":
        return result.frame.to_csv(index=False, lineterminator="\n").encode()
    records = [
        {k: _plain(v) for k, v in row.items()} for row in result.frame.to_dict(orient="records")
    ]
    document = {**(header or {}), **result.as_dict(), "rows": records}
    return (json.dumps(document, indent=2, sort_keys=True, default=_plain) + "\n").encode()


def _stage(out: Path, data: bytes) -> Path:
    """Write ``data`` to a synced temp file next to ``out``; the caller renames it."""
    if not out.parent.is_dir():
        raise InputError(f"cannot write '{out}': directory '{out.parent}' does not exist")
    if out.is_dir():
        raise InputError(f"cannot write '{out}': it is a directory; give a file name")
    try:
        handle = tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", delete=False)
    except OSError as exc:
        raise InputError(f"cannot write '{out}': {exc.strerror}") from exc
    try:
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        Path(handle.name).unlink(missing_ok=True)
        raise InputError(f"cannot write '{out}': {exc.strerror}") from exc
    return Path(handle.name)


def write_export(
    result: ExportResult, out: Path, fmt: str, *, header: Mapping[str, Any] | None = None
) -> str:
    """Write atomically (temp file, fsync, rename); returns the file's SHA-256."""
    data = encode_export(result, fmt, header=header)
    os.replace(_stage(Path(out), data), out)
    return hashlib.sha256(data).hexdigest()


def _figures(report: RiskReport) -> dict[str, Any]:
    return {
        "records": report.records,
        "classes": report.classes,
        "k": report.k,
        "distinct_l": report.distinct_l,
        "t_closeness": report.t_closeness,
        "prosecutor_risk": report.prosecutor_risk,
    }


def export_metadata(
    store: Any,
    policy: Any,
    out: Path,
    *,
    now: datetime,
    generalise: bool = False,
    fmt: str = "csv",
    event_id: str | None = None,
    actor: str = "export",
) -> ExportResult:
    """Read the metadata table, gate it, write it; the audit log records either outcome."""
    if fmt not in FORMATS:
        raise InputError(f"export format {fmt!r}; use one of: {', '.join(FORMATS)}")
    frame = metadata_frame(store, now=now, event_id=event_id)
    thresholds = Thresholds.from_policy(policy)
    base = {"policy": policy.name, "policy_sha256": policy.sha256, "event": event_id}
    try:
        result = gate_policy(frame, policy, generalise=generalise)
    except GateRefusedError as refusal:
        report = assess(
            frame,
            list(policy.reid.quasi_identifiers),
            [c for c in policy.reid.sensitive if c in frame.columns],
            thresholds=thresholds,
        )
        with store.transaction(now, actor=actor) as tx:
            tx.audit(
                Action.EXPORT_REFUSED,
                "export",
                Path(out).name,
                {
                    **base,
                    **_figures(report),
                    "generalise": generalise,
                    "missed": [m.threshold for m in report.missed()],
                },
            )
        raise refusal
    header = {"export": "metadata", "generated_at": now.isoformat(), **base}
    data = encode_export(result, fmt, header=header)
    digest = hashlib.sha256(data).hexdigest()
    staged = _stage(Path(out), data)
    details = {
        **base,
        **_figures(result.report),
        "format": fmt,
        "sha256": digest,
        "suppressed": 0 if result.generalisation is None else result.generalisation.suppressed,
        "levels": None if result.generalisation is None else dict(result.generalisation.levels),
    }
    try:  # the entry and the file land together: rename only once the entry is committed
        with store.transaction(now, actor=actor) as tx:
            tx.audit(Action.EXPORT_METADATA, "export", Path(out).name, details)
        os.replace(staged, out)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return result
