"""Signed checkpoints and anchors: Ed25519 signatures over the audit log's Merkle tree.

A hash chain alone shows that entries were not changed *relative to each other*; whoever can
write the table can still rewrite the tail and re-hash it, or cut it off. A checkpoint signs
``(seq, head hash, time)`` with a key that is separate from the master key, and an *anchor* is
a checkpoint exported to a file that the auditor keeps elsewhere: a later ``verify --anchor``
detects a rewritten or truncated log up to that point.

A checkpoint is a C2SP ``tlog-checkpoint`` (``c2sp.org/tlog-checkpoint``) in a signed note
(``c2sp.org/signed-note``, :mod:`audit.log.notes`): origin line, tree size (the head's sequence
number), the base64 RFC 9162 Merkle root of the entries (:mod:`audit.log.tree`), then an
extension line with the time; any tlog client reads it::

    flowaudit/audit-tree
    1234
    q1Vb9kG…=
    at 2026-06-21T22:00:00+00:00

    — flowaudit/audit-tree AbCd…(base64 of 4-byte key hash ‖ 64-byte signature)

The row also keeps the chain head at that size. Checkpoints written before migration 0003
signed the same layout under origin ``flowaudit/audit-log`` with the *chain head hash* where
the root now is (a different origin, so no client confuses the two); they still verify as
chain-head checkpoints (:func:`verify_signature`).

Checkpoints are written every N entries (:class:`audit.log.chain.AuditLog`) and at the end of every
CLI command that appended entries, whether it succeeded or failed (:func:`checkpoint_after_command`,
:func:`checkpoint_after_failure`); entries after the last checkpoint fail ``audit verify``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.orm import Session

from audit.log.chain import iso_utc, last_checkpoint, read_head, tree_root
from audit.log.notes import Checkpoint, checkpoint_text, signature_line, verifier_key
from audit.log.signing import load_signing_key, public_key_id
from retention.errors import ConfigError, InputError
from retention.models import AuditCheckpoint

__all__ = [
    "ORIGIN",
    "TREE_ORIGIN",
    "ANCHOR_FORMAT",
    "CheckpointSigner",
    "Anchor",
    "note_body",
    "signed_note",
    "verify_signature",
    "tree_note_body",
    "tree_note",
    "verify_tree_signature",
    "checkpoint_note",
    "note_verifier_key",
    "write_checkpoint",
    "load_signer",
    "attach_signer",
    "checkpoint_after_command",
    "checkpoint_after_failure",
    "make_anchor",
    "write_anchor",
    "load_anchor",
    "load_public_key",
    "public_key_b64",
]

ORIGIN = "flowaudit/audit-log"  # chain-head checkpoints (before migration 0003)
TREE_ORIGIN = "flowaudit/audit-tree"  # Merkle checkpoints: origin line and note key name
ANCHOR_FORMAT = "flowaudit-audit-anchor/v1"
_ED25519_ALG = b"\x01"


def note_body(seq: int, head_hash: str, at: datetime | str, origin: str = ORIGIN) -> bytes:
    """The signed text: origin, tree size, base64 head hash, time extension line."""
    iso = at if isinstance(at, str) else iso_utc(at)
    root = base64.b64encode(bytes.fromhex(head_hash)).decode("ascii")
    return f"{origin}\n{seq}\n{root}\nat {iso}\n".encode()


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_b64(public_key: Ed25519PublicKey) -> str:
    return base64.b64encode(_raw(public_key)).decode("ascii")


def _note_key_hash(public_key: Ed25519PublicKey, origin: str = ORIGIN) -> bytes:
    """C2SP signed-note key hash: SHA-256(name ‖ LF ‖ 0x01 ‖ public key)[:4]."""
    return hashlib.sha256(origin.encode() + b"\n" + _ED25519_ALG + _raw(public_key)).digest()[:4]


def signed_note(
    seq: int, head_hash: str, at: datetime | str, signature: bytes, public_key: Ed25519PublicKey
) -> str:
    """The full signed note (body, blank line, signature line) as text."""
    blob = base64.b64encode(_note_key_hash(public_key) + signature).decode("ascii")
    return note_body(seq, head_hash, at).decode() + f"\n\u2014 {ORIGIN} {blob}\n"


def verify_signature(
    public_key: Ed25519PublicKey, seq: int, head_hash: str, at: datetime | str, signature: bytes
) -> bool:
    """True iff ``signature`` is the key's signature over this checkpoint's note body."""
    try:
        public_key.verify(bytes(signature), note_body(seq, head_hash, at))
    except (InvalidSignature, ValueError):
        return False
    return True


def tree_note_body(size: int, root: bytes, at: datetime | str) -> bytes:
    """The signed text of a Merkle checkpoint: origin, size, base64 root, time extension."""
    iso = at if isinstance(at, str) else iso_utc(at)
    return checkpoint_text(Checkpoint(TREE_ORIGIN, size, root, (f"at {iso}",))).encode()


def tree_note(
    size: int, root: bytes, at: datetime | str, signature: bytes, public_key: Ed25519PublicKey
) -> str:
    """The full signed note of a Merkle checkpoint."""
    body = tree_note_body(size, root, at).decode()
    return body + "\n" + signature_line(TREE_ORIGIN, public_key, signature)


def verify_tree_signature(
    public_key: Ed25519PublicKey, size: int, root: bytes, at: datetime | str, signature: bytes
) -> bool:
    """True iff ``signature`` is the key's signature over this Merkle checkpoint."""
    try:
        public_key.verify(bytes(signature), tree_note_body(size, root, at))
    except (InvalidSignature, ValueError):
        return False
    return True


def checkpoint_note(checkpoint: AuditCheckpoint, public_key: Ed25519PublicKey) -> str:
    """The signed note of a stored checkpoint, Merkle or (older) chain head."""
    at, signature = iso_utc(checkpoint.at), bytes(checkpoint.signature)
    if checkpoint.root_hash is None:
        return signed_note(checkpoint.seq, checkpoint.head_hash, at, signature, public_key)
    size = int(checkpoint.tree_size or 0)
    return tree_note(size, bytes.fromhex(checkpoint.root_hash), at, signature, public_key)


def note_verifier_key(public_key: Ed25519PublicKey) -> str:
    """The C2SP verifier key of the checkpoints (``flowaudit/audit-tree+<hash>+<key>``)."""
    return verifier_key(TREE_ORIGIN, public_key)


class CheckpointSigner:
    """Signs Merkle checkpoints with the audit signing key (never the master key)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.key_id = public_key_id(self.public_key)

    def sign(self, seq: int, head_hash: str, at: datetime | str) -> bytes:
        """A chain-head signature (the format before migration 0003; tests of old logs)."""
        return self._private_key.sign(note_body(seq, head_hash, at))

    def sign_tree(self, size: int, root: bytes, at: datetime | str) -> bytes:
        return self._private_key.sign(tree_note_body(size, root, at))

    def checkpoint(self, seq: int, head_hash: str, at: datetime, root: bytes) -> AuditCheckpoint:
        """A new (unsaved) Merkle checkpoint over the first ``seq`` entries."""
        return AuditCheckpoint(
            seq=seq,
            head_hash=head_hash,
            at=at,
            key_id=self.key_id,
            signature=self.sign_tree(seq, root, at),
            tree_size=seq,
            root_hash=root.hex(),
        )


def load_signer(path: Path) -> CheckpointSigner | None:
    """The signer from a home's ``signing.key``; ``None`` if there is no key file."""
    if not path.exists():
        return None
    return CheckpointSigner(load_signing_key(path))


def write_checkpoint(
    session: Session, signer: CheckpointSigner, now: datetime, *, force: bool = False
) -> AuditCheckpoint | None:
    """Sign the current head in ``session``'s transaction.

    Returns the new checkpoint, or ``None`` when the log is empty or its head is already
    covered by a checkpoint of this key (unless ``force``).
    """
    if not force and _covered(session, signer):
        return None
    seq, head = read_head(session)
    if seq == 0:
        return None
    checkpoint = signer.checkpoint(seq, head, now, tree_root(session, seq))
    session.add(checkpoint)
    session.flush()
    return checkpoint


class _RuntimeLike(Protocol):
    store: Any
    audit: Any
    settings: Any
    now: datetime


def attach_signer(runtime: _RuntimeLike, every: int | None = None) -> CheckpointSigner | None:
    """Let the runtime's audit log sign a checkpoint every ``every`` entries (default 1000)."""
    signer = load_signer(Path(runtime.settings.signing_key_file))
    if signer is not None:
        runtime.audit.attach_signer(signer, every)
    return signer


def checkpoint_after_command(
    runtime: _RuntimeLike, *, now: datetime | None = None, appended_only: bool = False
) -> AuditCheckpoint | None:
    """Sign the head unless it is already signed; ``now`` is the checkpoint's time.

    ``appended_only``: only if this runtime's log recorded entries since it last signed — what
    every CLI command uses, so a read-only command never vouches for a tail that someone else
    appended (a forged append stays unsigned, and ``audit verify`` fails on it). A home without
    a ``signing.key`` is left alone (``audit verify`` then reports the unsigned entries); a key
    file others can read is refused by :func:`load_signing_key`.
    """
    log = runtime.audit
    if appended_only and not getattr(log, "appended", 0):
        return None
    signer = load_signer(Path(runtime.settings.signing_key_file))
    if signer is None:
        return None
    moment = runtime.now if now is None else now
    with runtime.store.session() as session:  # a read first: most commands append nothing
        if _covered(session, signer):
            log.appended = 0
            return None
    with runtime.store.transaction(moment, actor="audit") as tx:
        checkpoint = write_checkpoint(tx.session, signer, moment)
    log.appended = 0
    return checkpoint


def checkpoint_after_failure(runtime: _RuntimeLike) -> AuditCheckpoint | None:
    """The same for a command that failed: what it committed is real and gets signed too.

    Never raises — the command's own error is the one to report; a database that cannot take
    the checkpoint now leaves an unsigned tail that ``audit verify`` names.
    """
    try:
        return checkpoint_after_command(runtime, appended_only=True)
    except Exception:  # any failure here would hide the original error
        return None


def _covered(session: Session, signer: CheckpointSigner) -> bool:
    """True if the log is empty or its head is already in a Merkle checkpoint of this key."""
    seq, head = read_head(session)
    if seq == 0:
        return True
    last = last_checkpoint(session)
    return (
        last is not None
        and last.seq == seq
        and last.head_hash == head
        and last.key_id == signer.key_id
        and last.root_hash is not None
    )


# -- anchors ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Anchor:
    """A checkpoint the auditor keeps outside the database (``audit anchor --out FILE``)."""

    seq: int
    head_hash: str
    at: str
    key_id: str
    public_key: Ed25519PublicKey
    signature: bytes
    root_hash: str | None = None  # a Merkle checkpoint's root (None: a chain-head anchor)

    def verifies(self) -> bool:
        if self.root_hash is not None:
            root = bytes.fromhex(self.root_hash)
            return verify_tree_signature(self.public_key, self.seq, root, self.at, self.signature)
        return verify_signature(self.public_key, self.seq, self.head_hash, self.at, self.signature)


def make_anchor(checkpoint: AuditCheckpoint, public_key: Ed25519PublicKey) -> dict[str, Any]:
    """The JSON document of an anchor (the signed note is included for other tools)."""
    at = iso_utc(checkpoint.at)
    document = {
        "format": ANCHOR_FORMAT,
        "origin": ORIGIN if checkpoint.root_hash is None else TREE_ORIGIN,
        "seq": checkpoint.seq,
        "head_hash": checkpoint.head_hash,
        "at": at,
        "key_id": checkpoint.key_id,
        "public_key": public_key_b64(public_key),
        "signature": base64.b64encode(bytes(checkpoint.signature)).decode("ascii"),
        "note": checkpoint_note(checkpoint, public_key),
    }
    if checkpoint.root_hash is not None:
        document.update(tree_size=checkpoint.tree_size, root_hash=checkpoint.root_hash)
    return document


def write_anchor(path: Path, document: dict[str, Any]) -> None:
    """Write an anchor file (it holds no secret: public key, hash, signature)."""
    try:
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write anchor '{path}' ({exc.strerror})") from None


def _b64(value: Any, field: str, where: str, size: int | None = None) -> bytes:
    try:
        raw = base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if not raw or (size is not None and len(raw) != size):
        raise InputError(f"anchor '{where}': field {field!r} is not valid base64 of the right size")
    return raw


def load_anchor(path: Path) -> Anchor:
    """Read and validate an anchor file; refuses anything malformed with one clear line."""
    where = str(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"anchor file '{where}' does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(
            f"anchor '{where}' is not a JSON anchor file ({type(exc).__name__}); "
            "create one with `flowaudit audit anchor --out FILE`"
        ) from None
    if not isinstance(document, dict) or document.get("format") != ANCHOR_FORMAT:
        raise InputError(f"anchor '{where}': format is not {ANCHOR_FORMAT!r}")
    seq, head = document.get("seq"), document.get("head_hash")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise InputError(f"anchor '{where}': seq must be a positive integer")
    if not isinstance(head, str) or len(head) != 64:
        raise InputError(f"anchor '{where}': head_hash must be 64 hex digits")
    try:
        bytes.fromhex(head)
    except ValueError:
        raise InputError(f"anchor '{where}': head_hash must be 64 hex digits") from None
    at = document.get("at")
    if not isinstance(at, str):
        raise InputError(f"anchor '{where}': at must be an ISO 8601 time")
    public_key = Ed25519PublicKey.from_public_bytes(
        _b64(document.get("public_key"), "public_key", where, 32)
    )
    signature = _b64(document.get("signature"), "signature", where, 64)
    root = document.get("root_hash")
    if root is not None and (
        not isinstance(root, str)
        or len(root) != 64
        or not _hex(root)
        or document.get("tree_size") != seq
    ):
        raise InputError(
            f"anchor '{where}': root_hash must be 64 hex digits and tree_size equal to seq"
        )
    return Anchor(
        seq=seq,
        head_hash=head,
        at=at,
        key_id=public_key_id(public_key),
        public_key=public_key,
        signature=signature,
        root_hash=root,
    )


def _hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM public key, a PEM private key, or raw base64."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read public key '{path}' ({exc.strerror})") from None
    key: Any = None
    try:
        if b"PRIVATE KEY" in data:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        elif b"PUBLIC KEY" in data:
            key = serialization.load_pem_public_key(data)
        else:
            raw = base64.b64decode(data.strip(), validate=True)
            key = Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError, binascii.Error):
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(
            f"'{path}' is not an Ed25519 key (PEM public key, PEM private key or base64 raw)"
        )
    return key
