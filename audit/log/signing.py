"""The Ed25519 key that signs audit checkpoints, kept apart from the master key.

Separate keys mean that whoever can decrypt data cannot also forge the record of what happened
to it, and an auditor can be given the public key alone.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from retention.errors import ConfigError

__all__ = ["create_signing_key", "load_signing_key", "public_key_id"]


def create_signing_key(path: Path) -> None:
    """Write a new Ed25519 private key (PKCS#8 PEM) with mode 0600; never overwrite."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(
            f"signing key '{path}' already exists; refusing to overwrite it"
        ) from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """Load the checkpoint signing key, refusing one that others can read."""
    if not path.is_file():
        raise ConfigError(f"no audit signing key at '{path}'; run `flowaudit init`")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"signing key '{path}' is readable by others (mode {mode:04o}); run: chmod 600 '{path}'"
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"signing key '{path}' is not a PEM Ed25519 key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"signing key '{path}' is not an Ed25519 key")
    return key


def public_key_id(public_key: Ed25519PublicKey) -> str:
    """A short stable id of a public key (first 16 hex of SHA-256 of its raw bytes)."""
    import hashlib

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]
