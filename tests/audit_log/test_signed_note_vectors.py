"""Our signed-note code against the golang.org/x/mod/sumdb/note example.

Source (re-typed): golang/mod, ``sumdb/note/note.go`` package documentation ("Here is a
well-formed signed note", commit a410e2daa716f879ede62862a0351cad3606d11b): the PeterNeumann
signer and verifier keys, the two-line note text and its signature line.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.log.notes import (
    Checkpoint,
    NoteError,
    checkpoint_text,
    open_note,
    parse_checkpoint,
    parse_verifier_key,
    sign_note,
    verifier_key,
)

VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
NOTE = (
    TEXT + "\n\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def _private() -> Ed25519PrivateKey:
    raw = base64.b64decode(SKEY.split("+", 4)[4])
    assert raw[0] == 1  # algorithm Ed25519, then the 32-byte seed
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


def test_the_published_note_opens_with_the_published_key() -> None:
    assert open_note(NOTE, parse_verifier_key(VKEY)) == TEXT


def test_signing_reproduces_the_published_note_and_key() -> None:
    private = _private()
    assert verifier_key("PeterNeumann", private.public_key()) == VKEY
    assert sign_note(TEXT, "PeterNeumann", private) == NOTE  # Ed25519 is deterministic


@pytest.mark.parametrize("position", [0, 10, len(TEXT) - 2])
def test_a_changed_byte_of_the_text_is_refused(position: int) -> None:
    changed = NOTE[:position] + chr(ord(NOTE[position]) ^ 1) + NOTE[position + 1 :]
    with pytest.raises(NoteError) as caught:
        open_note(changed, parse_verifier_key(VKEY))
    assert caught.value.part == "signature"


def test_the_go_tampering_example_is_refused() -> None:
    with pytest.raises(NoteError, match="does not verify"):
        open_note(NOTE.replace("cryptography", "cryptographY", 1), parse_verifier_key(VKEY))


def test_a_changed_signature_byte_is_refused() -> None:
    blob = NOTE.rsplit(" ", 1)[1].strip()
    raw = bytearray(base64.b64decode(blob))
    raw[10] ^= 0x01
    changed = NOTE.replace(blob, base64.b64encode(bytes(raw)).decode())
    with pytest.raises(NoteError) as caught:
        open_note(changed, parse_verifier_key(VKEY))
    assert caught.value.part == "signature"


def test_another_key_is_refused() -> None:
    other = Ed25519PrivateKey.generate()
    with pytest.raises(NoteError) as caught:
        open_note(NOTE, parse_verifier_key(verifier_key("PeterNeumann", other.public_key())))
    assert caught.value.part == "key"
    with pytest.raises(NoteError, match="not signed by the trusted key Other"):
        open_note(NOTE, parse_verifier_key(verifier_key("Other", other.public_key())))


@pytest.mark.parametrize(
    "key",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong hash
        "PeterNeumann+c74f20a3+AhpcZQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong algorithm
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+zz+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_malformed_verifier_keys_are_refused(key: str) -> None:
    with pytest.raises(NoteError) as caught:
        parse_verifier_key(key)
    assert caught.value.part == "key"


@pytest.mark.parametrize(
    "note",
    [TEXT, TEXT + "\n", TEXT + "\nPeterNeumann abc\n", TEXT + "\n\u2014 PeterNeumann !!\n"],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(NoteError) as caught:
        open_note(note, parse_verifier_key(VKEY))
    assert caught.value.part == "format"


def test_checkpoint_body_round_trip_and_malformed_bodies() -> None:
    body = Checkpoint("example.com/log", 20852163, bytes(range(32)), ("at 2026-06-21",))
    assert parse_checkpoint(checkpoint_text(body)) == body
    root = base64.b64encode(bytes(32)).decode()
    for bad in (f"o\n01\n{root}\n", f"o\n-1\n{root}\n", "o\n1\nAAAA\n", f"\n1\n{root}\n", "o\n1\n"):
        with pytest.raises(NoteError):
            parse_checkpoint(bad)
