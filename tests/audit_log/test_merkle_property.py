"""Properties of proof bundles: any tampering fails, any honest append keeps old proofs valid.

Bundles are built the way :mod:`audit.log.proofs` builds them (real canonical entries, a real
Ed25519 checkpoint note) over an in-memory tree, then checked by :func:`verify_bundle`; the
database-backed path is covered by the same checks on a real log at the end.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.log.chain import canonical_entry
from audit.log.checkpoints import (
    TREE_ORIGIN,
    CheckpointSigner,
    checkpoint_after_command,
    tree_note,
)
from audit.log.merkle import MemoryTree
from audit.log.notes import Verifier, key_hash
from audit.log.proofs import (
    CONSISTENCY_FORMAT,
    INCLUSION_FORMAT,
    ProofError,
    consistency_bundle,
    inclusion_bundle,
    tree_checkpoints,
    verify_bundle,
)
from flowaudit.config import Settings
from flowaudit.runtime import open_runtime

from .logbuild import START, fill_log

SIGNER = CheckpointSigner(Ed25519PrivateKey.generate())
VERIFIER = Verifier(TREE_ORIGIN, key_hash(TREE_ORIGIN, SIGNER.public_key), SIGNER.public_key)
AT = "2026-06-21T22:00:00+00:00"
T0 = datetime(2026, 6, 21, 18, 0, tzinfo=UTC)


def _entry(seq: int) -> bytes:
    return canonical_entry(
        seq, T0 + timedelta(seconds=seq), "pipeline", "gate.drop", "wristband", f"p{seq:04d}",
        {"frames": seq, "reason": "vad"},
    )


def _note(tree: MemoryTree, size: int) -> str:
    root = tree.root(size)
    return tree_note(size, root, AT, SIGNER.sign_tree(size, root, AT), SIGNER.public_key)


def _inclusion(tree: MemoryTree, entries: list[bytes], index: int, size: int) -> dict[str, Any]:
    return {
        "format": INCLUSION_FORMAT,
        "entry": entries[index].decode(),
        "leaf_index": index,
        "tree_size": size,
        "audit_path": [h.hex() for h in tree.inclusion_proof(index, size)],
        "checkpoint": _note(tree, size),
    }


def _consistency(tree: MemoryTree, old: int, new: int) -> dict[str, Any]:
    return {
        "format": CONSISTENCY_FORMAT,
        "old_checkpoint": _note(tree, old),
        "new_checkpoint": _note(tree, new),
        "proof": [h.hex() for h in tree.consistency_proof(old, new)],
    }


def _fails(bundle: dict[str, Any]) -> bool:
    try:
        verify_bundle(json.loads(json.dumps(bundle)), VERIFIER)
    except ProofError:
        return True
    return False


def _flip_hex(value: str, bit: int) -> str:
    raw = bytearray(bytes.fromhex(value))
    raw[(bit // 8) % len(raw)] ^= 1 << (bit % 8)
    return raw.hex()


def _flip_b64(value: str, bit: int) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[(bit // 8) % len(raw)] ^= 1 << (bit % 8)
    return base64.b64encode(bytes(raw)).decode()


def _tamper_note(note: str, where: str, bit: int, delta: int) -> str:
    body, _, signature = note.partition("\n\n")
    lines = body.split("\n")
    if where == "size":
        lines[1] = str(max(0, int(lines[1]) + delta))
    elif where == "root":
        lines[2] = _flip_b64(lines[2], bit)
    elif where == "time":
        lines[3] = lines[3][:-1] + ("1" if lines[3][-1] != "1" else "2")
    else:  # the signature blob: key hash or signature bytes
        dash, name, blob = signature.strip().split(" ")
        signature = f"{dash} {name} {_flip_b64(blob, bit)}\n"
    return "\n".join(lines) + "\n\n" + signature


sizes = st.integers(min_value=1, max_value=70)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), size=sizes)
def test_any_tampering_of_an_inclusion_bundle_fails(data: st.DataObject, size: int) -> None:
    entries = [_entry(i + 1) for i in range(size)]
    tree = MemoryTree(entries)
    index = data.draw(st.integers(0, size - 1), "index")
    bundle = _inclusion(tree, entries, index, size)
    assert not _fails(bundle)
    what = data.draw(st.sampled_from(["leaf", "path", "size", "root", "time", "sig", "index"]))
    bit = data.draw(st.integers(0, 255), "bit")
    tampered = json.loads(json.dumps(bundle))
    if what == "leaf":
        text = tampered["entry"]
        position = data.draw(st.integers(0, len(text) - 1), "byte")
        tampered["entry"] = text[:position] + chr(ord(text[position]) ^ 1) + text[position + 1 :]
    elif what == "path":
        if not tampered["audit_path"]:
            tampered["audit_path"] = ["00" * 32]  # a 1-leaf tree: any element is too many
        else:
            i = data.draw(st.integers(0, len(tampered["audit_path"]) - 1), "element")
            tampered["audit_path"][i] = _flip_hex(tampered["audit_path"][i], bit)
    elif what == "index":
        other = data.draw(st.integers(0, size).filter(lambda i: i != index), "other index")
        tampered["leaf_index"] = other
    else:
        delta = data.draw(st.sampled_from([-1, 1, size]), "delta")
        tampered["checkpoint"] = _tamper_note(tampered["checkpoint"], what, bit, delta)
        if what == "size":
            tampered["tree_size"] = max(0, size + delta)  # a consistent lie in both places
    assert tampered != bundle
    assert _fails(tampered), what


@settings(max_examples=60, deadline=None)
@given(data=st.data(), old=sizes)
def test_any_tampering_of_a_consistency_bundle_fails(data: st.DataObject, old: int) -> None:
    new = old + data.draw(st.integers(1, 40), "growth")
    tree = MemoryTree(_entry(i + 1) for i in range(new))
    bundle = _consistency(tree, old, new)
    assert not _fails(bundle)
    which = data.draw(st.sampled_from(["old_checkpoint", "new_checkpoint", "proof"]))
    bit = data.draw(st.integers(0, 255), "bit")
    tampered = json.loads(json.dumps(bundle))
    if which == "proof":
        if not tampered["proof"]:
            tampered["proof"] = ["00" * 32]
        else:
            i = data.draw(st.integers(0, len(tampered["proof"]) - 1), "element")
            tampered["proof"][i] = _flip_hex(tampered["proof"][i], bit)
    else:
        what = data.draw(st.sampled_from(["size", "root", "time", "sig"]))
        tampered[which] = _tamper_note(tampered[which], what, bit, data.draw(
            st.sampled_from([-1, 1]), "delta"))
    assert _fails(tampered), which


@settings(max_examples=40, deadline=None)
@given(data=st.data(), old=sizes)
def test_honest_appends_keep_old_proofs_valid(data: st.DataObject, old: int) -> None:
    entries = [_entry(i + 1) for i in range(old)]
    tree = MemoryTree(entries)
    index = data.draw(st.integers(0, old - 1), "index")
    old_bundle = _inclusion(tree, entries, index, old)
    for _ in range(data.draw(st.integers(1, 50), "appends")):
        entries.append(_entry(len(entries) + 1))
        tree.append(entries[-1])
    new = tree.size
    assert not _fails(old_bundle)  # the old proof against the old checkpoint still holds
    assert not _fails(_inclusion(tree, entries, index, new))  # and a new one against the new
    assert not _fails(_consistency(tree, old, new))  # and the new tree extends the old one


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_honest_appends_keep_stored_proofs_valid(home: Settings) -> None:
    """The database-backed prover: proofs made at one size still verify after more appends,
    and the stored tree proves consistency from every earlier checkpoint to the latest."""
    runtime = open_runtime(home, START, environ={})
    try:
        signer = fill_log(runtime, entries=37, checkpoint_every=11)
        runtime.now = START + timedelta(hours=1)
        checkpoint_after_command(runtime)
        public = signer.public_key
        runtime_key = signer.key_id
        verifier = Verifier(TREE_ORIGIN, key_hash(TREE_ORIGIN, public), public)
        with runtime.engine.connect() as conn:
            first = tree_checkpoints(conn, runtime_key)[-1]
            early = [inclusion_bundle(conn, seq, first, public) for seq in (1, 16, 17, first.seq)]
        fill_log(runtime, entries=first.seq + 45, checkpoint_every=11)
        runtime.now = START + timedelta(hours=2)
        checkpoint_after_command(runtime)
        with runtime.engine.connect() as conn:
            signed = tree_checkpoints(conn, runtime_key)
            latest = signed[-1]
            assert latest.seq > first.seq
            for bundle in early:
                assert verify_bundle(bundle, verifier).tree_size == first.seq
                seq = json.loads(bundle["entry"])["seq"]
                assert verify_bundle(inclusion_bundle(conn, seq, latest, public), verifier)
            for old in signed[:-1]:
                assert verify_bundle(consistency_bundle(conn, old, latest, public), verifier)
    finally:
        runtime.close()
