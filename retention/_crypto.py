"""The only place flowaudit touches cryptographic primitives.

Everything here is a thin recipe over pyca/cryptography: AES-256-GCM with a 96-bit random nonce,
HKDF-SHA256 for derivation, HMAC-SHA256 for pseudonyms and key commitments. Callers never pick an
algorithm; every failed authentication raises the same :class:`IntegrityError`.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import IntegrityError

KEY_BYTES = 32
NONCE_BYTES = 12
COMMITMENT_BYTES = 16


def random_key() -> bytes:
    """A fresh 256-bit key from the OS CSPRNG."""
    return os.urandom(KEY_BYTES)


def derive(key_material: bytes, info: bytes, length: int = KEY_BYTES) -> bytes:
    """HKDF-SHA256 with a fixed, empty salt; ``info`` separates every use."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(key_material)


def pseudonym(pepper: bytes, identifier: str) -> str:
    """HMAC-SHA256 of an identifier under a secret pepper, as hex."""
    return hmac.new(pepper, identifier.encode("utf-8"), hashlib.sha256).hexdigest()


def commitment(key: bytes, aad: bytes) -> bytes:
    """A short non-secret tag that binds a ciphertext to exactly one key (GCM alone does not)."""
    commit_key = derive(key, b"flowaudit/v1/commitment")
    return hmac.new(commit_key, aad, hashlib.sha256).digest()[:COMMITMENT_BYTES]


def seal(key: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes, bytes]:
    """Encrypt; return ``(nonce, ciphertext_with_tag, commitment)``."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce, AESGCM(key).encrypt(nonce, plaintext, aad), commitment(key, aad)


def open_sealed(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes, commit: bytes) -> bytes:
    """Check the commitment, then decrypt. Any failure is one :class:`IntegrityError`."""
    if not hmac.compare_digest(commitment(key, aad), bytes(commit)):
        raise IntegrityError("record failed authentication (wrong key, row or content)")
    try:
        return AESGCM(key).decrypt(bytes(nonce), bytes(ciphertext), aad)
    except (InvalidTag, ValueError) as exc:
        raise IntegrityError("record failed authentication (wrong key, row or content)") from exc


def seal_blob(key: bytes, plaintext: bytes, label: bytes) -> bytes:
    """Self-contained ``nonce || ciphertext`` for files such as the key store."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, label)


def open_blob(key: bytes, blob: bytes, label: bytes) -> bytes:
    """Inverse of :func:`seal_blob`."""
    if len(blob) < NONCE_BYTES + 16:
        raise IntegrityError("encrypted file is truncated")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], label)
    except InvalidTag as exc:
        raise IntegrityError("encrypted file failed authentication") from exc
