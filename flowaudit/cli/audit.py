"""`flowaudit audit verify|prove|checkpoint|public-key|anchor|log|check|rules`: the
tamper-evident Merkle log, its proofs, and the compliance checks built on it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from audit.checks import SEVERITIES, CheckContext, rules, run_checks
from audit.log.chain import iter_entries, last_checkpoint, rebuild_stored_tree
from audit.log.checkpoints import (
    Anchor,
    load_anchor,
    load_public_key,
    load_signer,
    make_anchor,
    note_verifier_key,
    write_anchor,
    write_checkpoint,
)
from audit.log.proofs import (
    ProofError,
    Verified,
    consistency_bundle,
    inclusion_bundle,
    load_bundle,
    load_verifier,
    receipt_bundle,
    tree_checkpoints,
    verifier_summary,
    verify_bundle,
    write_bundle,
)
from audit.log.signing import public_key_id
from audit.log.verify import VerifyReport, verify_log
from retention import db as dbmod
from retention.errors import ConfigError, InputError, IntegrityError
from retention.ground.times import parse_date_option, parse_time

from ..reporting import audit_scope
from ._common import (
    DbOption,
    FormatOption,
    HomeOption,
    NowOption,
    check_format,
    print_json,
    runtime_from,
    settings_from,
)

audit_app = typer.Typer(
    help="The tamper-evident audit log and the compliance checks built on it.",
    no_args_is_help=True,
)

AnchorOption = Annotated[
    Path | None,
    typer.Option(
        "--anchor",
        help="An anchor file from `flowaudit audit anchor`; detects a truncated or rewritten log.",
        dir_okay=False,
    ),
]


def _trusted_key(
    public_key_file: Path | None, signing_key_file: Path, anchor: Anchor | None
) -> Ed25519PublicKey:
    """--public-key, else the home's signing key, else the anchor's own key."""
    if public_key_file is not None:
        return load_public_key(public_key_file)
    signer = load_signer(signing_key_file)
    if signer is not None:
        return signer.public_key
    if anchor is not None:
        return anchor.public_key
    raise ConfigError(
        f"no key to check signatures with: '{signing_key_file}' does not exist; "
        "pass --public-key FILE or --anchor FILE"
    )


SignUnsignedTailOption = Annotated[
    bool,
    typer.Option(
        "--allow-unsigned-tail",
        help="Sign entries after the last signed checkpoint too (review them first).",
    ),
]
AllowUnsignedTailOption = Annotated[
    bool,
    typer.Option(
        "--allow-unsigned-tail",
        help="Accept entries after the last signed checkpoint (nothing proves who wrote them; "
        "a forged append looks the same). Without it they fail verification.",
    ),
]


def _print_verify(report: VerifyReport, anchor_given: bool) -> None:
    head = report.head_hash[:16]
    typer.echo(
        f"entries: {report.entries}  head: seq {report.head_seq} ({head}…)  "
        f"checkpoints: {report.checkpoints_verified}/{report.checkpoints} verified "
        f"(key {report.key_id})"
    )
    typer.echo(
        f"merkle root: {report.tree_root}  ({report.tree_checkpoints} tree checkpoint(s) "
        "matched the recomputed root)"
    )
    if report.anchor_seq is not None:
        typer.echo(f"anchor: seq {report.anchor_seq}")
    for problem in sorted(report.problems, key=lambda p: p.seq):
        typer.echo(f"  seq {problem.seq}: [{problem.kind}] {problem.message}")
    if report.problems_total > len(report.problems):
        typer.echo(f"  … and {report.problems_total - len(report.problems)} more problem(s)")
    if report.ok:
        typer.echo("audit log verified: every hash, link and signature checks out")
        if report.unsigned_tail:
            typer.echo(
                f"note: {report.unsigned_tail} entries after the last signed checkpoint "
                f"(seq {report.last_signed_seq}) were accepted unsigned (--allow-unsigned-tail): "
                "the chain links them, nothing proves who wrote them"
            )
        if not anchor_given:
            typer.echo(
                "note: without --anchor, a cut-off tail is detected only against the "
                "checkpoints stored in the database"
            )


def _print_verified(result: Verified, verifier_text: str) -> None:
    if result.kind == "inclusion":
        entry = result.entry or {}
        typer.echo(
            f"inclusion proof verified: entry {result.seq} ({entry.get('action')}, "
            f"{entry.get('object_type')}:{entry.get('object_id')}, at {entry.get('at')}) is "
            f"leaf {(result.seq or 0) - 1} of the log of size {result.tree_size}"
        )
    else:
        typer.echo(
            f"consistency proof verified: the log of size {result.tree_size} extends the "
            f"log of size {result.old_size} (nothing before was changed or removed)"
        )
    typer.echo(f"signed root: {result.root.hex()}  key: {verifier_text}")


def _verify_proof(proof: Path, key: str | None, fmt: str) -> None:
    """`audit verify --proof`: the bundle, the key, nothing else (no home, no database)."""
    if key is None:
        raise InputError(
            "--proof needs --key: the verifier key (`flowaudit audit public-key --note`) "
            "or a file holding it or the Ed25519 public key"
        )
    verifier = load_verifier(key)
    document = load_bundle(proof)
    try:
        result = verify_bundle(document, verifier)
    except ProofError as exc:
        raise IntegrityError(f"proof '{proof}' fails: {exc.part}: {exc}") from None
    if fmt == "json":
        data: dict[str, Any] = {
            "ok": True,
            "kind": result.kind,
            "tree_size": result.tree_size,
            "root": result.root.hex(),
            "key": verifier.key_string,
        }
        if result.kind == "inclusion":
            data.update(seq=result.seq, entry=result.entry)
        else:
            data.update(
                old_size=result.old_size,
                old_root=result.old_root.hex() if result.old_root is not None else None,
            )
        print_json(data)
    else:
        _print_verified(result, verifier_summary(verifier))


@audit_app.command("verify")
def verify(
    proof: Annotated[
        Path | None,
        typer.Option(
            "--proof",
            help="Check a proof bundle from `flowaudit audit prove` (or a purge/erasure "
            "receipt) offline: only --key, the bundle's signed checkpoint and its proof are "
            "used — no database, no home.",
            dir_okay=False,
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="With --proof: the verifier key '<name>+<hash>+<key>' printed by "
            "`flowaudit audit public-key --note`, or a file holding it or the PEM public key.",
        ),
    ] = None,
    anchor: AnchorOption = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="Ed25519 key that signed the checkpoints (PEM or base64); "
            "default: the home's signing.key.",
            dir_okay=False,
        ),
    ] = None,
    allow_unsigned_tail: AllowUnsignedTailOption = False,
    home: HomeOption = None,
    db: DbOption = None,
    format: FormatOption = "text",
) -> None:
    """Recompute the hash chain, the Merkle root, checkpoint signatures and anchor; exit 0
    only if all verify. With --proof FILE --key KEY: check one proof bundle offline instead.

    Names the first bad sequence number of an edited, deleted, inserted, reordered,
    truncated or unreadable entry, names a checkpoint whose signed Merkle root is not the
    root of the entries it covers, and fails on entries after the last signed checkpoint
    unless --allow-unsigned-tail. Needs no master key: only the database and a public key.
    """
    fmt = check_format(format)
    if proof is not None:
        _verify_proof(proof, key, fmt)
        return
    if key is not None:
        raise InputError("--key goes with --proof; to check the log use --public-key FILE")
    settings = settings_from(home, db)
    anchor_doc = load_anchor(anchor) if anchor is not None else None
    trusted = _trusted_key(public_key, settings.signing_key_file, anchor_doc)
    engine = dbmod.make_engine(settings.db_url)
    try:
        dbmod.check_schema(engine)
        report = verify_log(engine, trusted, anchor_doc, allow_unsigned_tail=allow_unsigned_tail)
    finally:
        engine.dispose()
    if fmt == "json":
        print_json(report.as_dict())
    else:
        _print_verify(report, anchor_doc is not None)
    first = report.first_problem
    if first is not None and first.kind == "unsigned" and report.problems_total == 1:
        raise IntegrityError(
            f"audit log fails verification: entries from seq {first.seq} on are not covered by "
            "a signed checkpoint; inspect them (`flowaudit audit log`), then sign them with "
            "`flowaudit audit anchor --allow-unsigned-tail` or accept them with "
            "--allow-unsigned-tail"
        )
    if first is not None:
        raise IntegrityError(
            f"audit log fails verification: first bad entry is seq {first.seq} "
            f"({first.kind}); {report.problems_total} problem(s)"
        )


@audit_app.command("anchor")
def anchor_cmd(
    out: Annotated[
        Path, typer.Option("--out", help="File to write the anchor to (JSON).", dir_okay=False)
    ],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    allow_unsigned_tail: SignUnsignedTailOption = False,
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Sign the current head and export it (seq, head hash, signature, public key) to a file.

    Keep the file away from the database: a later `audit verify --anchor FILE` detects any
    rewrite or truncation of the log up to this point. The log is verified first; entries
    after the last signed checkpoint are refused unless --allow-unsigned-tail, so an anchor
    never vouches for a forged append by accident.
    """
    if out.exists() and not force:
        raise InputError(f"'{out}' exists; choose another --out or pass --force")
    with runtime_from(home, db, now) as runtime:
        signer = load_signer(runtime.settings.signing_key_file)
        if signer is None:
            raise ConfigError(
                f"no signing key at '{runtime.settings.signing_key_file}'; "
                "the home was not created by `flowaudit init`"
            )
        report = verify_log(
            runtime.engine, signer.public_key, allow_unsigned_tail=allow_unsigned_tail
        )
        _refuse_unverified(report, "anchor", fix=" to sign them")
        with runtime.store.transaction(runtime.now, actor="audit") as tx:
            checkpoint = write_checkpoint(tx.session, signer, runtime.now)
            checkpoint = checkpoint or last_checkpoint(tx.session)
            if checkpoint is None:
                raise InputError("the audit log is empty; there is nothing to anchor yet")
            document = make_anchor(checkpoint, signer.public_key)
        write_anchor(out, document)
    typer.echo(
        f"anchor written to {out}: seq {document['seq']}, head {document['head_hash'][:16]}…, "
        f"key {document['key_id']}"
    )


def _home_public_key(signing_key_file: Path, public_key_file: Path | None) -> Ed25519PublicKey:
    if public_key_file is not None:
        return load_public_key(public_key_file)
    signer = load_signer(signing_key_file)
    if signer is None:
        raise ConfigError(
            f"no signing key at '{signing_key_file}'; pass --public-key FILE or use the home "
            "created by `flowaudit init`"
        )
    return signer.public_key


PublicKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        help="Ed25519 key that signed the checkpoints (PEM or base64); "
        "default: the home's signing.key.",
        dir_okay=False,
    ),
]


@audit_app.command("public-key")
def public_key_cmd(
    note: Annotated[
        bool,
        typer.Option(
            "--note",
            help="Print the C2SP signed-note verifier key '<name>+<hash>+<base64 key>' "
            "(what `audit verify --proof --key` and tlog clients take) instead of PEM.",
        ),
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write it to this file too.", dir_okay=False)
    ] = None,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Print the public half of the checkpoint signing key, to give to an auditor.

    It holds no secret. With it alone an auditor checks proof bundles and receipts
    (`flowaudit audit verify --proof FILE --key KEY`) and the whole log (`--public-key`).
    """
    from cryptography.hazmat.primitives import serialization

    settings = settings_from(home, db)
    key = _home_public_key(settings.signing_key_file, None)
    if note:
        text = note_verifier_key(key) + "\n"
    else:
        text = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")
    if out is not None:
        try:
            out.write_text(text, encoding="ascii")
        except OSError as exc:
            raise InputError(f"cannot write '{out}' ({exc.strerror})") from None
    typer.echo(text, nl=False)


@audit_app.command("checkpoint")
def checkpoint_cmd(
    allow_unsigned_tail: SignUnsignedTailOption = False,
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Sign a Merkle checkpoint over the current head (after verifying the whole log).

    Every command that appends signs its own entries; this is for a log migrated from the
    hash chain, whose entries have only chain-head checkpoints, or before `audit prove`.
    Entries after the last signed checkpoint are refused unless --allow-unsigned-tail.
    """
    with runtime_from(home, db, now) as runtime:
        signer = load_signer(runtime.settings.signing_key_file)
        if signer is None:
            raise ConfigError(f"no signing key at '{runtime.settings.signing_key_file}'")
        _refuse_unverified(
            verify_log(runtime.engine, signer.public_key, allow_unsigned_tail=allow_unsigned_tail),
            "sign",
        )
        with runtime.store.transaction(runtime.now, actor="audit") as tx:
            checkpoint = write_checkpoint(tx.session, signer, runtime.now)
            checkpoint = checkpoint or last_checkpoint(tx.session)
            if checkpoint is None:
                raise InputError("the audit log is empty; there is nothing to sign yet")
            size, root = checkpoint.tree_size, checkpoint.root_hash
    typer.echo(f"checkpoint signed: tree size {size}, root {root}")


@audit_app.command("rebuild-tree")
def rebuild_tree(
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Recompute the stored Merkle nodes from the entries (when `audit verify` says the
    stored tree differs). The nodes only serve proofs: nothing signed changes, and a tampered
    entry still fails `audit verify` against the signed roots afterwards."""
    with runtime_from(home, db, now) as runtime:
        with runtime.store.transaction(runtime.now, actor="audit") as tx:
            leaves = rebuild_stored_tree(tx.session)
    typer.echo(f"stored tree rebuilt over {leaves} entries")


ReceiptOption = Annotated[
    Path | None,
    typer.Option(
        "--receipt",
        help="Write the receipt's inclusion proof (JSON bundle against the checkpoint signed "
        "at the end of this command) to FILE; check it with `flowaudit audit verify --proof "
        "FILE --key KEY`, offline.",
        dir_okay=False,
    ),
]


def write_receipt_proof(
    home: Path | None, db: str | None, action: str, object_id: str, path: Path
) -> dict[str, Any]:
    """After a command signed its checkpoint: prove its receipt entry, write the bundle to
    ``path``, return a summary (entry, tree size, root, file) for the command's output."""
    settings = settings_from(home, db)
    key = _home_public_key(settings.signing_key_file, None)
    engine = dbmod.make_engine(settings.db_url)
    try:
        with dbmod.map_db_errors(), engine.connect() as conn:
            bundle = receipt_bundle(conn, str(action), object_id, key)
    finally:
        engine.dispose()
    write_bundle(path, bundle)
    proven = verify_bundle(bundle, load_verifier(note_verifier_key(key)))
    return {
        "file": str(path),
        "entry": proven.seq,
        "tree_size": proven.tree_size,
        "root": proven.root.hex(),
    }


def receipt_line(summary: dict[str, Any]) -> str:
    return (
        f"  receipt proof: entry {summary['entry']} in the signed log of size "
        f"{summary['tree_size']} (root {summary['root']}) -> {summary['file']}"
    )


def _refuse_unverified(report: VerifyReport, verb: str, *, fix: str = "") -> None:
    """One refusal for every command that must not vouch for a log that fails verification."""
    first = report.first_problem
    if first is not None and first.kind == "unsigned" and report.problems_total == 1:
        raise IntegrityError(
            f"refusing to {verb}: entries from seq {first.seq} on are not covered by a "
            "signed checkpoint; inspect them (`flowaudit audit log`), then rerun with "
            f"--allow-unsigned-tail{fix}"
        )
    if not report.ok:
        raise IntegrityError(
            f"refusing to {verb} a log that fails verification (first bad entry is seq "
            f"{report.first_bad_seq}); run `flowaudit audit verify`"
        )


@audit_app.command("prove")
def prove(
    entry: Annotated[
        int | None,
        typer.Option(
            "--entry", help="Inclusion proof of the entry with this seq number.", min=1
        ),
    ] = None,
    from_size: Annotated[
        int | None,
        typer.Option(
            "--from",
            help="Consistency proof from the signed checkpoint of this tree size to the "
            "latest one.",
            min=1,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the bundle here (default: stdout).", dir_okay=False),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out.")] = False,
    public_key: PublicKeyOption = None,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Write a self-contained proof bundle (JSON) against the latest signed checkpoint.

    --entry N: the entry's canonical bytes, its leaf index, the tree size, the RFC 9162 audit
    path and the signed C2SP checkpoint. --from SIZE: the checkpoint of that size, the latest
    one and the consistency proof between them (the log only grew). Either is checked with
    `flowaudit audit verify --proof FILE --key KEY` and nothing else. O(log n) reads.
    """
    if (entry is None) == (from_size is None):
        raise InputError("give exactly one of --entry N (inclusion) or --from SIZE (consistency)")
    if out is not None and out.exists() and not force:
        raise InputError(f"'{out}' exists; choose another --out or pass --force")
    settings = settings_from(home, db)
    key = _home_public_key(settings.signing_key_file, public_key)
    engine = dbmod.make_engine(settings.db_url)
    try:
        dbmod.check_schema(engine)
        with dbmod.map_db_errors(), engine.connect() as conn:
            signed = tree_checkpoints(conn, public_key_id(key))
            if not signed:
                raise InputError(
                    "no signed Merkle checkpoint yet; sign one with `flowaudit audit checkpoint`"
                )
            latest = signed[-1]
            if entry is not None:
                bundle = inclusion_bundle(conn, entry, latest, key)
            else:
                old = next((c for c in signed if c.tree_size == from_size), None)
                if old is None:
                    sizes = ", ".join(str(c.tree_size) for c in signed[-5:])
                    raise InputError(
                        f"no signed checkpoint of tree size {from_size}; the latest sizes "
                        f"signed are {sizes}"
                    )
                bundle = consistency_bundle(conn, old, latest, key)
    finally:
        engine.dispose()
    if out is None:
        print_json(bundle)
        return
    write_bundle(out, bundle)
    what = f"entry {entry}" if entry is not None else f"sizes {from_size}..{latest.tree_size}"
    typer.echo(
        f"proof of {what} against the checkpoint of size {latest.tree_size} written to {out}"
    )


def _entry_dict(entry: Any) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


@audit_app.command("log")
def log_cmd(
    since: Annotated[
        str | None, typer.Option("--since", help="Only entries at or after this ISO time.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Only entries before this ISO time.")
    ] = None,
    action: Annotated[
        str | None,
        typer.Option("--action", help="Only this action; end with * for a prefix (purge.*)."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", help="Show the latest N matching entries (0 = all).", min=0)
    ] = 100,
    home: HomeOption = None,
    db: DbOption = None,
    format: FormatOption = "text",
) -> None:
    """Show audit entries (pseudonyms, ids and counts only), oldest first."""
    fmt = check_format(format)
    start = parse_time(since, "--since") if since else None
    end = parse_time(until, "--until") if until else None
    settings = settings_from(home, db)
    engine = dbmod.make_engine(settings.db_url)
    try:
        dbmod.check_schema(engine)
        with dbmod.map_db_errors(), Session(engine) as session:
            entries = [
                _entry_dict(e)
                for e in iter_entries(
                    session,
                    since=start,
                    until=end,
                    action=action,
                    limit=limit or None,
                    newest_first=True,
                )
            ]
    finally:
        engine.dispose()
    entries.reverse()
    if fmt == "json":
        print_json(entries)
        return
    if not entries:
        typer.echo("no audit entries match")
        return
    table = Table("seq")
    for name in ("at", "actor", "action", "object", "details"):
        table.add_column(name, overflow="fold")
    for e in entries:
        details = json.dumps(e["details"], sort_keys=True, separators=(",", ":"))
        if len(details) > 90:
            details = details[:89] + "…"
        obj = f"{e['object_type']}:{e['object_id']}"
        table.add_row(str(e["seq"]), e["at"], e["actor"], e["action"], obj, details)
    Console().print(table)


@audit_app.command("check")
def check(
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Date the legal rules are evaluated at (YYYY-MM-DD); default: the policy's "
            "classification.as_of, else today.",
        ),
    ] = None,
    event: Annotated[
        str | None, typer.Option("--event", help="Check one event only (its id).")
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            help="Evaluate against this policy (name or file) instead of the policy each "
            "event ran under.",
        ),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Run only this check id (repeatable); see `audit rules`."),
    ] = None,
    anchor: AnchorOption = None,
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
    format: FormatOption = "text",
) -> None:
    """Run the compliance checks on the store and the audit log; exit 1 on any error finding.

    Findings are grouped by severity, each with its rule, legal reference and evidence
    (counts, record ids, times). Suitable as a deployment gate.
    """
    fmt = check_format(format)
    anchor_doc = load_anchor(anchor) if anchor is not None else None
    evaluated = parse_date_option(as_of, "--as-of") if as_of else None
    with runtime_from(home, db, now) as runtime:
        # the same scope `flowaudit report` resolves for the same options
        scope = audit_scope(runtime, event_id=event, policy=policy, as_of=evaluated)
        findings = run_checks(CheckContext.from_scope(runtime, scope, anchor_doc), only)
    counts = Counter(f.severity for f in findings)
    if fmt == "json":
        print_json(
            {
                "now": runtime.now.isoformat(),
                "as_of": scope.as_of.isoformat(),
                "event": event,
                "policy": scope.policy.name,
                "policy_overrides_events": policy is not None,
                "summary": {s: counts.get(s, 0) for s in SEVERITIES},
                "findings": [f.as_dict() for f in findings],
            }
        )
    else:
        _print_findings(findings, counts)
    if counts.get("error"):
        raise typer.Exit(1)


def _print_findings(findings: list[Any], counts: Counter[str]) -> None:
    console = Console()
    styles = {"error": "bold red", "warning": "yellow", "info": "cyan"}
    for severity in SEVERITIES:
        group = [f for f in findings if f.severity == severity]
        if not group:
            continue
        table = Table(
            title=f"{severity.upper()} ({len(group)})",
            title_style=styles[severity],
            show_lines=True,
        )
        table.add_column("rule", overflow="fold", ratio=2)
        table.add_column("legal reference", overflow="fold", ratio=2)
        table.add_column("finding", overflow="fold", ratio=5)
        for f in group:
            table.add_row(f.rule_id, f.legal_ref, f.message)
        console.print(table)
    summary = ", ".join(f"{counts.get(s, 0)} {s}(s)" for s in SEVERITIES)
    verdict = "FAIL" if counts.get("error") else "PASS"
    console.print(f"{verdict}: {summary}" if findings else "PASS: no findings")


@audit_app.command("rules")
def rules_cmd(format: FormatOption = "text") -> None:
    """List the compliance checks: id, severity, legal reference, title."""
    items = [
        {"id": r.id, "severity": r.severity, "legal_ref": r.legal_ref, "title": r.title}
        for r in rules()
    ]
    if check_format(format) == "json":
        print_json(items)
        return
    # ids are what `audit check --only` takes, so they are never cut or folded: a table when
    # its prose columns get room to be read, else one rule per paragraph (id first, whole)
    from rich.padding import Padding
    from rich.text import Text

    console = Console()
    longest = max((len(i["id"]) for i in items), default=2)
    if console.width >= longest + len("severity") + 2 * _PROSE_MIN + 13:  # 13: rules, padding
        table = Table()
        table.add_column("id", no_wrap=True, min_width=longest)
        table.add_column("severity", no_wrap=True)
        table.add_column("legal reference", ratio=1)
        table.add_column("title", ratio=2)
        for item in items:
            table.add_row(item["id"], item["severity"], item["legal_ref"], item["title"])
        console.print(table)
        return
    for item in items:
        head = Text(item["id"], style="bold")
        head.append(f"  {item['severity']}  {item['legal_ref']}", style="")
        console.print(head)
        console.print(Padding(Text(item["title"]), (0, 0, 0, 4), expand=False))


_PROSE_MIN = 20  # narrowest legal-reference or title column worth reading


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
