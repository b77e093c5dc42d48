"""C2SP signed notes (``c2sp.org/signed-note``) and tlog checkpoints (``c2sp.org/tlog-checkpoint``).

A signed note is UTF-8 text ending in a newline, a blank line, then signature lines
``— <key name> base64(4-byte key hash ‖ signature)``. The key hash is the first four bytes of
``SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ Ed25519 public key)``; a verifier key is written
``<name>+<key hash, 8 hex>+base64(0x01 ‖ public key)``. A checkpoint is a note whose text is
the origin line, the tree size in decimal, the base64 root hash and optional extension lines.

Only Ed25519 (algorithm 0x01) is implemented; signatures by other keys are ignored, as the
spec asks, and a note no trusted key signed is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "NoteError",
    "Verifier",
    "Checkpoint",
    "key_hash",
    "verifier_key",
    "parse_verifier_key",
    "sign_note",
    "signature_line",
    "open_note",
    "checkpoint_text",
    "parse_checkpoint",
]

ED25519 = 0x01
EM_DASH = "\u2014"
_MAX_SIGNATURES = 100


class NoteError(ValueError):
    """A note, key or checkpoint that does not verify; ``part`` names what failed."""

    def __init__(self, part: str, message: str) -> None:
        super().__init__(message)
        self.part = part  # format | key | signature | checkpoint


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _valid_name(name: str) -> bool:
    return bool(name) and not any(c.isspace() or c == "+" for c in name)


def key_hash(name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte key hash of an Ed25519 note key."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + _raw(public_key)).digest()[:4]


@dataclass(frozen=True)
class Verifier:
    """A trusted note key: its name, key hash and Ed25519 public key."""

    name: str
    key_hash: bytes
    public_key: Ed25519PublicKey

    @property
    def key_string(self) -> str:
        return verifier_key(self.name, self.public_key)


def verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """``<name>+<hex key hash>+<base64(0x01 ‖ public key)>``."""
    if not _valid_name(name):
        raise NoteError("key", f"note key name {name!r} is empty or has a space or '+'")
    blob = base64.b64encode(bytes([ED25519]) + _raw(public_key)).decode("ascii")
    return f"{name}+{key_hash(name, public_key).hex()}+{blob}"


def parse_verifier_key(text: str) -> Verifier:
    """A :class:`Verifier` from its string form; refuses a malformed or inconsistent one."""
    parts = text.strip().split("+", 2)
    if len(parts) != 3 or not _valid_name(parts[0]):
        raise NoteError("key", "a verifier key reads <name>+<8 hex digits>+<base64 key>")
    name, hash_hex, blob = parts
    try:
        claimed = bytes.fromhex(hash_hex)
        raw = base64.b64decode(blob, validate=True)
    except (ValueError, binascii.Error):
        raise NoteError("key", "the verifier key's hash or key part is not hex/base64") from None
    if len(claimed) != 4 or len(raw) != 33:
        raise NoteError("key", "the verifier key's hash must be 4 bytes and its key 33")
    if raw[0] != ED25519:
        raise NoteError("key", f"verifier key algorithm {raw[0]} is not Ed25519 (1)")
    public_key = Ed25519PublicKey.from_public_bytes(raw[1:])
    if key_hash(name, public_key) != claimed:
        raise NoteError("key", "the verifier key's hash does not match its name and key")
    return Verifier(name, claimed, public_key)


def signature_line(name: str, public_key: Ed25519PublicKey, signature: bytes) -> str:
    blob = base64.b64encode(key_hash(name, public_key) + signature).decode("ascii")
    return f"{EM_DASH} {name} {blob}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("format", "the note text does not end with a newline")
    if "\n\n" in text:
        raise NoteError("format", "the note text holds a blank line")
    if any((ord(c) < 0x20 and c != "\n") for c in text):
        raise NoteError("format", "the note text holds control characters")


def sign_note(text: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """The signed note of ``text`` under key ``name``."""
    _check_text(text)
    signature = private_key.sign(text.encode("utf-8"))
    return text + "\n" + signature_line(name, private_key.public_key(), signature)


def open_note(note: str, verifier: Verifier) -> str:
    """The text of ``note`` if ``verifier`` signed it; :class:`NoteError` otherwise."""
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("format", "not a signed note (no blank line before signature lines)")
    text, block = note[: cut + 1], note[cut + 2 :]
    _check_text(text)
    lines = block[:-1].split("\n")
    if len(lines) > _MAX_SIGNATURES:
        raise NoteError("format", f"the note has more than {_MAX_SIGNATURES} signatures")
    found_name = False
    for line in lines:
        prefix = EM_DASH + " "
        if not line.startswith(prefix):
            raise NoteError("format", "a signature line does not start with '— '")
        name, _, blob = line[len(prefix) :].partition(" ")
        if not _valid_name(name) or not blob:
            raise NoteError("format", "a signature line is not '— <name> <base64>'")
        try:
            raw = base64.b64decode(blob, validate=True)
        except (ValueError, binascii.Error):
            raise NoteError("format", "a signature line's signature is not base64") from None
        if len(raw) < 5:
            raise NoteError("format", "a signature line's signature is too short")
        if name != verifier.name:
            continue
        found_name = True
        if raw[:4] != verifier.key_hash:
            continue
        try:
            verifier.public_key.verify(raw[4:], text.encode("utf-8"))
        except InvalidSignature:
            raise NoteError("signature", f"the signature by {name} does not verify") from None
        return text
    if found_name:
        raise NoteError("key", f"signed by another key named {verifier.name} (key hash differs)")
    raise NoteError("key", f"not signed by the trusted key {verifier.name}")


@dataclass(frozen=True)
class Checkpoint:
    """The body of a tlog checkpoint."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()


def checkpoint_text(checkpoint: Checkpoint) -> str:
    root = base64.b64encode(checkpoint.root).decode("ascii")
    lines = [checkpoint.origin, str(checkpoint.size), root, *checkpoint.extensions]
    text = "\n".join(lines) + "\n"
    _check_text(text)
    return text


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body; refuses a malformed one (what is wrong in the message)."""
    _check_text(text)
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("checkpoint", "a checkpoint needs origin, tree size and root lines")
    origin, size_text, root_text, *extensions = lines
    if not origin:
        raise NoteError("checkpoint", "the checkpoint's origin line is empty")
    if (
        not size_text.isdigit()
        or not size_text.isascii()
        or (len(size_text) > 1 and size_text[0] == "0")
    ):
        raise NoteError("checkpoint", "the checkpoint's tree size is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (ValueError, binascii.Error):
        root = b""
    if len(root) != 32:
        raise NoteError("checkpoint", "the checkpoint's root is not base64 of 32 bytes")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))
