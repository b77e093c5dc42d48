"""Proof bundles: one audit entry or one log extension, checkable with the public key alone.

An **inclusion bundle** holds an entry's canonical bytes, its leaf index, the tree size, the
RFC 9162 audit path and the signed C2SP checkpoint of that size; a **consistency bundle**
holds two signed checkpoints and the consistency proof between them. :func:`verify_bundle`
needs nothing else — no database, no home: it checks the checkpoint signature(s) with the
verifier key, re-derives the leaf from the entry bytes and runs the RFC 9162 §2.1.3.2 /
§2.1.4.2 verification. Hashes are hex.

Generation (:func:`inclusion_bundle`, :func:`consistency_bundle`) reads O(log n) stored
subtree hashes (:class:`audit.log.tree.StoredTree`) and verifies the bundle before handing it
out, so a damaged node table is reported instead of producing a proof that fails later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.engine import Connection

from audit.log.checkpoints import TREE_ORIGIN, checkpoint_note, load_public_key
from audit.log.merkle import leaf_hash, verify_consistency, verify_inclusion
from audit.log.notes import (
    Checkpoint,
    NoteError,
    Verifier,
    key_hash,
    open_note,
    parse_checkpoint,
    parse_verifier_key,
)
from audit.log.signing import public_key_id
from audit.log.tree import StoredTree
from retention.errors import InputError, IntegrityError
from retention.models import AuditCheckpoint, AuditEntry

__all__ = [
    "INCLUSION_FORMAT",
    "CONSISTENCY_FORMAT",
    "ProofError",
    "Verified",
    "tree_checkpoints",
    "latest_tree_checkpoint",
    "inclusion_bundle",
    "receipt_bundle",
    "consistency_bundle",
    "verify_bundle",
    "load_bundle",
    "load_verifier",
    "write_bundle",
    "verifier_summary",
]

INCLUSION_FORMAT = "flowaudit-inclusion-proof/v1"
CONSISTENCY_FORMAT = "flowaudit-consistency-proof/v1"


class ProofError(ValueError):
    """A bundle that does not verify; ``part`` says which part failed."""

    def __init__(self, part: str, message: str) -> None:
        super().__init__(message)
        self.part = part  # format | key | signature | checkpoint | entry | proof


@dataclass(frozen=True)
class Verified:
    """What a verified bundle proves."""

    kind: str  # inclusion | consistency
    tree_size: int
    root: bytes
    seq: int | None = None  # inclusion: the entry's sequence number
    entry: dict[str, Any] | None = None  # inclusion: the entry, parsed
    old_size: int | None = None  # consistency
    old_root: bytes | None = None


# -- reading the log ---------------------------------------------------------------------------
def tree_checkpoints(connection: Connection, key_id: str) -> list[AuditCheckpoint]:
    """Merkle checkpoints of one key, oldest first."""
    from sqlalchemy.orm import Session

    with Session(bind=connection) as session:
        rows = session.scalars(
            select(AuditCheckpoint)
            .where(AuditCheckpoint.root_hash.is_not(None), AuditCheckpoint.key_id == key_id)
            .order_by(AuditCheckpoint.seq, AuditCheckpoint.id)
        ).all()
        session.expunge_all()
    return list(rows)


def latest_tree_checkpoint(connection: Connection, key_id: str) -> AuditCheckpoint | None:
    found = tree_checkpoints(connection, key_id)
    return found[-1] if found else None


def _signed(checkpoint: AuditCheckpoint, public_key: Ed25519PublicKey) -> str:
    """The checkpoint's note, refused unless it verifies (the stored row may be tampered)."""
    note = checkpoint_note(checkpoint, public_key)
    verifier = _verifier_of(public_key)
    try:
        open_note(note, verifier)
    except NoteError:
        raise IntegrityError(
            f"checkpoint #{checkpoint.id} (size {checkpoint.tree_size}) does not verify with "
            "the signing key; run `flowaudit audit verify`"
        ) from None
    return note


def _verifier_of(public_key: Ed25519PublicKey) -> Verifier:
    return Verifier(TREE_ORIGIN, key_hash(TREE_ORIGIN, public_key), public_key)


def inclusion_bundle(
    connection: Connection, seq: int, checkpoint: AuditCheckpoint, public_key: Ed25519PublicKey
) -> dict[str, Any]:
    """The inclusion bundle of entry ``seq`` against ``checkpoint`` (a Merkle checkpoint)."""
    size = int(checkpoint.tree_size or 0)
    if not 1 <= seq <= size:
        raise InputError(
            f"entry {seq} is not covered by checkpoint #{checkpoint.id} (size {size}); "
            "sign the head first (`flowaudit audit checkpoint`)"
        )
    note = _signed(checkpoint, public_key)
    tree = StoredTree(connection, size)
    path = tree.inclusion(seq - 1)
    data = tree.leaf_data(seq - 1)
    bundle = {
        "format": INCLUSION_FORMAT,
        "entry": data.decode("ascii"),
        "leaf_index": seq - 1,
        "tree_size": size,
        "audit_path": [h.hex() for h in path],
        "checkpoint": note,
    }
    _self_check(bundle, public_key, f"entry {seq}")
    return bundle


def receipt_bundle(
    connection: Connection, action: str, object_id: str, public_key: Ed25519PublicKey
) -> dict[str, Any]:
    """The inclusion bundle of the latest ``action`` entry about ``object_id`` (a purge or
    erasure receipt) against the latest Merkle checkpoint of the key."""
    seq = connection.execute(
        select(AuditEntry.seq)
        .where(AuditEntry.action == action, AuditEntry.object_id == object_id)
        .order_by(AuditEntry.seq.desc())
        .limit(1)
    ).scalar()
    if seq is None:
        raise IntegrityError(f"no {action} entry for {object_id} in the audit log")
    latest = latest_tree_checkpoint(connection, public_key_id(public_key))
    if latest is None or int(latest.tree_size or 0) < seq:
        raise IntegrityError(
            f"the receipt (entry {seq}) is not covered by a signed checkpoint yet; run "
            f"`flowaudit audit checkpoint`, then `flowaudit audit prove --entry {seq}`"
        )
    return inclusion_bundle(connection, int(seq), latest, public_key)


def consistency_bundle(
    connection: Connection,
    old: AuditCheckpoint,
    new: AuditCheckpoint,
    public_key: Ed25519PublicKey,
) -> dict[str, Any]:
    """The consistency bundle from checkpoint ``old`` to checkpoint ``new``."""
    old_size, new_size = int(old.tree_size or 0), int(new.tree_size or 0)
    if old_size > new_size:
        raise InputError(f"checkpoint size {old_size} is after the latest one ({new_size})")
    bundle = {
        "format": CONSISTENCY_FORMAT,
        "old_checkpoint": _signed(old, public_key),
        "new_checkpoint": _signed(new, public_key),
        "proof": [h.hex() for h in StoredTree(connection, new_size).consistency(old_size)],
    }
    _self_check(bundle, public_key, f"sizes {old_size}..{new_size}")
    return bundle


def _self_check(bundle: dict[str, Any], public_key: Ed25519PublicKey, what: str) -> None:
    try:
        verify_bundle(bundle, _verifier_of(public_key))
    except ProofError as exc:
        raise IntegrityError(
            f"the stored tree gives no valid proof for {what} ({exc}); "
            "run `flowaudit audit verify`"
        ) from None


# -- verifying ---------------------------------------------------------------------------------
def _field(document: dict[str, Any], name: str, kind: type) -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProofError("format", f"field {name!r} is missing or not {kind.__name__}")
    return value


def _hashes(value: Any, name: str) -> list[bytes]:
    if not isinstance(value, list) or len(value) > 64:
        raise ProofError("format", f"field {name!r} must be a list of at most 64 hex hashes")
    out = []
    for item in value:
        try:
            raw = bytes.fromhex(item) if isinstance(item, str) else b""
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise ProofError("format", f"field {name!r} holds a value that is not 64 hex digits")
        out.append(raw)
    return out


def _open_checkpoint(note: str, verifier: Verifier, which: str) -> Checkpoint:
    try:
        text = open_note(note, verifier)
        checkpoint = parse_checkpoint(text)
    except NoteError as exc:
        part = {"format": "checkpoint", "checkpoint": "checkpoint"}.get(exc.part, exc.part)
        raise ProofError(part, f"the {which}: {exc}") from None
    if checkpoint.origin != TREE_ORIGIN:
        raise ProofError(
            "checkpoint", f"the {which} is for log {checkpoint.origin!r}, not {TREE_ORIGIN!r}"
        )
    return checkpoint


def verify_bundle(document: Any, verifier: Verifier) -> Verified:
    """Check a bundle with the verifier key only; :class:`ProofError` names the failed part."""
    if not isinstance(document, dict):
        raise ProofError("format", "a proof bundle is a JSON object")
    kind = document.get("format")
    if kind == INCLUSION_FORMAT:
        return _verify_inclusion(document, verifier)
    if kind == CONSISTENCY_FORMAT:
        return _verify_consistency(document, verifier)
    raise ProofError(
        "format", f"format {kind!r} is neither {INCLUSION_FORMAT!r} nor {CONSISTENCY_FORMAT!r}"
    )


def _verify_inclusion(document: dict[str, Any], verifier: Verifier) -> Verified:
    entry_text = _field(document, "entry", str)
    index = _field(document, "leaf_index", int)
    size = _field(document, "tree_size", int)
    path = _hashes(document.get("audit_path"), "audit_path")
    checkpoint = _open_checkpoint(_field(document, "checkpoint", str), verifier, "checkpoint")
    if checkpoint.size != size:
        raise ProofError(
            "checkpoint",
            f"the bundle says tree size {size} but its signed checkpoint is of size "
            f"{checkpoint.size}",
        )
    try:
        data = entry_text.encode("ascii")
        entry = json.loads(entry_text)
    except (UnicodeEncodeError, ValueError):
        raise ProofError("entry", "the entry is not canonical ASCII JSON") from None
    if not isinstance(entry, dict) or entry.get("seq") != index + 1:
        raise ProofError("entry", f"the entry's seq is not leaf index + 1 ({index + 1})")
    if not verify_inclusion(index, size, leaf_hash(data), path, checkpoint.root):
        raise ProofError(
            "proof",
            f"the audit path does not lead from entry {index + 1} to the signed root of "
            f"size {size}",
        )
    return Verified("inclusion", size, checkpoint.root, seq=index + 1, entry=entry)


def _verify_consistency(document: dict[str, Any], verifier: Verifier) -> Verified:
    old = _open_checkpoint(_field(document, "old_checkpoint", str), verifier, "old checkpoint")
    new = _open_checkpoint(_field(document, "new_checkpoint", str), verifier, "new checkpoint")
    proof = _hashes(document.get("proof"), "proof")
    if old.size > new.size:
        raise ProofError("checkpoint", f"the old checkpoint ({old.size}) is larger than the new")
    if not verify_consistency(old.size, new.size, old.root, new.root, proof):
        raise ProofError(
            "proof",
            f"the tree of size {new.size} does not extend the tree of size {old.size} "
            "(consistency proof fails)",
        )
    return Verified("consistency", new.size, new.root, old_size=old.size, old_root=old.root)


# -- files and keys ----------------------------------------------------------------------------
def load_bundle(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"proof file '{path}' does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(
            f"proof '{path}' is not a JSON proof bundle ({type(exc).__name__}); "
            "create one with `flowaudit audit prove`"
        ) from None


def write_bundle(path: Path, bundle: dict[str, Any]) -> None:
    try:
        path.write_text(json.dumps(bundle, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write proof '{path}' ({exc.strerror})") from None


def load_verifier(value: str) -> Verifier:
    """A verifier from ``<name>+<hash>+<key>``, or a file holding that or an Ed25519 key."""
    path = Path(value)
    text = value
    if "+" not in value or path.is_file():
        if not path.is_file():
            raise InputError(
                f"--key '{value}' is neither a verifier key (<name>+<hash>+<key>) nor a file"
            )
        raw = path.read_bytes()
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            text = ""
        if text.count("+") < 2 or "KEY-----" in text:
            public_key = load_public_key(path)
            return _verifier_of(public_key)
    try:
        return parse_verifier_key(text)
    except NoteError as exc:
        raise InputError(f"--key: {exc}") from None


def verifier_summary(verifier: Verifier) -> str:
    key_id = public_key_id(verifier.public_key)
    return f"{verifier.name}+{verifier.key_hash.hex()} (key id {key_id})"
