"""Pieces several report kinds share: the report envelope and sections built from shared facts.

Sections state verdicts only through :func:`audit.reports._verdicts.verdicts` (the check
registry's findings); :func:`finish` gathers them into the JSON ``data.verdicts``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from typing import Any

from sqlalchemy import select

from audit.log.chain import iso_utc
from audit.log.checkpoints import checkpoint_note, load_signer, verify_tree_signature
from audit.reports import _fmt as f
from audit.reports._context import ReportContext
from audit.reports._model import FAIL, PASS, WARN, Para, Report, Section, Status, Table, Verdict
from audit.reports._verdicts import verdicts
from retention.errors import FlowauditError
from retention.models import AuditCheckpoint, AuditEntry

__all__ = [
    "finish",
    "security_measures",
    "security_section",
    "retention_table",
    "receipts_table",
    "findings_section",
    "chain_facts",
    "LAWFUL_BASIS_REF",
]

LAWFUL_BASIS_REF = {
    "consent": "GDPR Art 6(1)(a) consent",
    "contract": "GDPR Art 6(1)(b) performance of a contract",
    "legal_obligation": "GDPR Art 6(1)(c) legal obligation",
    "vital_interests": "GDPR Art 6(1)(d) vital interests",
    "public_task": "GDPR Art 6(1)(e) public task",
    "legitimate_interests": "GDPR Art 6(1)(f) legitimate interests",
}


def _version() -> str:
    try:
        return importlib.metadata.version("flowaudit")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def content_hash(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def finish(
    ctx: ReportContext,
    *,
    kind: str,
    title: str,
    subtitle: str,
    data: dict[str, Any],
    sections: list[Section],
    event_label: str | None = None,
) -> Report:
    """Wrap facts and sections with the meta every report carries (dates, policy, log head).

    Every :class:`Verdict` block of the sections is added to ``data["verdicts"]``.
    """
    data = {
        **data,
        "verdicts": [b.as_dict(s.id) for s in sections for b in s.blocks if isinstance(b, Verdict)],
    }
    with ctx.session() as session:
        head = session.execute(
            select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
        ).first()
        checkpoint = _checkpoint(ctx, session)
    digest = content_hash(data)
    meta: dict[str, Any] = {
        "generated_at": f.iso(ctx.now),
        "as_of": ctx.as_of.isoformat(),
        "event_id": ctx.event_id,
        "policy": {"name": ctx.policy.name, "sha256": ctx.policy.sha256},
        "audit_head": {"seq": head[0] if head else 0, "hash": head[1] if head else None},
        "checkpoint": checkpoint,
        "content_sha256": digest,
        "flowaudit_version": _version(),
    }
    header = [
        ("Describes the store at", f.when(ctx.now)),
        ("Law evaluated at", ctx.as_of.isoformat()),
        ("Event", event_label or ctx.event_id),
        ("Policy", f"{ctx.policy.name} (sha256 {ctx.policy.sha256[:16]}…)"),
        (
            "Audit log head",
            f"entry {meta['audit_head']['seq']}"
            + (f", hash {head[1][:16]}…" if head else " (empty log)"),
        ),
        ("Signed checkpoint", _checkpoint_line(checkpoint)),
        ("Content SHA-256", digest),
        ("Generator", f"flowaudit {meta['flowaudit_version']}"),
    ]
    return Report(kind, title, subtitle, meta, data, sections, header)


def _checkpoint(ctx: ReportContext, session: Any) -> dict[str, Any] | None:
    """The latest signed Merkle checkpoint the report was built on: what an auditor checks
    its receipts and proofs against (`flowaudit audit verify --proof`)."""
    row = session.scalars(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.root_hash.is_not(None))
        .order_by(AuditCheckpoint.seq.desc(), AuditCheckpoint.id.desc())
    ).first()
    if row is None:
        return None
    try:
        signer = load_signer(ctx.runtime.settings.signing_key_file)
    except FlowauditError:  # an unreadable key: the checkpoint is named, not checked
        signer = None
    note, valid = None, None
    if signer is not None and signer.key_id == row.key_id:
        note = checkpoint_note(row, signer.public_key)
        valid = verify_tree_signature(
            signer.public_key,
            int(row.tree_size or 0),
            bytes.fromhex(row.root_hash or ""),
            iso_utc(row.at),
            bytes(row.signature),
        )
    return {
        "tree_size": int(row.tree_size or 0),
        "root_hash": row.root_hash,
        "at": iso_utc(row.at),
        "key_id": row.key_id,
        "signature_valid": valid,
        "note": note,
    }


def _checkpoint_line(checkpoint: dict[str, Any] | None) -> str:
    if checkpoint is None:
        return "none yet (sign one with `flowaudit audit checkpoint`)"
    state = {True: "signature valid", False: "SIGNATURE INVALID", None: "signature not checked"}
    return (
        f"tree size {f.n(checkpoint['tree_size'])}, Merkle root {checkpoint['root_hash']}, "
        f"key {checkpoint['key_id']}, signed {checkpoint['at']} "
        f"({state[checkpoint['signature_valid']]})"
    )


def chain_facts(chain: dict[str, Any]) -> str:
    checkpoint = (
        f"{f.n(chain['checkpoints'])} signed checkpoints, the last at entry "
        f"{f.n(chain['last_checkpoint_seq'])}"
        if chain["checkpoints"]
        else "no signed checkpoint yet"
    )
    return f"{f.n(chain['entries'])} entries, head at entry {f.n(chain['last_seq'])}; {checkpoint}"


def _verified(verification: dict[str, Any]) -> str:
    if verification["ok"]:
        signed = (
            f", {f.n(verification['checkpoints_verified'])} checkpoint signatures valid"
            if verification["signatures_checked"]
            else ", signatures not checked (no signing key)"
        )
        return f"recomputed at report time: intact{signed}"
    return (
        f"recomputed at report time: BROKEN, first bad entry {f.n(verification['first_bad_seq'])}"
        f" ({f.n(verification['problems'])} problems)"
    )


#: how each key provider keeps the data keys, and what wraps them (``key_store.kind``)
_KEY_STORES = {
    "FileKeyStore": "encrypted under the master key (KEK) kept on this machine",
    "TransitKeyStore": "each key wrapped by an OpenBao/Vault Transit key that never leaves "
    "the server; no master key on this machine",
    "SharedKeyStore": "each key held in OpenBao/Vault KV v2, wrapped by a Transit key that "
    "never leaves the server; no key file or master key on this machine",
}


def _key_store_text(keys: dict[str, Any]) -> str:
    """The key store row's "configured" text, true to the provider the home uses."""
    how = _KEY_STORES.get(keys["kind"], f"provider {keys['kind']}")
    where = f"{keys['kind']} file, mode {keys['file_mode'] or '-'}, " if keys["file_mode"] else ""
    return f"{where}{how}; the database holds no key material"


def _wrapping_key_measure(kind: str, master: dict[str, Any]) -> dict[str, str]:
    """The row for the key that wraps the data keys: the local master key, or Transit's."""
    if kind == "FileKeyStore":
        return {
            "measure": "Master key",
            "configured": f"from the {master['source']}",
            "evidence": f"key file mode {master['file_mode'] or '-'}",
        }
    return {
        "measure": "Wrapping key",
        "configured": "the OpenBao/Vault Transit key; wrapping and unwrapping happen on the "
        "server, with a token read from the environment only",
        "evidence": f"local master key file: {'present' if master['file_mode'] else 'none'}",
    }


def security_measures(
    security: dict[str, Any],
    chain: dict[str, Any],
    receipts: list[dict[str, Any]],
    verification: dict[str, Any],
) -> list[dict[str, str]]:
    """Art 32 measures: what is configured, and the evidence read from the running system."""
    seal = security["sealing"]
    keys = security["key_store"]
    pseud = security["pseudonyms"]
    database = security["database"]
    signing = security["signing_key"]
    real = [r for r in receipts if not r["dry_run"]]
    bits = ", ".join(str(b) for b in seal["nonce_bits_measured"]) or "-"
    tags = ", ".join(str(b) for b in seal["tag_bits_measured"]) or "-"
    commits = ", ".join(str(b) for b in seal["commitment_bits_measured"]) or "-"
    measures = [
        {
            "measure": "Encryption at rest (Art 32(1)(a))",
            "configured": f"{seal['cipher']}, {seal['key_bits']}-bit keys, random nonce per "
            "record, associated data binds each record to its row, key commitment checked "
            "before decryption",
            "evidence": f"{f.n(seal['records_checked'])} stored records inspected: nonce {bits} "
            f"bits, tag {tags} bits, key commitment {commits} bits",
        },
        {
            "measure": "Per-record keys",
            "configured": seal["record_key_derivation"],
            "evidence": f"{f.n(seal['records_with_foreign_key_id'])} raw records sealed under a "
            "key id other than their retention bucket",
        },
        {
            "measure": "Key store outside the database",
            "configured": _key_store_text(keys),
            "evidence": f"outside the database: {f.yes_no(keys['outside_database'])}; "
            f"{f.n(keys['live_bucket_keys'])} live bucket keys; key columns in the schema: "
            + ", ".join(keys["key_columns_in_schema"])
            + " (identifiers only)",
        },
        _wrapping_key_measure(keys["kind"], security["master_key"]),
        {
            "measure": "Retention by key destruction (crypto-shredding)",
            "configured": "one key per event, data category and hour; the purge destroys the "
            "key, then deletes the ciphertext; reads past expiry are refused even before",
            "evidence": f"{f.n(len(real))} purge receipts in the audit log, "
            f"{f.n(sum(r['buckets_shredded'] for r in real))} buckets shredded in total",
        },
        {
            "measure": "Pseudonymisation (Art 4(5), Art 32(1)(a))",
            "configured": pseud["method"],
            "evidence": f"{f.n(pseud['pseudonyms_hmac_sha256_shaped'])} of "
            f"{f.n(pseud['subjects'])} subjects keyed by a 256-bit pseudonym; serial column in "
            f"the schema: {f.yes_no(pseud['serial_column_in_schema'])}",
        },
        {
            "measure": "Tamper-evident audit log (Art 5(2), Art 32(1)(b))",
            "configured": "SHA-256 hash chain over every write, purge and decision; "
            f"{signing['algorithm']} signed checkpoints with a key separate from the master key",
            "evidence": chain_facts(chain) + f"; {_verified(verification)}; signing key id "
            f"{signing.get('public_key_id') or '-'}, file mode {signing['file_mode'] or '-'}",
        },
    ]
    if database["dialect"] == "sqlite":
        measures.append(
            {
                "measure": "Deleted data overwritten in the database file",
                "configured": "SQLite secure_delete, WAL checkpoint (TRUNCATE) after each purge",
                "evidence": f"PRAGMA secure_delete = {'on' if database['secure_delete'] else 'off'}"
                f", journal_mode = {database['journal_mode']}, foreign_keys = "
                f"{'on' if database['foreign_keys'] else 'off'} (read from a live connection)",
            }
        )
    else:
        measures.append(
            {
                "measure": "Database connection",
                "configured": f"{database['dialect']} {database.get('server_version', '')}".strip(),
                "evidence": "TLS on the current connection: "
                + f.yes_no(database.get("ssl_in_transit")),
            }
        )
    return measures


def security_section(
    ctx: ReportContext,
    section_id: str,
    title: str,
    legal_ref: str,
    measures: list[dict[str, str]],
) -> Section:
    section = Section(section_id, title, legal_ref)
    section.add(
        Para(
            "Each measure is stated as the running system has it: the evidence column is read "
            "from the database, the stored records and the key files when this report was made."
        ),
        Table(
            ["Measure", "As configured", "Evidence (measured)"],
            [[m["measure"], m["configured"], m["evidence"]] for m in measures],
        ),
        *verdicts(
            ctx, "sqlite-secure-delete-off", "key-store-in-database", "audit-log-verification"
        ),
    )
    return section


def retention_table(categories: list[dict[str, Any]]) -> Table:
    return Table(
        [
            "Category",
            "Retention (policy)",
            "Records stored",
            "Readable now",
            "Expired, awaiting purge",
            "Kept indefinitely",
            "Ciphertext",
            "Oldest record (UTC)",
            "Buckets active / shredded / deleted",
        ],
        [
            [
                c["category"],
                c["retention"],
                f.n(c["records"]),
                f.n(c["readable_now"]),
                f.n(c["expired_awaiting_purge"]),
                f.n(c["kept_indefinitely"]),
                f.size(c["ciphertext_bytes"]),
                f.short(c["oldest_record_at"]),
                " / ".join(f.n(c["buckets"][s]) for s in ("ACTIVE", "SHREDDED", "DELETED")),
            ]
            for c in categories
        ],
    )


def receipts_table(receipts: list[dict[str, Any]]) -> Table:
    return Table(
        [
            "Audit entry",
            "Time",
            "Purge run",
            "Dry run",
            "Buckets shredded (this event / all)",
            "Buckets deleted (this event / all)",
            "Rows deleted",
            "Bytes freed",
        ],
        [
            [
                f.n(r["seq"]),
                f.when(r["at"]),
                str(r["run_id"] if r["run_id"] is not None else "-"),
                f.yes_no(r["dry_run"]),
                f"{f.n(r['event_buckets_shredded'])} / {f.n(r['buckets_shredded'])}",
                f"{f.n(r['event_buckets_deleted'])} / {f.n(r['buckets_deleted'])}",
                f.n(r["rows_deleted"]),
                f.size(r["bytes_freed"]),
            ]
            for r in receipts
        ],
        caption="Purge receipts (audit action purge.receipt)",
        empty="No purge receipt in the audit log yet.",
    )


def findings_section(section_id: str, findings: dict[str, Any], legal_ref: str = "") -> Section:
    counts = findings["counts"]
    section = Section(section_id, "Compliance check findings", legal_ref)
    level = FAIL if counts["error"] else WARN if counts["warning"] else PASS
    section.add(
        Status(
            level,
            f"{f.n(counts['error'])} errors, {f.n(counts['warning'])} warnings, "
            f"{f.n(counts['info'])} notes from `flowaudit audit check` on this event.",
        ),
        Table(
            ["Severity", "Rule", "Legal reference", "Finding"],
            [
                [x["severity"], x["rule_id"], x["legal_ref"], x["message"]]
                for x in findings["findings"]
            ],
            empty="No finding: every check held.",
        ),
    )
    return section
